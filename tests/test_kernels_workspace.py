"""The BLAS shape's workspace (issue 13): ``sgd_step(theta, X, T, lr, work)``.

A step of a wide network allocated its buffers (Z, h, δ of every layer, the new values) at every
call; at the *big* sizes that was 14 MB of fresh pages, about 2 000 page faults a step.  Given
``work = kernel.workspace(rows)`` the step takes every buffer from it, as NumPy's ``out=`` does.
Checked here: a step through a workspace filled with garbage is θ − η∇L of PyTorch's autograd
(nothing reads scratch it did not write), a workspace of another size is refused or reused as it
should be, and one kernel object serves two threads.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from derive.kinds import from_mapping
from kernel_nets import NETS, data, torch_loss
from kernel_fixtures import CACHE

NAMES = ["tanh-relu-leaky-sigmoid/half_sse", "elu-softplus-swish-softmax/cross_entropy", "relu-identity/mae"]
_KERNELS: dict = {}


def kernel(name: str, shape: str, dtype: str = "float64"):
    key = (name, shape, dtype)
    if key not in _KERNELS:
        _KERNELS[key] = kernels.compile(from_mapping(NETS[name], name="test"), shape=shape, dtype=dtype,
                                        cache_dir=CACHE)
    return _KERNELS[key]


def garbage(work: np.ndarray, seed: int) -> np.ndarray:
    """``work`` filled with what a previous use could have left: NaN, ±inf, huge and ordinary numbers."""
    rng = np.random.default_rng(seed)
    work[...] = rng.choice(np.array([np.nan, np.inf, -np.inf, 1e30, -7.0, 0.5]), size=work.shape)
    return work


@pytest.mark.parametrize("name", NAMES)
def test_a_step_through_a_dirty_workspace_is_the_autograd_step(name):
    pytest.importorskip("torch", reason="PyTorch is the optional 'torch' extra")
    k = kernel(name, "blas")
    theta, X, T = data(k, seed=53, rows=6)
    ref_loss, ref_grad = torch_loss(NETS[name], k, theta, X, T)
    work = garbage(k.workspace(len(X)), seed=1)
    stepped = theta.copy()
    loss = k.raw.sgd_step(stepped, X, T, 0.1, work)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(stepped, theta - 0.1 * ref_grad, rtol=1e-12, atol=1e-13)


@settings(max_examples=15, deadline=None)
@given(rows=st.integers(1, 30), extra=st.integers(0, 40), seed=st.integers(0, 2**16),
       dtype=st.sampled_from(["float64", "float32"]))
def test_any_large_enough_workspace_gives_the_allocating_step_bit_for_bit(rows, extra, seed, dtype):
    """Any rows, a workspace larger than needed by ``extra`` elements, left dirty by garbage: the same
    loss and the same new parameters as the step that allocates its own scratch."""
    k = kernel("tanh-relu-leaky-sigmoid/half_sse", "blas", dtype)
    theta, X, T = (a.astype(dtype) for a in data(k, seed=seed, rows=rows))
    need = len(k.workspace(rows))
    work = garbage(np.empty(need + extra, dtype=dtype), seed)
    a, b = theta.copy(), theta.copy()
    la = k.raw.sgd_step(a, X, T, 0.3)
    lb = k.raw.sgd_step(b, X, T, 0.3, work)
    assert (la == lb) or (np.isnan(la) and np.isnan(lb))
    np.testing.assert_array_equal(a, b)


def test_a_workspace_too_small_for_the_rows_is_refused_and_theta_untouched():
    k = kernel("relu-identity/mae", "blas")
    theta, X, T = data(k, seed=59, rows=8)
    work = k.workspace(7)
    before = theta.copy()
    with pytest.raises(ValueError, match="work has fewer than"):
        k.raw.sgd_step(theta, X, T, 0.1, work)
    np.testing.assert_array_equal(theta, before)


@pytest.mark.parametrize("shape", ["unrolled", "loops"])
def test_the_unrolled_and_loops_shapes_take_no_workspace(shape):
    """Their buffers are few and small: allocating them costs less than carving views of a workspace."""
    k = kernel("relu-identity/mae", shape)
    assert k.workspace(5) is None
    theta, X, T = data(k, seed=67, rows=5)
    with pytest.raises(TypeError):
        k.raw.sgd_step(theta, X, T, 0.1, np.empty(1000))


def test_one_kernel_stepped_from_two_threads_with_batches_of_changing_size():
    """Two threads stepping their own thetas through one kernel object's checked API (its kept
    workspace grows with the batches), interleaved, reach exactly the thetas of the same steps
    made one thread after the other."""
    k = kernel("elu-softplus-swish-softmax/cross_entropy", "blas")
    batches = [data(k, seed=61 + i, rows=rows) for i, rows in enumerate([3, 9, 5, 12])]
    start = [b[0] for b in batches[:2]]

    def run(theta, order):
        for j in order * 25:
            _, X, T = batches[j]
            k.sgd_step(theta, X, T, 0.05)
        return theta

    orders = [[0, 1, 2, 3], [3, 2, 1, 0]]
    serial = [run(start[i].copy(), orders[i]) for i in range(2)]
    results = [start[i].copy() for i in range(2)]
    threads = [threading.Thread(target=run, args=(results[i], orders[i])) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for got, want in zip(results, serial):
        np.testing.assert_array_equal(got, want)
