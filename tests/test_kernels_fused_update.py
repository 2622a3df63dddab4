"""The BLAS shape's in-place weight update (issue 13): W ← W − η δᵀh by one ?gemm call with β = 1.

``sgd_step`` of a BLAS-shape kernel updates every weight matrix of at least
``blas.FUSED_UPDATE_MIN`` elements in place (``gemm_update``), without a gradient buffer, when a
bound on Frobenius norms proves the new weights finite; otherwise it forms the gradient and checks
every new value as before.  Checked here against PyTorch's autograd (every activation and loss,
float64 and float32), against NumPy (``gemm_update`` itself, generated shapes), and for the NaN
contract: a step that would produce a non-finite value returns NaN and leaves theta untouched.
"""
from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from derive.kinds import from_mapping
from kernels.blas import FUSED_UPDATE_MIN
from kernel_nets import NETS, data, torch_loss
from kernel_fixtures import CACHE

WIDE_IN, WIDE_HIDDEN = 40, 32          # the first weight matrix: 32 × 40 = 1280 ≥ FUSED_UPDATE_MIN
assert WIDE_IN * WIDE_HIDDEN >= FUSED_UPDATE_MIN


def widened(name: str) -> dict:
    """The test network ``name`` with 40 inputs and 32 units in its first layer."""
    net = NETS[name]["network"]
    layers = [dict(layer) for layer in net["layer"]]
    layers[0]["size"] = WIDE_HIDDEN
    return {"network": {**net, "input_size": WIDE_IN, "layer": layers}}


# every layer fused, the output layer too (its δ's norm is taken after the loss's loop)
ALL_FUSED = {"network": {"input_size": 48, "loss": "softmax_cross_entropy", "layer": [
    {"size": 32, "activation": "relu"}, {"size": 40, "activation": "identity"}]}}


def compile_blas(mapping, dtype="float64"):
    k = kernels.compile(from_mapping(mapping, name="test"), shape="blas", dtype=dtype, cache_dir=CACHE)
    assert "gemm_update(-lr, D1, X, W1)" in k.source
    return k


def wide_data(k, seed, rows):
    """``kernel_nets.data`` with weights scaled to 40 inputs (pre-activations of order 1, where the
    float64 results of two correct programs agree to 1e-12)."""
    theta, X, T = data(k, seed, rows)
    return 0.2 * theta, X, T


@pytest.fixture(scope="module")
def wide():
    return {name: compile_blas(widened(name)) for name in NETS}


@pytest.mark.parametrize("name", list(NETS))
def test_fused_step_matches_pytorch_autograd(name, wide):
    """Every activation and loss: the stepped parameters are θ − η ∇L of autograd."""
    pytest.importorskip("torch", reason="PyTorch is the optional 'torch' extra")
    k = wide[name]
    theta, X, T = wide_data(k, seed=23, rows=6)
    ref_loss, ref_grad = torch_loss(widened(name), k, theta, X, T)
    stepped = theta.copy()
    loss = k.raw.sgd_step(stepped, X, T, 0.1)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(stepped, theta - 0.1 * ref_grad, rtol=1e-12, atol=1e-13)


def test_every_layer_fused_matches_pytorch_in_float64_and_float32():
    pytest.importorskip("torch", reason="PyTorch is the optional 'torch' extra")
    k = compile_blas(ALL_FUSED)
    assert "gemm_update(-lr, D2, H1, W2)" in k.source
    theta, X, T = wide_data(k, seed=29, rows=16)
    ref_loss, ref_grad = torch_loss(ALL_FUSED, k, theta, X, T)
    stepped = theta.copy()
    np.testing.assert_allclose(k.raw.sgd_step(stepped, X, T, 0.5), ref_loss, rtol=1e-12)
    np.testing.assert_allclose(stepped, theta - 0.5 * ref_grad, rtol=1e-12, atol=1e-13)
    k32 = compile_blas(ALL_FUSED, "float32")
    s32 = theta.astype(np.float32)
    loss32 = k32.raw.sgd_step(s32, X.astype(np.float32), T.astype(np.float32), 0.5)
    tol = 1000 * np.finfo(np.float32).eps
    np.testing.assert_allclose(loss32, ref_loss, rtol=tol)
    np.testing.assert_allclose(s32, theta - 0.5 * ref_grad, rtol=tol, atol=tol * np.abs(theta).max())


def _spied_step(k):
    """k's sgd_step run as Python (its py_func), its gemm_update calls recorded, then delegated."""
    calls = []

    def spy(alpha, A, B, C):
        calls.append(C.shape)
        k.raw.gemm_update(alpha, A, B, C)
    f = k.raw.sgd_step.py_func
    return types.FunctionType(f.__code__, {**f.__globals__, "gemm_update": spy}, argdefs=f.__defaults__), calls


def test_the_in_place_path_is_taken_for_ordinary_numbers_and_not_past_the_bound(wide):
    """Ordinary weights: W1 is stepped by gemm_update.  Weights near the largest float (finite, and
    finite after the step because X = 0 gives W1 a zero gradient): the bound fails, the gradient is
    formed and checked, and the step is still right."""
    pytest.importorskip("torch", reason="PyTorch is the optional 'torch' extra")
    name = "tanh-relu-leaky-sigmoid/half_sse"
    k = wide[name]
    step, calls = _spied_step(k)
    theta, X, T = wide_data(k, seed=31, rows=3)
    expected = theta.copy()
    k.raw.sgd_step(expected, X, T, 0.2)
    got = theta.copy()
    step(got, X, T, 0.2)
    assert calls == [(WIDE_HIDDEN, WIDE_IN)]
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-15)

    calls.clear()
    huge = theta.copy()
    k.unpack(huge)["W1"][...] = 1e306                 # ‖W1‖ = 3.6e307 > 1 % of the largest float
    X0 = np.zeros_like(X)
    _, ref_grad = torch_loss(widened(name), k, huge, X0, T)
    got = huge.copy()
    assert np.isfinite(step(got, X0, T, 0.2))
    assert calls == []
    np.testing.assert_allclose(got, huge - 0.2 * ref_grad, rtol=1e-12, atol=1e-13)
    compiled = huge.copy()
    k.raw.sgd_step(compiled, X0, T, 0.2)
    np.testing.assert_array_equal(compiled, got)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_input_leaves_theta_untouched(bad, dtype):
    k = compile_blas(ALL_FUSED, dtype)
    theta, X, T = (a.astype(dtype) for a in data(k, seed=37, rows=5))
    W1, W2 = k.layout.slot("W1"), k.layout.slot("W2")
    positions = [("theta", i) for i in (0, W1.size // 2, W1.size - 1, W1.size, W2.offset, W2.offset + W2.size - 1,
                                        theta.size - 1)] + [("X", 0), ("X", X.size - 1), ("T", 3)]
    for where, i in positions:
        arrays = {"theta": theta.copy(), "X": X.copy(), "T": T.copy()}
        arrays[where].flat[i] = bad
        before = arrays["theta"].copy()
        assert np.isnan(k.raw.sgd_step(arrays["theta"], arrays["X"], arrays["T"], 0.1)), (where, i)
        np.testing.assert_array_equal(arrays["theta"], before)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_update_that_overflows_only_in_the_fused_weights_leaves_theta_untouched(dtype):
    """Finite inputs, loss and gradient, but W1 − η ∂L/∂W1 overflows, and no other new value does
    (so only the fused path's bound can catch it): NaN, nothing stored."""
    k = compile_blas(widened("relu-identity/mae"), dtype)
    theta, X, T = data(k, seed=41, rows=4)
    rng = np.random.default_rng(41)
    k.unpack(theta)["W1"][...] = 1e-3 * rng.normal(size=(WIDE_HIDDEN, WIDE_IN))
    X = 1e3 * X                                       # W1's gradient is ~1e3 times the others'
    theta, X, T = (a.astype(dtype) for a in (theta, X, T))
    lr = float(np.finfo(dtype).max) / 50
    grad = np.empty_like(theta)
    assert np.isfinite(k.raw.loss_grad(theta, X, T, grad)) and np.isfinite(grad).all()
    with np.errstate(over="ignore"):
        overflows = ~np.isfinite(theta - np.asarray(lr, dtype) * grad)
    W1 = k.layout.slot("W1")
    assert overflows[:W1.size].any() and not overflows[W1.size:].any()      # the premise
    before = theta.copy()
    assert np.isnan(k.raw.sgd_step(theta, X, T, lr))
    np.testing.assert_array_equal(theta, before)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 9), i=st.integers(1, 7), j=st.integers(1, 7), alpha=st.floats(-4, 4),
       dtype=st.sampled_from(["float64", "float32"]), strided=st.booleans(), seed=st.integers(0, 2**16))
def test_gemm_update_equals_numpy(n, i, j, alpha, dtype, strided, seed):
    """C += α AᵀB by BLAS for C-contiguous arrays, by np.dot for strided views: both as NumPy does."""
    gemm_update = _module().gemm_update
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, 2 * i if strided else i)).astype(dtype)
    B = rng.normal(size=(n, j)).astype(dtype)
    C = rng.normal(size=(i, j)).astype(dtype)
    A = A[:, ::2] if strided else A
    expected = C.astype(np.float64) + alpha * (A.astype(np.float64).T @ B.astype(np.float64))
    gemm_update(alpha, A, B, C)
    tol = 1e-13 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(C, expected, rtol=tol, atol=tol * (1 + np.abs(expected).max()))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), i=st.integers(1, 8), k=st.integers(1, 40),
       dtype=st.sampled_from(["float64", "float32"]), seed=st.integers(0, 2**16))
def test_mm_abt_norms_equals_numpy(n, i, k, dtype, seed):
    """The blocked forward product (edges where 5 rows of A or 3 of B do not fit included) and the
    sums of squares of both factors, against NumPy in float64."""
    mm_abt_norms = _module().mm_abt_norms
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(n, k)).astype(dtype), rng.normal(size=(i, k)).astype(dtype)
    out = np.full((n, i), np.nan, dtype=dtype)
    ssa, ssb = mm_abt_norms(A, B, out)
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(out, A64 @ B64.T, rtol=tol, atol=tol * k)
    np.testing.assert_allclose([ssa, ssb], [(A64 ** 2).sum(), (B64 ** 2).sum()], rtol=1e-12)


_MODULE = []


def _module():
    if not _MODULE:
        _MODULE.append(compile_blas(ALL_FUSED).raw)
    return _MODULE[0]


@pytest.mark.parametrize("shape", ["loops", "unrolled"])
def test_loops_and_unrolled_shapes_check_new_values_in_theta_dtype(shape):
    """A new value finite in float64 but not in float32 (θ − η g with η past float32's range) is
    reported by the float32 loops and unrolled kernels too, theta untouched (it was checked in
    float64, then stored as inf)."""
    k = kernels.compile(from_mapping(NETS["relu-identity/mae"], name="test"), shape=shape, dtype="float32",
                        cache_dir=CACHE)
    theta, X, T = (a.astype(np.float32) for a in data(k, seed=43, rows=3))
    lr = 1e39                                           # finite in float64; θ − η g overflows float32
    before = theta.copy()
    assert np.isnan(k.raw.sgd_step(theta, X, T, lr))
    np.testing.assert_array_equal(theta, before)


def test_a_graph_kernel_checks_new_values_in_the_values_dtype(tmp_path):
    """The same for a [graph] kernel in float32: w − η·∂L/∂w past float32's range is NaN, v untouched."""
    spec = tmp_path / "g.toml"
    spec.write_text('[graph]\nvalues = { x = "2", w = "3" }\nparams = ["w"]\nnodes = ["L = w * x"]\n',
                    encoding="utf-8")
    k = kernels.compile(spec, shape="unrolled", dtype="float32", cache_dir=tmp_path / "cache")
    v = np.array([2.0, 3.0], dtype=np.float32)
    assert k.raw.sgd_step(v, 1.0) == 6.0 and v[1] == 1.0               # w ← 3 − 1·2 (the check lets it pass)
    v = np.array([2.0, 3.0], dtype=np.float32)
    assert np.isnan(k.raw.sgd_step(v, 1e39))                           # 3 − 2e39 is finite only in float64
    np.testing.assert_array_equal(v, np.array([2.0, 3.0], dtype=np.float32))
