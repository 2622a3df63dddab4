"""Non-finite inputs are reported (NonFiniteError naming the array), never silently propagated.

The raw Numba steps return NaN and leave the parameters untouched; the checked entry points raise.
Every input position of the slide's 3-3-3-3 network is poisoned in turn, with NaN and with inf.
"""
from __future__ import annotations

import numpy as np
import pytest

import kernels
from derive.kinds import from_mapping
from kernels import NonFiniteError
from kernel_fixtures import CACHE


@pytest.fixture(scope="module", params=["unrolled", "blas", "loops"])
def mlp(request):
    k = kernels.compile("000_3_mlp_3333", shape=request.param, cache_dir=CACHE)
    theta = k.params_from_spec()
    x, t, lr = k.spec_sample()
    return k, theta, x.reshape(1, -1), t.reshape(1, -1), lr


def _positions(mlp):
    k, theta, X, T, lr = mlp
    for name, arr in (("theta", theta), ("X", X), ("T", T)):
        for i in range(arr.size):
            yield name, i


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_poisoned_input_is_reported_and_nothing_changes(mlp, bad):
    k, theta0, X0, T0, lr = mlp
    for name, i in _positions(mlp):
        arrays = {"theta": theta0.copy(), "X": X0.copy(), "T": T0.copy()}
        arrays[name].flat[i] = bad
        before = arrays["theta"].copy()
        assert np.isnan(k.raw.sgd_step(arrays["theta"], arrays["X"], arrays["T"], lr))
        np.testing.assert_array_equal(arrays["theta"], before)        # untouched, bit for bit
        with pytest.raises(NonFiniteError, match=name):
            k.sgd_step(arrays["theta"], arrays["X"], arrays["T"], lr)
        np.testing.assert_array_equal(arrays["theta"], before)


def test_nonfinite_learning_rate(mlp):
    k, theta, X, T, _ = mlp
    before = theta.copy()
    with pytest.raises(NonFiniteError, match="lr"):
        k.sgd_step(theta, X, T, float("nan"))
    np.testing.assert_array_equal(theta, before)


def test_loss_and_grad_reports_a_weight_that_relu_hides(mlp):
    """NaN in W1[0] makes z1[0] NaN, which ReLU's comparison maps to 0: loss and gradient stay finite."""
    k, theta, X, T, _ = mlp
    poisoned = theta.copy()
    k.unpack(poisoned)["W1"][0, :] = np.nan
    grad = np.empty_like(theta)
    assert np.isfinite(k.raw.loss_grad(poisoned, X, T, grad)) and np.isfinite(grad).all()   # silently finite
    with pytest.raises(NonFiniteError, match=r"theta\[0\]"):
        k.loss_and_grad(poisoned, X, T)                                                    # but reported
    with pytest.raises(NonFiniteError, match="theta"):
        k.forward(poisoned, X)


def test_overflow_with_finite_inputs_is_reported(mlp):
    k, theta, X, T, lr = mlp
    huge = theta.copy()
    k.unpack(huge)["W3"][...] = 1e308                 # z3 overflows to inf; every input is finite
    before = huge.copy()
    with pytest.raises(NonFiniteError, match="overflowed"):
        k.sgd_step(huge, X, T * 1e308, lr)
    np.testing.assert_array_equal(huge, before)


def test_many_problems_marks_only_the_bad_rows():
    k = kernels.compile("000_3_mlp_3333", cache_dir=CACHE)
    x, t, lr = k.spec_sample()
    rng = np.random.default_rng(0)
    Theta = k.params_from_spec() + 0.05 * rng.standard_normal((5, k.n_params))
    X, T = np.tile(x, (5, 1)), np.tile(t, (5, 1))
    X[2, 1] = np.nan
    Theta[4, 7] = np.inf
    expected = Theta.copy()
    for p in (0, 1, 3):
        k.sgd_step(expected[p], X[p], T[p], lr)
    with pytest.raises(NonFiniteError) as err:
        k.many_sgd_step(Theta, X, T, lr)
    assert err.value.rows == [2, 4]
    # the others were stepped (to rounding: the many-problems kernel has its own exp and FMAs)
    np.testing.assert_allclose(Theta[[0, 1, 3]], expected[[0, 1, 3]], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(Theta[[2, 4]], expected[[2, 4]])         # the bad ones untouched


def test_graph_input_hidden_by_relu_is_reported():
    spec = from_mapping({"graph": {"values": {"x": "1.5", "w": "2"}, "params": ["w"],
                                   "nodes": ["r = relu(x)", "L = r*w"], "loss": "L"}})
    k = kernels.compile(spec, cache_dir=CACHE)
    v = k.values_from_spec()
    v[k.names.index("x")] = np.nan
    before = v.copy()
    assert np.isnan(k.raw.sgd_step(v, 0.1))
    with pytest.raises(NonFiniteError, match=rf"v\[{k.names.index('x')}\] is nan"):
        k.sgd_step(v, 0.1)
    np.testing.assert_array_equal(v, before)
