"""Property tests over random ``[cnn]`` and ``[recurrent]`` specs (tests/strategies_shapes.py).

Every command (``verify``, ``solve --json``, ``handout`` tex and md, ``check`` of a generated
answer file) succeeds or exits 2 with one line naming the key, never a traceback; a spec whose
windows fit is never refused.  Oracles: PyTorch autograd (``conv2d``, ``max_pool2d``,
``avg_pool2d``, ``linear`` and the Elman/LSTM cell written out by hand, float64); the handout's
numbers read back against the engine's (tests/numbers_check.py); the kernels equal ``solve``.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, note

from cli_props import in_process, refused, run, solve  # noqa: F401  (in_process: autouse fixture)
from strategies import fuzz_profile as profile
from strategies_shapes import CnnCase, RnnCase, cnns, rnns

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the autograd reference is skipped")
F = torch.nn.functional
T64 = torch.float64


def _t(v, grad: bool = False):
    return torch.tensor(np.asarray(v, dtype=float), dtype=T64, requires_grad=grad)


def act(name: str, x):
    one = torch.ones_like(x)
    return {"identity": lambda: x, "sigmoid": lambda: torch.sigmoid(x), "tanh": lambda: torch.tanh(x),
            "relu": lambda: torch.relu(x), "leaky_relu": lambda: torch.where(x > 0, x, 0.01 * x),
            "elu": lambda: torch.where(x > 0, x, torch.expm1(x)), "softplus": lambda: F.softplus(x),
            "swish": lambda: x * torch.sigmoid(x), "bipolar_sigmoid": lambda: torch.tanh(x / 2),
            "sign": lambda: torch.where(x >= 0, one, -one), "step": lambda: torch.where(x >= 0, one, 0 * one),
            "softmax": lambda: torch.softmax(x, dim=-1)}[name]()


def loss_of(name: str, y, t):
    return {"half_sse": lambda: 0.5 * ((y - t) ** 2).sum(), "mse": lambda: ((y - t) ** 2).mean(),
            "mae": lambda: (y - t).abs().mean(), "cross_entropy": lambda: -(t * torch.log(y)).sum(),
            "bce": lambda: -(t * torch.log(y) + (1 - t) * torch.log(1 - y)).mean(),
            "softmax_cross_entropy": lambda: -(t * torch.log_softmax(y, dim=-1)).sum()}[name]()


def _flat(v) -> list[float]:
    return [float(x) for x in np.ravel(np.asarray(v, dtype=float))]


def _grad(p):
    """A leaf's gradient; zeros when the loss does not reach it (sign, step: PyTorch leaves None)."""
    return torch.zeros_like(p) if p.grad is None else p.grad


def _close(got, ref, what) -> None:
    got, ref = _flat(got), _flat(ref)
    assert len(got) == len(ref), (what, got, ref)
    for g, r in zip(got, ref):
        assert abs(g - r) <= 1e-9 * max(1.0, abs(r)), (what, got, ref)


# ----------------------------------------------------------------------------- every command

def _commands(capsys, text: str, must_solve: bool, compare=None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.toml"
        path.write_text(text, encoding="utf-8")
        solved = solve(capsys, path)
        if must_solve:
            assert solved is not None, "a spec within the documented limits was refused"
            if compare:
                compare(solved["quantities"])
        code, _, err = run(capsys, "verify", path, "--jobs", "1")
        assert code == 0 or refused(code, err), (code, err)      # no stated numbers: nothing is wrong
        for fmt in ("tex", "md"):
            out = Path(tmp) / "new" / f"spec.{fmt}"
            code, _, err = run(capsys, "handout", path, "-o", out)
            if solved is None:
                assert code == 0 or refused(code, err), (code, err)
                continue
            assert code == 0, (code, err)
            _numbers(path, out.read_text(encoding="utf-8"), fmt)
        if solved is not None:
            _check(capsys, tmp, path, solved["quantities"])


def _numbers(path, doc: str, fmt: str) -> None:
    from derive.kinds import derive
    from derive.core.evaluate import evaluate
    from derive.kinds import of_spec  # the names the handout prints (its profile)
    from derive.kinds import load
    from numbers_check import NumberCheck
    spec = load(path)
    d = derive(spec)
    check = NumberCheck(of_spec(spec, d), [d], evaluate(d))
    check.document(doc, f"spec.{fmt}")
    wrong = [p for p in check.problems if " shown as " in p]     # (see test_properties_graph)
    assert not wrong, wrong[:5]


def _check(capsys, tmp: str, path: Path, q: dict) -> None:
    """An answer file of solve's own numbers at 4 decimals (correct), then one of them off by
    0.01 in each element (wrong): exit 0, then exit 1, the score never above the total."""
    keys = [k for k in ("loss", "y", "grad_x", "grad_K1", "grad_W1", "grad_W_hh", "grad_W_f", "grad_b_y")
            if k in q and max(map(abs, _flat(q[k])), default=0) < 1e6]
    for wrong in (False, True):
        lines = ["[answers]"]
        for i, k in enumerate(keys):
            off = 0.01 if wrong and i == 0 else 0.0
            lines.append(f"{k} = {json.dumps(np.vectorize(lambda v: f'{v + off:.4f}')(np.asarray(q[k], dtype=float)).tolist())}")
        answers = Path(tmp) / f"answers{int(wrong)}.toml"
        answers.write_text("\n".join(lines) + "\n", encoding="utf-8")
        code, out, err = run(capsys, "check", path, answers, "--json", "--jobs", "1")
        assert code == (1 if wrong else 0), (code, err, out[-2000:])
        sub = json.loads(out)["submissions"][0]
        assert sub["score"] <= sub["max_score"] + 1e-9


# ----------------------------------------------------------------------------- cnn

def _torch_cnn(case: CnnCase):
    x = _t(case.input, grad=True)
    h, params, conv, dense = x[None, None], {}, 0, 0
    for layer in case.layers:
        kind = layer["type"]
        if kind == "conv2d":
            conv += 1
            K = _t(layer["kernel"], grad=True)
            params[f"K{conv}"] = K
            w = K.flip(0, 1) if layer.get("mode") == "convolution" else K
            bias = None
            if "bias" in layer:
                params[f"c{conv}"] = bias = _t([float(layer["bias"])], grad=True)
            h = F.conv2d(h, w[None, None], bias, stride=layer.get("stride", 1), padding=layer.get("padding", 0))
        elif kind == "activation":
            h = act(layer["activation"], h)
        elif kind in ("maxpool", "avgpool"):
            pool = F.max_pool2d if kind == "maxpool" else F.avg_pool2d
            h = pool(h, layer["size"], stride=layer.get("stride", layer["size"]))
        elif kind == "flatten":
            h = h.reshape(-1)
        else:
            dense += 1
            W = _t(layer["weights"], grad=True)
            params[f"W{dense}"] = W
            h = W @ h
            if "bias" in layer:
                params[f"b{dense}"] = b = _t(layer["bias"], grad=True)
                h = h + b
    y = h if h.dim() == 1 else h[0, 0]
    G = _t(case.upstream) if case.upstream is not None else torch.ones_like(y)
    loss = loss_of(case.loss, y, _t(case.target)) if case.loss else (G * y).sum()
    if loss.requires_grad:
        loss.backward()
    return y, loss, x, params


@profile(scale=0.5)
@given(case=cnns())
def test_cnn_commands_and_pytorch(case: CnnCase, capsys):
    note(case.toml)

    def compare(q):
        y, loss, x, params = _torch_cnn(case)
        _close(q["loss"], loss.item(), "loss")
        _close(q["y"], y.detach(), "y")
        _close(q["grad_x"], _grad(x), "grad_x")
        for name, p in params.items():
            _close(q[f"grad_{name}"], _grad(p), f"grad_{name}")
    _commands(capsys, case.toml, must_solve=case.fits, compare=compare if case.fits else None)


# ----------------------------------------------------------------------------- recurrent

def _torch_rnn(case: RnnCase):
    P = {k: _t(v, grad=True) for k, v in case.params.items()}
    n = len(case.params["b_h" if case.cell == "elman" else "b_f"])
    h = _t(case.h0) if case.h0 else torch.zeros(n, dtype=T64)
    c = _t(case.c0) if case.c0 else torch.zeros(n, dtype=T64)
    losses, T = [], len(case.inputs)
    for step, x in enumerate(case.inputs, start=1):
        x = _t(x)
        if case.cell == "elman":
            h = act(case.g1, P["W_hh"] @ h + P["W_xh"] @ x + P["b_h"])
        else:
            hx = torch.cat([h, x])
            f, i = torch.sigmoid(P["W_f"] @ hx + P["b_f"]), torch.sigmoid(P["W_i"] @ hx + P["b_i"])
            o, ct = torch.sigmoid(P["W_o"] @ hx + P["b_o"]), torch.tanh(P["W_c"] @ hx + P["b_c"])
            c = f * c + i * ct
            h = o * torch.tanh(c)
        if case.loss_at == "every" or step == T:
            y = act(case.g2, P["W_hy"] @ h + P["b_y"]) if case.output_size else h
            t = case.targets[step - 1 if case.loss_at == "every" else 0]
            losses.append(loss_of(case.loss, y, _t(t)))
    loss = sum(losses)
    if loss.requires_grad:
        loss.backward()
    return loss, P


@profile(scale=0.5)
@given(case=rnns())
def test_recurrent_commands_and_pytorch(case: RnnCase, capsys):
    note(case.toml)

    def compare(q):
        loss, P = _torch_rnn(case)
        _close(q["loss"], loss.item(), "loss")
        for name, p in P.items():
            _close(q[f"grad_{name}"], _grad(p), f"grad_{name}")
    _commands(capsys, case.toml, must_solve=True, compare=compare)


# ----------------------------------------------------------------------------- kernels

_CACHE = tempfile.TemporaryDirectory(prefix="nnderive-props-shape-kernels-")


@profile(scale=0.2)
@given(case=cnns() | rnns())
def test_shape_kernels_equal_the_engine(case, capsys):
    import kernels
    from derive.kinds import loads
    note(case.toml)
    assume(getattr(case, "fits", True))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.toml"
        path.write_text(case.toml, encoding="utf-8")
        solved = solve(capsys, path)
    assert solved is not None
    k = kernels.compile(loads(case.toml), cache_dir=_CACHE.name)
    v = k.values_from_spec()
    trace = k.trace(v, float(case.learning_rate or 0))
    q = solved["quantities"]
    for name, value in trace.items():
        if name in q and not name.startswith("shape_"):
            _close(value, q[name], name)
    assert "loss" in trace
