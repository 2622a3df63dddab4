"""Property tests over random layered networks written as spec files (tests/strategies.py).

For every generated spec, each command either succeeds or exits 2 with one line naming the key
path, never a traceback; the handout prints solve's numbers; solve equals PyTorch autograd (when
PyTorch is installed); the generated kernels equal the engine.  Commands run in-process through
``derive.cli.main`` (``NNDERIVE_NO_SANDBOX=1``: an unexpected exception fails the test with its
traceback instead of being caught in a worker).  The example count follows the Hypothesis profile
(``NNDERIVE_HYPOTHESIS_PROFILE``: ``ci`` by default, ``long`` for a long search; docs/guide.md).
"""
from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, note

from cli_props import in_process, refused as _refused, run as _run  # noqa: F401  (in_process: autouse fixture)
from strategies import NetworkCase, networks, profile

NUMBER = re.compile(r"\d+(?:\.\d+)?")
KINKED = {"relu", "leaky_relu", "elu", "sign", "step"}


def _solve(capsys, path: Path) -> dict | None:
    code, out, err = _run(capsys, "solve", path, "--json")
    if _refused(code, err):
        return None
    assert code == 0, err
    return json.loads(out)["quantities"]


def _flat(value) -> list[float]:
    return [float(v) for v in np.ravel(np.asarray(value, dtype=float))]


# ----------------------------------------------------------------------------- every command

@profile(scale=1.0)
@given(case=networks(loose=True))
def test_every_command_succeeds_or_names_the_key(case: NetworkCase, capsys):
    note(case.toml)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.toml"
        path.write_text(case.toml)
        code, _, err = _run(capsys, "verify", path, "--jobs", "1")
        assert code in (0, 1) or _refused(code, err), err
        quantities = _solve(capsys, path)
        for fmt in ("tex", "md"):
            out = Path(tmp) / f"net.{fmt}"
            code, _, err = _run(capsys, "handout", path, "-o", out)
            if quantities is None:   # solve refused the spec: so must the handout (or print no numbers)
                assert code == 0 or _refused(code, err), err
                continue
            assert code == 0, err
            _handout_shows(out.read_text(), quantities)


def _handout_shows(text: str, quantities: dict) -> None:
    """The loss and every parameter gradient, as solve gives them, appear in the handout at its
    4 decimals (the handout rounds for display: a printed number within half a unit of the 4th)."""
    printed = [float(t) for t in NUMBER.findall(text)]
    assert printed
    wanted = ["loss", "loss_new"] + [n for n in quantities if re.fullmatch(r"grad_[Wb]\d+", n)]
    for name in wanted:
        for v in _flat(quantities.get(name, [])):
            assert any(abs(abs(v) - p) <= 0.5e-4 + 1e-12 for p in printed), (name, v)


# ----------------------------------------------------------------------------- solve against PyTorch

def _torch_loss(case: NetworkCase, torch):
    """The batch loss (the mean of the samples' losses) and the parameter tensors, in float64."""
    F = torch.nn.functional
    t64 = lambda rows: torch.tensor([[float(v) for v in r] for r in rows], dtype=torch.float64)
    X, T = t64(case.inputs), t64(case.targets)
    params, h, kinks = {}, X, []
    for l, layer in enumerate(case.layers, start=1):
        W = t64(layer["weights"]).requires_grad_()
        params[f"W{l}"] = W
        z = h @ W.T
        if layer["bias"] is not None:
            params[f"b{l}"] = torch.tensor([float(v) for v in layer["bias"]], dtype=torch.float64).requires_grad_()
            z = z + params[f"b{l}"]
        name, p = layer["activation"], {k: float(v) for k, v in layer["params"].items()}
        a, beta = p.get("alpha", 0.01 if name == "leaky_relu" else 1.0), p.get("beta", 1.0)
        if name in KINKED:
            kinks.append(z.detach().abs().min().item())
        h = {"identity": lambda: z, "sigmoid": lambda: torch.sigmoid(z), "tanh": lambda: torch.tanh(z),
             "relu": lambda: torch.relu(z), "leaky_relu": lambda: torch.where(z > 0, z, a * z),
             "elu": lambda: torch.where(z > 0, z, a * (torch.exp(z) - 1)),
             "softplus": lambda: torch.log1p(torch.exp(z)), "swish": lambda: z * torch.sigmoid(beta * z),
             "bipolar_sigmoid": lambda: (1 - torch.exp(-z)) / (1 + torch.exp(-z)),
             "sign": lambda: torch.where(z >= 0, 1.0, -1.0).to(torch.float64),
             "step": lambda: (z >= 0).to(torch.float64), "softmax": lambda: torch.softmax(z, dim=1)}[name]()
    y = h
    # log y and log(1 − y) from the logits where the output is σ or softmax: 1 − σ(20) in floats
    # keeps only 7 digits, and the engine's exact values would be compared with that rounding error
    last = case.layers[-1]["activation"]
    log_y = (torch.log_softmax(z, dim=1) if last == "softmax" else F.logsigmoid(z) if last == "sigmoid"
             else torch.log(y))
    log_1my = F.logsigmoid(-z) if last == "sigmoid" else torch.log(1 - y)
    if case.loss == "mae":
        kinks.append((y - T).detach().abs().min().item())
    if case.loss == "hinge":
        c = T.argmax(dim=1, keepdim=True)
        margins = y - y.gather(1, c) + 1
        others = torch.ones_like(y, dtype=torch.bool).scatter(1, c, False)
        kinks.append(margins.detach()[others].abs().min().item() if others.any() else 1.0)
        per = (F.relu(margins) * others).sum(dim=1)
    else:
        per = {"half_sse": lambda: 0.5 * ((y - T) ** 2).sum(dim=1), "mse": lambda: ((y - T) ** 2).mean(dim=1),
               "mae": lambda: (y - T).abs().mean(dim=1),
               "bce": lambda: -(T * log_y + (1 - T) * log_1my).mean(dim=1),
               "cross_entropy": lambda: -(T * log_y).sum(dim=1),
               "softmax_cross_entropy": lambda: -(T * torch.log_softmax(y, dim=1)).sum(dim=1)}[case.loss]()
    return per.mean(), params, min(kinks, default=1.0)


@profile(scale=3.0)
@given(case=networks(stated=False))
def test_solve_equals_pytorch(case: NetworkCase, capsys):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the autograd reference is skipped")
    note(case.toml)
    loss, params, kink = _torch_loss(case, torch)
    # a kink met exactly (ReLU at 0, |y − t| = 0, a hinge margin of 0) in exact arithmetic may be met
    # on either side in floats: the two sides have different derivatives, so such cases say nothing
    assume(kink > 1e-9)
    assume(math.isfinite(loss.item()))
    if loss.requires_grad:      # (sign or step at the output: no path to the parameters, every gradient 0)
        loss.backward()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.toml"
        path.write_text(case.toml)
        quantities = _solve(capsys, path)
    assert quantities is not None, "a valid network was refused"
    close = lambda a, b: abs(a - b) <= 1e-9 * max(1.0, abs(b))
    assert close(float(quantities["loss"]), loss.item())
    for name, p in params.items():
        grad = np.zeros(p.shape) if p.grad is None else p.grad.numpy()
        got = _flat(quantities["grad_" + name])
        assert all(close(g, r) for g, r in zip(got, grad.ravel())) and len(got) == grad.size, (name, got, grad)


# ----------------------------------------------------------------------------- kernels against the engine

_CACHE = tempfile.TemporaryDirectory(prefix="nnderive-props-kernels-")


@profile(scale=0.6)
@given(case=networks(max_samples=3, stated=False))
def test_kernels_equal_the_engine(case: NetworkCase, capsys):
    import kernels
    from derive.kinds import loads
    from derive.kinds import derive
    from derive.core.evaluate import evaluate
    from derive.core.errors import SpecError
    from derive.core.steps import symbol
    note(case.toml)
    spec = loads(case.toml)
    try:
        values = evaluate(derive(spec))
    except SpecError:     # no numbers (a log of 0 in exact arithmetic): nothing to compare
        assume(False)
    k = kernels.compile(spec, cache_dir=_CACHE.name)
    theta = k.params_from_spec()
    X, T, lr = k.spec_sample()
    value = lambda name, idx=(): float(values[symbol(name, idx)])
    close = lambda a, b: abs(a - b) <= 1e-9 * max(1.0, abs(b))
    try:
        loss, grad = k.loss_and_grad(theta, X, T)
    except kernels.NonFiniteError:
        pytest.fail("the kernel overflowed where the engine has finite values")
    assert close(loss, value("loss"))
    for name, g in k.unpack(grad).items():
        for idx in np.ndindex(g.shape):
            assert close(float(g[idx]), value("grad_" + name, idx)), (name, idx)
    if lr is not None:
        k.sgd_step(theta, X, T, lr)
        for name, p in k.unpack(theta).items():
            for idx in np.ndindex(p.shape):
                assert close(float(p[idx]), value(name + "_new", idx)), (name, idx)
