"""Derived gradients of random dense networks against independent oracles.

* central finite differences of a 40-digit mpmath forward pass written here;
* the element-wise chain rule (``derive_elementwise``) against the matrix form, exactly;
* PyTorch autograd with PyTorch's own loss functions, when PyTorch is installed.
"""
from __future__ import annotations

import random

import mpmath
import pytest
import sympy as sp

from derive.core import primitives
from derive.kinds.network.derivation import derive_elementwise, derive_network
from derive.core.evaluate import evaluate
from derive.kinds import from_mapping
from derive.core.steps import symbol
from oracles import MP_ACTIVATIONS, mp_loss_of
import oracles

mpmath.mp.dps = 40
SCALAR = [n for n, a in primitives.ACTIVATIONS.items() if not a.vector]
LOSSES = list(primitives.LOSSES)
SEEDS = range(44)


def _dec(rng, lo=-1.0, hi=1.0):
    return f"{rng.uniform(lo, hi):.5f}"


def random_network(seed: int) -> dict:
    """A random spec mapping: 1-3 layers, widths up to 6, every activation and loss in turn."""
    rng = random.Random(seed)
    loss = LOSSES[seed % len(LOSSES)]
    depth = 1 + seed % 3
    sizes = [rng.randint(1, 6) for _ in range(depth + 1)]
    hidden = [SCALAR[(seed + k) % len(SCALAR)] for k in range(depth)]
    acts = hidden[:-1]
    if loss == "bce":
        last = "sigmoid"
    elif loss == "cross_entropy":
        last = "softmax"
        sizes[-1] = max(2, sizes[-1])
    elif loss == "softmax_cross_entropy":
        last = "identity"
    else:
        last = hidden[-1] if hidden[-1] not in ("sign", "step") else "tanh"
    acts.append(last)
    layers = []
    for l in range(depth):
        act = acts[l]
        spec_act = {"name": act, **({"alpha": "0.2"} if act in ("leaky_relu", "elu") else {}),
                    **({"beta": "1.3"} if act == "swish" else {})} if primitives.ACTIVATIONS[act].params else act
        layers.append({"weights": [[_dec(rng) for _ in range(sizes[l])] for _ in range(sizes[l + 1])],
                       "bias": [_dec(rng) for _ in range(sizes[l + 1])], "activation": spec_act})
    n = sizes[-1]
    if loss in ("cross_entropy", "softmax_cross_entropy", "hinge"):
        target = ["0"] * n
        target[rng.randrange(n)] = "1"
    elif loss == "bce":
        target = [_dec(rng, 0, 1) for _ in range(n)]
    else:
        target = [_dec(rng) for _ in range(n)]
    return {"network": {"input": [_dec(rng) for _ in range(sizes[0])], "target": target, "loss": loss,
                        "learning_rate": "0.1", "layer": layers}}


# ----------------------------------------------------------------------------- mpmath forward pass

def mp_loss(data: dict, theta: dict) -> mpmath.mpf:
    net = data["network"]
    h = [mpmath.mpf(v) for v in net["input"]]
    for l, layer in enumerate(net["layer"], start=1):
        act = layer["activation"]
        name, p = (act, {}) if isinstance(act, str) else (act["name"], {k: mpmath.mpf(v) for k, v in act.items() if k != "name"})
        z = [sum(theta[f"W{l}"][i][j] * h[j] for j in range(len(h))) + theta[f"b{l}"][i]
             for i in range(len(layer["weights"]))]
        if name == "softmax":
            e = [mpmath.exp(v) for v in z]
            h = [v / sum(e) for v in e]
        else:
            h = [MP_ACTIVATIONS[name](v, p) for v in z]
    return mp_loss_of(net["loss"], h, [mpmath.mpf(v) for v in net["target"]])


def fd_gradients(data: dict) -> dict:
    """∂L/∂θ for every weight and bias by central differences (h = 1e-15, 40 digits)."""
    theta = {}
    for l, layer in enumerate(data["network"]["layer"], start=1):
        theta[f"W{l}"] = [[mpmath.mpf(v) for v in row] for row in layer["weights"]]
        theta[f"b{l}"] = [mpmath.mpf(v) for v in layer["bias"]]
    h = mpmath.mpf(10) ** -15
    grads = {}
    for name, value in theta.items():
        cells = [(i, j) for i in range(len(value)) for j in range(len(value[0]))] if name[0] == "W" else \
                [(i,) for i in range(len(value))]
        for idx in cells:
            def at(delta):
                copy = {k: [list(r) if isinstance(r, list) else r for r in v] for k, v in theta.items()}
                if len(idx) == 2:
                    copy[name][idx[0]][idx[1]] += delta
                else:
                    copy[name][idx[0]] += delta
                return mp_loss(data, copy)
            grads[(name, idx)] = oracles.central_difference(at, h)
    return grads


def test_the_random_networks_cover_every_activation_and_loss():
    acts, losses = set(), set()
    for seed in SEEDS:
        net = random_network(seed)["network"]
        losses.add(net["loss"])
        for layer in net["layer"]:
            a = layer["activation"]
            acts.add(a if isinstance(a, str) else a["name"])
    assert set(primitives.ACTIVATIONS) <= acts
    assert set(LOSSES) == losses


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_match_central_differences(seed):
    data = random_network(seed)
    derivation = derive_network(from_mapping(data).problem)
    values = evaluate(derivation)
    fd = fd_gradients(data)
    assert fd
    for (name, idx), g in fd.items():
        engine = float(values[symbol("grad_" + name, idx)])
        assert abs(engine - float(g)) <= 1e-10 * max(1.0, abs(float(g))), (seed, name, idx, engine, float(g))


@pytest.mark.parametrize("seed", SEEDS[::4])
def test_elementwise_chain_rule_equals_matrix_form(seed):
    net = from_mapping(random_network(seed)).problem
    matrix = evaluate(derive_network(net))
    elementwise = evaluate(derive_elementwise(net))
    compared = 0
    for l, layer in enumerate(net.layers, start=1):
        for i in range(layer.size):
            pairs = [(f"delta{l}", f"dL_dz{l}", (i,)), (f"grad_b{l}", f"dL_db{l}", (i,))]
            pairs += [(f"grad_W{l}", f"dL_dW{l}", (i, j)) for j in range(net.sizes[l - 1])]
            for a, b, idx in pairs:
                x, y = matrix[symbol(a, idx)], elementwise[symbol(b, idx)]
                assert abs(x.enclosure - y.enclosure).b < 1e-30, (a, idx)
                compared += 1
    assert compared > 0


@pytest.mark.parametrize("act", [a for a in SCALAR if a not in ("sign", "step")])
def test_elementwise_equals_matrix_form_symbolically(act):
    """On a symbolic 2-2-2 network, δ^l (matrix form) − ∂L/∂z^l (node by node) simplifies to 0."""
    from derive.verify import claims
    from derive.core.spec import Claim
    data = {"network": {"input_size": 2, "loss": "half_sse",
                        "layer": [{"size": 2, "activation": act}, {"size": 2, "activation": "sigmoid"}]}}
    spec = from_mapping(data)
    derivation = derive_network(spec.problem)
    spec = spec.__class__(**{**spec.__dict__, "claims": tuple(
        Claim(f"delta{l}", f"delta{l}", f"dL_dz{l}", (), f"claim[{l}]") for l in (1, 2))})
    results = claims.check_claims(spec, derivation)
    assert [r.verdict for r in results] == ["proved", "proved"]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_softmax_cross_entropy_delta_is_y_minus_t(n):
    """The engine's δ^L for softmax + cross-entropy is ŷ − y, proved with Σ y = 1 for each class count."""
    from derive.verify import claims
    from derive.core.spec import Claim
    from derive.core.steps import SoftmaxCrossEntropy
    data = {"network": {"input_size": 2, "loss": "cross_entropy",
                        "layer": [{"size": 2, "activation": "tanh"}, {"size": n, "activation": "softmax"}]}}
    spec = from_mapping(data)
    derivation = derive_network(spec.problem)
    step = derivation.step("delta2")
    assert isinstance(step, SoftmaxCrossEntropy) and "1" in step.assumption
    spec = spec.__class__(**{**spec.__dict__, "claims": (
        Claim("chain rule", "dL_dz2", "y - t", ("sum(t) == 1",), "claim[0]"),
        Claim("without Σt = 1 it differs", "dL_dz2", "y - t", (), "claim[1]"))})
    verdicts = [r.verdict for r in claims.check_claims(spec, derivation)]
    assert verdicts == ["proved", "differs"]


# ----------------------------------------------------------------------------- PyTorch oracle

def _torch_grads(data: dict):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    net = data["network"]
    dt = torch.float64
    h = torch.tensor([float(v) for v in net["input"]], dtype=dt)
    params = []
    for layer in net["layer"]:
        W = torch.tensor([[float(v) for v in r] for r in layer["weights"]], dtype=dt, requires_grad=True)
        b = torch.tensor([float(v) for v in layer["bias"]], dtype=dt, requires_grad=True)
        params.append((W, b))
        z = W @ h + b
        act = layer["activation"]
        name, p = (act, {}) if isinstance(act, str) else (act["name"], {k: float(v) for k, v in act.items() if k != "name"})
        h = {"identity": lambda: z, "sigmoid": lambda: torch.sigmoid(z), "tanh": lambda: torch.tanh(z),
             "relu": lambda: torch.relu(z), "leaky_relu": lambda: F.leaky_relu(z, p.get("alpha", 0.01)),
             "elu": lambda: F.elu(z, p.get("alpha", 1.0)), "softplus": lambda: F.softplus(z),
             "swish": lambda: z * torch.sigmoid(p.get("beta", 1.0) * z),
             "bipolar_sigmoid": lambda: torch.tanh(z / 2),
             "sign": lambda: torch.where(z >= 0, 1.0, -1.0).to(dt) + 0 * z,
             "step": lambda: torch.where(z >= 0, 1.0, 0.0).to(dt) + 0 * z,
             "softmax": lambda: torch.softmax(z, 0)}[name]()
    t = torch.tensor([float(v) for v in net["target"]], dtype=dt)
    n = len(t)
    loss = {"half_sse": lambda: 0.5 * F.mse_loss(h, t, reduction="sum"),
            "mse": lambda: F.mse_loss(h, t), "mae": lambda: F.l1_loss(h, t),
            "bce": lambda: F.binary_cross_entropy(h, t),
            "cross_entropy": lambda: -(t * torch.log(h)).sum(),
            "softmax_cross_entropy": lambda: F.cross_entropy(h[None], t[None]),
            "hinge": lambda: n * F.multi_margin_loss(h[None], t.argmax()[None])}[net["loss"]]()
    loss.backward()
    return loss.item(), params


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_match_pytorch_autograd(seed):
    data = random_network(seed)
    loss, params = _torch_grads(data)
    values = evaluate(derive_network(from_mapping(data).problem))
    assert abs(float(values[sp.Symbol("loss", real=True)]) - loss) <= 1e-10 * max(1, abs(loss))
    for l, (W, b) in enumerate(params, start=1):
        for (i, j), g in ((ij, W.grad[ij].item()) for ij in [(i, j) for i in range(W.shape[0]) for j in range(W.shape[1])]):
            assert abs(float(values[symbol(f"grad_W{l}", (i, j))]) - g) <= 1e-10 * max(1, abs(g))
        for i in range(b.shape[0]):
            assert abs(float(values[symbol(f"grad_b{l}", (i,))]) - b.grad[i].item()) <= 1e-10 * max(1, abs(b.grad[i].item()))
