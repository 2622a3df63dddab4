"""Kernels on random networks of every activation and loss: finite differences, PyTorch, float32.

The networks (``kernel_nets.NETS``) use every activation and every loss of the registry between
them; the module fails to import if a primitive is added without a network that uses it.
"""
from __future__ import annotations

import numpy as np
import pytest

import kernels
from kernel_nets import NETS, central_differences, data, spec, torch_loss
from kernel_fixtures import CACHE

NAMES = list(NETS)


@pytest.fixture(scope="module")
def compiled():
    return {name: kernels.compile(spec(name), cache_dir=CACHE) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences(name, compiled):
    k = compiled[name]
    theta, X, T = data(k, seed=hash(name) % 1000)
    loss, grad = k.loss_and_grad(theta, X, T)
    fd = central_differences(lambda th: k.loss_and_grad(th, X, T)[0], theta)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)
    assert np.abs(grad).max() > 1e-3 or "sign" in name      # a gradient that is not trivially zero


@pytest.mark.parametrize("name", NAMES)
def test_loss_and_gradient_match_pytorch_autograd(name, compiled):
    pytest.importorskip("torch", reason="PyTorch is the optional 'torch' extra")
    k = compiled[name]
    theta, X, T = data(k, seed=7)
    loss, grad = k.loss_and_grad(theta, X, T)
    ref_loss, ref_grad = torch_loss(NETS[name], k, theta, X, T)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["elu-softplus-swish-softmax/cross_entropy", "sigmoid-sigmoid/bce",
                                  "bipolar-identity/softmax_cross_entropy"])
def test_float32_within_its_precision(name, compiled):
    k64 = compiled[name]
    k32 = kernels.compile(spec(name), dtype="float32", cache_dir=CACHE)
    theta, X, T = data(k64, seed=11)
    loss64, grad64 = k64.loss_and_grad(theta, X, T)
    loss32, grad32 = k32.loss_and_grad(theta.astype(np.float32), X.astype(np.float32), T.astype(np.float32))
    assert grad32.dtype == np.float32
    tol = 1000 * np.finfo(np.float32).eps                    # ≈ 1.2e-4: a few ulps times the depth
    np.testing.assert_allclose(loss32, loss64, rtol=tol)
    np.testing.assert_allclose(grad32, grad64, rtol=tol, atol=tol * np.abs(grad64).max())


@pytest.mark.parametrize("name", ["elu-softplus-swish-softmax/cross_entropy", "tanh-softmax/mse",
                                  "sign-step-sigmoid/half_sse, no biases"])
def test_blas_shape_matches_unrolled(name, compiled):
    kb = kernels.compile(spec(name), shape="blas", cache_dir=CACHE)
    k = compiled[name]
    theta, X, T = data(k, seed=13, rows=6)
    loss, grad = k.loss_and_grad(theta, X, T)
    lb, gb = kb.loss_and_grad(theta, X, T)
    np.testing.assert_allclose(lb, loss, rtol=1e-13)
    np.testing.assert_allclose(gb, grad, rtol=1e-12, atol=1e-14)


def test_blas_float32_matches_pytorch():
    """The big workload's shape: ReLU layers, softmax cross-entropy on logits, float32, vs autograd."""
    pytest.importorskip("torch", reason="PyTorch is the optional 'torch' extra")
    from derive.kinds import from_mapping
    mapping = {"network": {"input_size": 40, "loss": "softmax_cross_entropy",
                           "layer": [{"size": 32, "activation": "relu"}, {"size": 24, "activation": "relu"},
                                     {"size": 10, "activation": "identity"}]}}
    k = kernels.compile(from_mapping(mapping), dtype="float32", cache_dir=CACHE)
    assert k.shape == "blas"
    theta, X, T = data(k, seed=17, rows=64)
    loss, grad = k.loss_and_grad(theta.astype(np.float32), X.astype(np.float32), T.astype(np.float32))
    ref_loss, ref_grad = torch_loss(mapping, k, theta, X, T)     # float64 autograd
    tol = 1000 * np.finfo(np.float32).eps
    np.testing.assert_allclose(loss, ref_loss, rtol=tol)
    np.testing.assert_allclose(grad, ref_grad, rtol=tol, atol=tol * np.abs(ref_grad).max())


@pytest.mark.parametrize("name", NAMES)
def test_loops_shape_matches_pytorch_autograd(name):
    """The loops shape (products as loops; what ``auto`` picks from ~65 to 1000 parameters) on
    every activation and loss, against autograd, in float64 and float32."""
    pytest.importorskip("torch", reason="PyTorch is the optional 'torch' extra")
    k = kernels.compile(spec(name), shape="loops", cache_dir=CACHE)
    assert k.shape == "loops" and "np.dot" not in k.source
    theta, X, T = data(k, seed=19, rows=5)
    ref_loss, ref_grad = torch_loss(NETS[name], k, theta, X, T)
    loss, grad = k.loss_and_grad(theta, X, T)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)
    k32 = kernels.compile(spec(name), dtype="float32", shape="loops", cache_dir=CACHE)
    loss32, grad32 = k32.loss_and_grad(*(a.astype(np.float32) for a in (theta, X, T)))
    tol = 1000 * np.finfo(np.float32).eps
    np.testing.assert_allclose(loss32, ref_loss, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad32, ref_grad, rtol=tol, atol=tol * np.abs(ref_grad).max())
    stepped = theta.copy()
    k.sgd_step(stepped, X, T, 0.1)
    np.testing.assert_allclose(stepped, theta - 0.1 * ref_grad, rtol=1e-12, atol=1e-13)


def test_auto_shape_follows_the_measured_compile_cost():
    """Unrolled code compiles in time growing with the parameters (34 s at 16-16-16 before issue
    13): auto keeps it for the slides' sizes only, loops up to 1000 parameters, BLAS beyond."""
    from kernels import codegen
    from kernels.bench import _spec
    shape = lambda *sizes: codegen.choose_shape(_spec(sizes, ["sigmoid"] * (len(sizes) - 1), "half_sse").problem)
    assert shape(2, 2, 2) == shape(3, 3, 3, 3) == "unrolled"
    assert shape(8, 8, 8) == shape(16, 16, 16) == shape(16, 16, 16, 16) == "loops"
    assert shape(32, 32, 10) == shape(784, 15, 10) == "blas"
