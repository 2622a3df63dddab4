"""The checked ``sgd_step``'s fast path (the shape checks inside the kernel, ``sgd_step_checked``)
behaves exactly as the Python path it bypasses: same loss, same exception type and message, same
parameters afterwards, for generated arguments of every kind (wrong shapes, dtypes, layouts,
lists, a 1-D row, NaN and inf anywhere).  The Python path (``_sgd_step_python``) is the
specification; the step's numbers themselves are checked against the engine elsewhere
(tests/test_kernels_engine.py)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_fixtures import CACHE

import kernels


@pytest.fixture(scope="module", params=["float64", "float32"])
def mlp(request):
    return kernels.compile("000_3_mlp_3333", dtype=request.param, cache_dir=CACHE)


def _array(draw, shape, dtype):
    a = np.asarray(draw(st.lists(st.floats(-2, 2), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                   dtype=float).reshape(shape)
    poison = draw(st.sampled_from([None, np.nan, np.inf, -np.inf]))
    if poison is not None and a.size:
        a.flat[draw(st.integers(0, a.size - 1))] = poison
    kind = draw(st.sampled_from(["c", "c", "c", "strided", "fortran", "list", "other_dtype"]))
    if kind == "strided" and a.ndim:
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=dtype)
        wide[..., ::2] = a
        return wide[..., ::2]
    if kind == "fortran":
        return np.asfortranarray(a.astype(dtype))
    if kind == "list":
        return a.tolist()
    if kind == "other_dtype":
        return a.astype(np.float32 if dtype == np.float64 else np.float64)
    return np.ascontiguousarray(a.astype(dtype))


@st.composite
def arguments(draw, n_params, n_in, n_out, dtype):
    rows = draw(st.integers(0, 3))
    theta = _array(draw, (draw(st.sampled_from([n_params, n_params, n_params - 1])),), dtype)
    one_row = draw(st.booleans()) and rows == 1
    x_cols = draw(st.sampled_from([n_in, n_in, n_in + 1]))
    X = _array(draw, (x_cols,) if one_row else (rows, x_cols), dtype)
    T = _array(draw, (n_out,) if one_row else (draw(st.sampled_from([rows, rows, rows + 1])), n_out), dtype)
    lr = draw(st.sampled_from([0.1, 0.5, 1, np.float32(0.25), np.nan, np.inf]))
    return theta, X, T, lr


def _outcome(step, theta, X, T, lr):
    try:
        result = ("value", step(theta, X, T, lr))
    except Exception as err:  # noqa: BLE001 - the outcome compared is the exception itself
        result = (type(err).__name__, str(err))
    return result, (np.array(theta, dtype=float) if not isinstance(theta, list) else theta)


def _copy(a):
    if isinstance(a, list):
        return [list(r) if isinstance(r, list) else r for r in a]
    return a.copy(order="K") if isinstance(a, np.ndarray) and a.flags.c_contiguous else (
        a if not isinstance(a, np.ndarray) else _same_layout(a))


def _same_layout(a):
    if a.flags.f_contiguous:
        return np.asfortranarray(a.copy())
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fast_path_is_the_python_path(mlp, data):
    theta, X, T, lr = data.draw(arguments(mlp.n_params, mlp.sizes[0], mlp.sizes[-1], mlp.dtype.type))
    a = _outcome(mlp.sgd_step, _copy(theta), _copy(X), _copy(T), lr)
    b = _outcome(mlp._sgd_step_python, _copy(theta), _copy(X), _copy(T), lr)
    assert a[0] == b[0]
    assert np.array_equal(np.asarray(a[1], dtype=float), np.asarray(b[1], dtype=float), equal_nan=True)


def test_fast_path_is_taken_and_steps(mlp):
    """The fast dispatcher exists for the unrolled kernel, compiled for this dtype only."""
    theta = mlp.params_from_spec()
    x, t, lr = mlp.spec_sample()
    X, T = x.reshape(1, -1), t.reshape(1, -1)
    expected = theta.copy()
    loss_raw = mlp.raw.sgd_step(expected, X, T, lr)
    loss = mlp.sgd_step(theta, X, T, lr)
    assert loss == loss_raw and np.array_equal(theta, expected)
    assert len(mlp._checked_sgd.signatures) == 1
    with pytest.raises(TypeError):
        mlp._checked_sgd(theta.astype(np.float32 if mlp.dtype == np.float64 else np.float64), X, T, lr)
