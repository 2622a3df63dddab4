"""Random test networks covering every activation and every loss of the registry, and oracles."""
from __future__ import annotations

import numpy as np

from derive.core import primitives
from derive.kinds import from_mapping
import oracles


def _net(n_in, layers, loss, bias=True):
    return {"network": {"input_size": n_in, "loss": loss,
                        "layer": [{"size": n, "activation": a, **({} if bias else {"bias": False})}
                                  for n, a in layers]}}


LEAKY = {"name": "leaky_relu", "alpha": "0.2"}
ELU = {"name": "elu", "alpha": "0.7"}
SWISH = {"name": "swish", "beta": "1.5"}

# name -> spec mapping; together they use every activation and every loss
NETS = {
    "tanh-relu-leaky-sigmoid/half_sse": _net(3, [(4, "tanh"), (4, "relu"), (3, LEAKY), (2, "sigmoid")], "half_sse"),
    "elu-softplus-swish-softmax/cross_entropy": _net(3, [(4, ELU), (4, "softplus"), (3, SWISH), (3, "softmax")],
                                                     "cross_entropy"),
    "bipolar-identity/softmax_cross_entropy": _net(3, [(4, "bipolar_sigmoid"), (3, "identity")],
                                                   "softmax_cross_entropy"),
    "sigmoid-sigmoid/bce": _net(3, [(4, "sigmoid"), (3, "sigmoid")], "bce"),
    "tanh-softmax/mse": _net(3, [(4, "tanh"), (3, "softmax")], "mse"),        # δ through the Jacobian
    "relu-identity/mae": _net(3, [(4, "relu"), (3, "identity")], "mae"),
    "softplus-identity/hinge": _net(3, [(4, "softplus"), (3, "identity")], "hinge"),
    "sign-step-sigmoid/half_sse, no biases": _net(3, [(3, "sign"), (3, "step"), (2, "sigmoid")], "half_sse",
                                                  bias=False),
}


def covered() -> tuple[set, set]:
    acts, losses = set(), set()
    for m in NETS.values():
        losses.add(m["network"]["loss"])
        for layer in m["network"]["layer"]:
            a = layer["activation"]
            acts.add(a if isinstance(a, str) else a["name"])
    return acts, losses


def spec(name):
    return from_mapping(NETS[name], name="test")


def data(kernel, seed: int, rows: int = 4):
    """Parameters, inputs and targets; one-hot targets for the losses that need a distribution."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.8, kernel.n_params)
    X = rng.normal(0, 1, (rows, kernel.sizes[0]))
    n_out = kernel.sizes[-1]
    if kernel.loss in ("cross_entropy", "softmax_cross_entropy", "hinge"):
        T = np.eye(n_out)[rng.integers(0, n_out, rows)]
    else:
        T = rng.uniform(0, 1, (rows, n_out))
    return theta, X, T


def central_differences(f, theta, h=1e-6):
    g = np.empty_like(theta)
    for i in range(len(theta)):
        def at(delta):
            moved = theta.copy()
            moved[i] += delta
            return f(moved)
        g[i] = oracles.central_difference(at, h)
    return g


# ----------------------------------------------------------------------------- PyTorch oracle

def torch_loss(mapping, kernel, theta, X, T):
    """The mean loss written with PyTorch's own functions, and its autograd gradient (flat)."""
    import torch
    import torch.nn.functional as F
    th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    views = kernel.layout.views(th)                  # slicing a tensor works like slicing an array
    h = torch.tensor(X, dtype=torch.float64)
    t = torch.tensor(T, dtype=torch.float64)
    for l, layer in enumerate(mapping["network"]["layer"], start=1):
        z = h @ views[f"W{l}"].T + (views[f"b{l}"] if f"b{l}" in views else 0)
        a = layer["activation"]
        name, p = (a, {}) if isinstance(a, str) else (a["name"], {k: float(v) for k, v in a.items() if k != "name"})
        h = {
            "identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
            "leaky_relu": lambda z: F.leaky_relu(z, p.get("alpha", 0.01)), "elu": lambda z: F.elu(z, p.get("alpha", 1.0)),
            "softplus": F.softplus, "swish": lambda z: z * torch.sigmoid(p.get("beta", 1.0) * z),
            "bipolar_sigmoid": lambda z: (1 - torch.exp(-z)) / (1 + torch.exp(-z)),
            "sign": lambda z: torch.where(z >= 0, 1.0, -1.0).to(z.dtype),
            "step": lambda z: (z >= 0).to(z.dtype), "softmax": lambda z: torch.softmax(z, dim=1),
        }[name](z)
    loss = mapping["network"]["loss"]
    per_row = {
        "half_sse": lambda: 0.5 * ((h - t) ** 2).sum(1),
        "mse": lambda: ((h - t) ** 2).mean(1),
        "mae": lambda: (h - t).abs().mean(1),
        "bce": lambda: F.binary_cross_entropy(h, t, reduction="none").mean(1),
        "cross_entropy": lambda: -(t * torch.log(h)).sum(1),
        "softmax_cross_entropy": lambda: -(t * torch.log_softmax(h, dim=1)).sum(1),
        "hinge": lambda: (t.unsqueeze(2) * torch.relu(h.unsqueeze(1) - h.unsqueeze(2) + 1)
                          * (1 - torch.eye(h.shape[1], dtype=h.dtype))).sum((1, 2)),
    }[loss]()
    value = per_row.mean()
    value.backward()
    return float(value.detach()), th.grad.numpy()


assert covered() == (set(primitives.ACTIVATIONS), set(primitives.LOSSES)), "test networks miss a primitive"
