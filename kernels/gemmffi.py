"""BLAS's own ``?gemm`` (with α and β), called from Numba, as source text for the generated modules.

Numba's ``np.dot`` computes C = A·B into a new or given array; it has no α and no β, so an SGD
step on a weight matrix took a gradient buffer and two more passes (check the new values, then
store them; docs/kernels.md).  ``GEMM`` is printed into a BLAS-shape module so that its
``sgd_step`` can update a weight matrix in place with one call, W ← W − η·δᵀh, as
``gemm_update(-lr, D, H, W)``: ``?gemm`` with α = −η and β = 1.

The routine is SciPy's (``scipy.linalg.cython_blas``, the same OpenBLAS that Numba's ``np.dot``
calls): its address is looked up when the module is imported and given to LLVM under a fixed
symbol name (``nnderive_dgemm``, ``nnderive_sgemm``), which the compiled code calls by name, so
Numba's on-disk cache keeps working (no address is baked into the machine code).  Arguments go
by reference, Fortran style, from two small arrays.

``sumsq`` (a sum of squares, in float64, its adds reassociated so that LLVM vectorises it) gives
the Frobenius norms of the bound that decides when the in-place update is safe (kernels/blas.py).
"""
from __future__ import annotations

GEMM = '''import llvmlite.binding as _llvm
from llvmlite import ir as _ir
from numba.core import cgutils as _cgutils
from numba.core import types as _nbtypes
from numba.core.extending import get_cython_function_address as _cython_address
from numba.core.extending import intrinsic

for _name in ("dgemm", "sgemm"):
    _llvm.add_symbol("nnderive_" + _name, _cython_address("scipy.linalg.cython_blas", _name))


@intrinsic
def xgemm(typingctx, like, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """BLAS ?gemm by reference (every argument after ``like`` an address): sgemm when ``like`` is
    a float32 array, else dgemm."""
    if not isinstance(like, _nbtypes.Array):
        return None
    symbol = "nnderive_sgemm" if like.dtype == _nbtypes.float32 else "nnderive_dgemm"

    def codegen(context, builder, sig, args):
        ptr = _ir.IntType(8).as_pointer()
        fn = _cgutils.get_or_insert_function(builder.module, _ir.FunctionType(_ir.VoidType(), [ptr] * 13), symbol)
        builder.call(fn, [builder.inttoptr(v, ptr) for v in args[1:]])
        return context.get_dummy_value()
    return _nbtypes.void(like, *([_nbtypes.intp] * 13)), codegen


@njit(cache=True, error_model="numpy")
def gemm_update(alpha, A, B, C):
    """C += alpha·AᵀB for A (n, i), B (n, k), C (i, k), in one ?gemm call (β = 1).

    Row-major C is column-major Cᵀ = Bᵀ·A: B's storage read as is ('N'), A's transposed ('T').
    Arrays that are not C-contiguous take np.dot and a subtraction instead."""
    item = C.itemsize
    if not (A.strides[1] == item and A.strides[0] == A.shape[1] * item and B.strides[1] == item
            and B.strides[0] == B.shape[1] * item and C.strides[1] == item and C.strides[0] == C.shape[1] * item):
        C += alpha * np.dot(A.T, B)
        return
    ints = np.empty(8, np.int32)
    ints[0] = ord("N")
    ints[1] = ord("T")
    ints[2] = C.shape[1]            # m: rows of Cᵀ
    ints[3] = C.shape[0]            # n: columns of Cᵀ
    ints[4] = A.shape[0]            # k: the sum over samples
    ints[5] = B.shape[1]            # lda (of B's storage)
    ints[6] = A.shape[1]            # ldb (of A's storage)
    ints[7] = C.shape[1]            # ldc
    scalars = np.empty(2, C.dtype)
    scalars[0] = alpha
    scalars[1] = 1.0
    p, s = ints.ctypes.data, scalars.ctypes.data
    xgemm(C, p, p + 4, p + 8, p + 12, p + 16, s, B.ctypes.data, p + 20, A.ctypes.data, p + 24, s + item,
          C.ctypes.data, p + 28)
    ints[0] = 0                     # uses after the call keep both arrays alive until BLAS has returned
    scalars[0] = 0.0


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def mm_abt_norms(A, B, out):
    """out = A Bᵀ (out[n, i] = Σ_j A[n, j] B[i, j]) and (Σ A², Σ B²), for few rows of A.

    Blocks of 5 rows of A by 3 rows of B: 15 independent sums along j, which LLVM vectorises (the
    adds reassociated); each row of A and of B is squared once, while it is in the L1 cache.  At
    the nielsen sizes this beats a BLAS call plus two passes for the norms (docs/kernels.md).
    A block at the edge repeats the last row of A or B: the same value is stored twice."""
    N, I, K = out.shape[0], out.shape[1], A.shape[1]
    ssa = 0.0
    ssb = 0.0
    for n in range(0, N, 5):
        n1, n2, n3, n4 = min(n + 1, N - 1), min(n + 2, N - 1), min(n + 3, N - 1), min(n + 4, N - 1)
        for r in range(n, min(n + 5, N)):
            for j in range(K):
                ssa += np.float64(A[r, j]) * np.float64(A[r, j])
        for i in range(0, I, 3):
            i1, i2 = min(i + 1, I - 1), min(i + 2, I - 1)
            if n == 0:
                for r in range(i, min(i + 3, I)):
                    for j in range(K):
                        ssb += np.float64(B[r, j]) * np.float64(B[r, j])
            s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = s30 = s31 = s32 = s40 = s41 = s42 = 0.0
            for j in range(K):
                b0, b1, b2 = B[i, j], B[i1, j], B[i2, j]
                a = A[n, j]
                s00, s01, s02 = s00 + a * b0, s01 + a * b1, s02 + a * b2
                a = A[n1, j]
                s10, s11, s12 = s10 + a * b0, s11 + a * b1, s12 + a * b2
                a = A[n2, j]
                s20, s21, s22 = s20 + a * b0, s21 + a * b1, s22 + a * b2
                a = A[n3, j]
                s30, s31, s32 = s30 + a * b0, s31 + a * b1, s32 + a * b2
                a = A[n4, j]
                s40, s41, s42 = s40 + a * b0, s41 + a * b1, s42 + a * b2
            out[n, i], out[n, i1], out[n, i2] = s00, s01, s02
            out[n1, i], out[n1, i1], out[n1, i2] = s10, s11, s12
            out[n2, i], out[n2, i1], out[n2, i2] = s20, s21, s22
            out[n3, i], out[n3, i1], out[n3, i2] = s30, s31, s32
            out[n4, i], out[n4, i1], out[n4, i2] = s40, s41, s42
    return ssa, ssb


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def sumsq(A):
    """Σ A[i, j]², accumulated in float64 (inf or NaN when an element is not finite)."""
    s = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            s += np.float64(A[i, j]) * np.float64(A[i, j])
    return s
'''
