"""exp and log that LLVM can vectorise, as source text for the generated modules.

This Numba build has no SVML, so ``math.exp`` in a loop is a scalar call into libm and the loop
stays scalar.  ``VECMATH`` is printed into a generated module that needs it (the vectorised
many-problems kernel): ``vexp`` and ``vlog`` written in arithmetic, comparisons that become
selects, and two bit casts (``f64_from_bits``, ``bits_of_f64``: LLVM ``bitcast`` instructions).
Both are inlined into their callers by Numba (``inline="always"``): the parallel kernel's loop body
is compiled apart from them, and a call would keep it scalar.

* ``vexp(x)``: k = round(x / ln 2), r = x − k ln 2 in two parts (Cody and Waite; k·LN2_HI is exact
  for |k| < 2¹¹), e^r by its Taylor polynomial of degree 13 (|r| ≤ ln 2 / 2, truncation < 2⁻⁵⁸),
  as 1 + (r + r²·q(r)) with q by Estrin's scheme (a tree, not a chain of 13 dependent FMAs),
  times 2^k as two powers of two (so that 2¹⁰²⁴ overflows and 2⁻¹⁰⁷⁴ underflows the way e^x
  does).  NaN → NaN, +inf → inf, −inf → 0.
* ``vlog(x)``: x = m·2^e with m in [√½, √2) (subnormals scaled by 2⁵⁴ first); log m = log(1 + f)
  = f − (f²/2 − s(f²/2 + R(s²))) with s = f/(2 + f) and R the series of 2 atanh(s)/s − 2, exact in
  its leading term f.  0 → −inf, negative → NaN, inf and NaN → themselves.

Both are within 2 ulp of ``math.exp`` and ``math.log`` over every float64 (tests/test_kernels_many.py
measures it on a million points).  Float32 arguments are computed in float64.
"""
from __future__ import annotations

from math import factorial

_EXP_COEFFS = [1.0 / factorial(k) for k in range(14)]          # e^r = Σ r^k / k!, k ≤ 13
_EXPF_COEFFS = [1.0 / factorial(k) for k in range(8)]          # float32: k ≤ 7 (truncation < 2⁻²⁷)
_LOG_COEFFS = [2.0 / (2 * k + 1) for k in range(1, 12)]        # R(s²) = Σ 2 s^{2k} / (2k + 1), k ≤ 11


def _estrin(coeffs: list[float], const=repr) -> str:
    """Σ_k coeffs[k]·r^k by Estrin's scheme: pairs (a + b·r), then pairs of those with r², r⁴,
    r⁸ (``r2``, ``r4`` computed by the caller).  The same terms as Horner's rule, in a tree of
    depth log₂ n instead of a chain of n dependent FMAs (the loop waits on that chain)."""
    terms = [f"({const(a)} + {const(b)} * r)" for a, b in zip(coeffs[::2], coeffs[1::2])]
    if len(coeffs) % 2:
        terms.append(const(coeffs[-1]))
    for power in ["r2", "r4", "(r4 * r4)"]:
        if len(terms) == 1:
            break
        paired = [f"({a} + {b} * {power})" for a, b in zip(terms[::2], terms[1::2])]
        terms = paired + ([terms[-1]] if len(terms) % 2 else [])
    assert len(terms) == 1, "at most 16 coefficients"
    return terms[0]


def _f32(c: float) -> str:
    return f"np.float32({c!r})"


def _horner(var: str, coeffs: list[float]) -> str:
    out = repr(coeffs[-1])
    for c in reversed(coeffs[:-1]):
        out = f"{c!r} + {var} * ({out})"
    return out


VECMATH = f'''from numba.core import types as _nbtypes
from numba.core.extending import intrinsic


def in_vector_loop(expr, caller, callee):
    """Numba's inlining choice for the helpers: inlined into the vectorised loop (many_block, where a
    call would keep the loop scalar), called everywhere else (inlining costs compile time)."""
    return caller.func_id.func_name in ("many_block", "many_block_f32")


@intrinsic
def f64_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bits are the integer ``bits`` (an LLVM bitcast)."""
    if not isinstance(bits, _nbtypes.Integer):
        return None

    def codegen(context, builder, sig, args):
        wide = context.cast(builder, args[0], sig.args[0], _nbtypes.int64)
        return builder.bitcast(wide, context.get_value_type(_nbtypes.float64))
    return _nbtypes.float64(bits), codegen


@intrinsic
def f32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bits are the integer ``bits`` (an LLVM bitcast)."""
    if not isinstance(bits, _nbtypes.Integer):
        return None

    def codegen(context, builder, sig, args):
        narrow = context.cast(builder, args[0], sig.args[0], _nbtypes.int32)
        return builder.bitcast(narrow, context.get_value_type(_nbtypes.float32))
    return _nbtypes.float32(bits), codegen


@intrinsic
def bits_of_f64(typingctx, x):
    """The IEEE-754 bits of the float64 ``x``, as an int64 (an LLVM bitcast)."""
    if not isinstance(x, _nbtypes.Float):
        return None

    def codegen(context, builder, sig, args):
        wide = context.cast(builder, args[0], sig.args[0], _nbtypes.float64)
        return builder.bitcast(wide, context.get_value_type(_nbtypes.int64))
    return _nbtypes.int64(x), codegen


@intrinsic
def prefer_wide_vectors(typingctx):
    """Mark the calling function "prefer-vector-width"="512": LLVM then vectorises its loops in
    512-bit vectors where the CPU has them (AVX-512; it prefers 256 bits on Intel otherwise), and
    in the widest it has elsewhere.  Called first in the many-problems kernel and its workers."""
    def codegen(context, builder, sig, args):
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')    # a string attribute
        return context.get_dummy_value()
    return _nbtypes.none(), codegen


@njit(cache=True, error_model="numpy", fastmath={{"contract"}}, inline="always")
def vexp(x):
    """e^x without a libm call (vectorisable); within 2 ulp of math.exp."""
    y = x if not (x > 709.8) else 709.8                # NaN passes both comparisons unchanged
    y = y if not (y < -745.2) else -745.2
    k = np.floor(y * 1.4426950408889634 + 0.5)
    k = k if k == k else 0.0                           # NaN: any k (r is NaN anyway)
    r = (y - k * 0.6931471803691238) - k * 1.9082149292705877e-10
    r2 = r * r
    r4 = r2 * r2
    p = 1.0 + (r + r2 * {_estrin(_EXP_COEFFS[2:])})
    ki = np.int64(k)
    half = ki >> 1
    return p * f64_from_bits((half + 1023) << 52) * f64_from_bits((ki - half + 1023) << 52)


@njit(cache=True, error_model="numpy", fastmath={{"contract"}}, inline="always")
def vexpf(x):
    """e^x in float32 arithmetic (the float32 many-problems kernel; 16 lanes a 512-bit vector);
    within 2 ulp of math.exp rounded to float32."""
    y = x if not (x > np.float32(88.75)) else np.float32(88.75)       # NaN passes both unchanged
    y = y if not (y < np.float32(-104.0)) else np.float32(-104.0)
    k = np.floor(y * np.float32(1.4426950408889634) + np.float32(0.5))
    k = k if k == k else np.float32(0.0)
    r = (y - k * np.float32(0.693359375)) - k * np.float32(-2.1219444005469057e-4)
    r2 = r * r
    r4 = r2 * r2
    p = np.float32(1.0) + (r + r2 * {_estrin(_EXPF_COEFFS[2:], _f32)})
    ki = np.int32(k)
    half = ki >> np.int32(1)
    return (p * f32_from_bits((half + np.int32(127)) << np.int32(23))
            * f32_from_bits((ki - half + np.int32(127)) << np.int32(23)))


@njit(cache=True, error_model="numpy", fastmath={{"contract"}}, inline="always")
def vlog(x):
    """log x without a libm call (vectorisable); within 2 ulp of math.log (−inf at 0, NaN below)."""
    y = x * 1.0
    tiny = y < 2.2250738585072014e-308
    y = y * 18014398509481984.0 if tiny else y          # a subnormal scaled into the normal range
    bits = bits_of_f64(y)
    e = ((bits >> 52) & 0x7FF) - 1023 - (54 if tiny else 0)
    m = f64_from_bits((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)     # in [1, 2)
    big = m > 1.4142135623730951
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    R = z * ({_horner("z", _LOG_COEFFS)})
    hfsq = 0.5 * f * f
    ek = np.float64(e)
    out = ek * 0.6931471803691238 - ((hfsq - (s * (hfsq + R) + ek * 1.9082149292705877e-10)) - f)
    out = -math.inf if y == 0.0 else out
    out = math.nan if y < 0.0 else out
    return y if (y == math.inf or y != y) else out
'''
