"""A wide output layer in the BLAS and loops shapes (issue 9): a loss of one term per output is
printed as one loop over the units (the one-unit derivation, times c_n/c_1), not unrolled over
1 000 units, so that compiling it no longer takes minutes.  Checked against PyTorch autograd."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import kernels
from derive.core.sandbox import run
from derive.kinds import loads
from kernels.blas import LOOPED_HEAD, head_ratio
from kernels.codegen import generate_network, symbolic_network

torch = pytest.importorskip("torch")
HANG = 600

LOSSES = {"half_sse": lambda y, t: 0.5 * ((y - t) ** 2).sum(dim=1),
          "mse": lambda y, t: ((y - t) ** 2).mean(dim=1),
          "mae": lambda y, t: (y - t).abs().mean(dim=1),
          "bce": lambda y, t: -(t * torch.log(y) + (1 - t) * torch.log(1 - y)).mean(dim=1),
          "cross_entropy": lambda y, t: -(t * torch.log(y)).sum(dim=1)}


def spec(n_in: int, hidden: int | None, n_out: int, loss: str) -> str:
    layers = ""
    if hidden:
        layers += f'[[network.layer]]\nsize = {hidden}\nactivation = "tanh"\n'
    layers += f'[[network.layer]]\nsize = {n_out}\nactivation = "sigmoid"\n'
    return f'[network]\ninput_size = {n_in}\nloss = "{loss}"\n{layers}'


def torch_loss_and_grad(kernel, theta, X, T, loss):
    views = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in kernel.unpack(theta).items()}
    h = torch.tensor(X)
    L = len(kernel.sizes) - 1
    for l in range(1, L + 1):
        z = h @ views[f"W{l}"].T + views[f"b{l}"]
        h = torch.sigmoid(z) if l == L else torch.tanh(z)
    mean = LOSSES[loss](h, torch.tensor(T)).mean()
    mean.backward()
    return float(mean), np.concatenate([views[s.name].grad.numpy().ravel() for s in kernel.layout.slots])


def _check(text, loss, shape, cache, seed=0):
    k = kernels.compile(loads(text), shape=shape, cache_dir=cache)
    rng = np.random.default_rng(seed)
    theta = k.init_params(seed)
    X = rng.uniform(-1, 1, (3, k.sizes[0]))
    T = rng.uniform(0.05, 0.95, (3, k.sizes[-1])) if loss != "cross_entropy" else \
        np.eye(k.sizes[-1])[rng.integers(0, k.sizes[-1], 3)]
    got_loss, got_grad = k.loss_and_grad(theta, X, T)
    want_loss, want_grad = torch_loss_and_grad(k, theta, X, T, loss)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-10, atol=1e-14)
    assert k.forward(theta, X).shape == (3, k.sizes[-1])
    return k.source


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("shape,n_in,hidden", [("blas", 20, 12), ("loops", 3, None)])
def test_a_looped_output_layer_matches_pytorch(loss, shape, n_in, hidden, tmp_path):
    text = spec(n_in, hidden, LOOPED_HEAD + 36, loss)
    # in this process, not a forked worker: a child forked after PyTorch has started its threads
    # can block on a lock it inherited (seen once in a whole-suite run); Numba compiles this in seconds
    source = _check(text, loss, shape, tmp_path)
    assert "for i in range(100):" in source and "z2_99" not in source and "z1_99" not in source


def test_the_share_of_each_output_is_the_losss_own_coefficient():
    n = symbolic_network(loads(spec(4, None, 200, "mse")).problem)
    assert head_ratio(n) == sp.Rational(1, 200)
    assert head_ratio(symbolic_network(loads(spec(4, None, 200, "half_sse")).problem)) == 1
    assert head_ratio(symbolic_network(loads(spec(4, None, 200, "hinge")).problem)) is None       # couples outputs
    assert head_ratio(symbolic_network(loads(spec(4, None, LOOPED_HEAD, "mse")).problem)) is None  # stays unrolled


def _wide_source() -> int:
    return len(generate_network(loads(spec(1000, None, 1000, "half_sse")).problem, "blas").body())


def test_a_1000_by_1000_layer_generates_in_bounded_time():
    # hang guard only (before: 39 s to generate and 638 s for Numba to compile the unrolled head)
    assert run(_wide_source, timeout=HANG, memory_mb=2048) < 20_000
