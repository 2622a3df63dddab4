"""Mini-batches: a [network] with several samples (input and target as lists of rows).

The worked example docs/examples/minibatch_232.toml (2-3-2, sigmoid, half SSE, 3 samples, one step)
is checked against two oracles written here: PyTorch autograd (float64) and an exact SymPy
computation that differentiates the mean loss directly (no backprop, no engine code).  Then
every command follows the batch: verify, handout (tex and md), check, kernels, and the spec errors.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive import cli
from derive.kinds import derive
from derive.kinds.network.derivation import derive_network
from derive.core.evaluate import evaluate, to_float
from derive.core.spec import SpecError
from derive.kinds import load, loads
from derive.core.steps import symbol
from oracles import network_values, stated_value

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "minibatch_232.toml"
ANSWERS = ROOT / "docs" / "examples" / "minibatch_answers" / "ben.toml"
RAW = tomllib.loads(EXAMPLE.read_text())["network"]
M = len(RAW["input"])


@pytest.fixture(scope="module")
def engine():
    return evaluate(derive(load(EXAMPLE)))


def value(values, name, idx=()):
    return to_float(values[symbol(name, idx)])


def _ends(enclosure):
    """The endpoints of an mpmath interval, as mpf numbers."""
    return mpmath.mpf(enclosure.a._mpi_[0]), mpmath.mpf(enclosure.b._mpi_[1])


def _rows(a):
    return [[sp.Rational(c) for c in r] for r in a]


# ----------------------------------------------------------------------------- exact SymPy oracle

def _sympy_oracle():
    """The mean loss as one SymPy expression in the parameters, differentiated by ``sp.diff``."""
    X, T = _rows(RAW["input"]), _rows(RAW["target"])
    params, values, shapes = [], {}, []
    for l, layer in enumerate(RAW["layer"], start=1):
        W = sp.Matrix(len(layer["weights"]), len(layer["weights"][0]),
                      lambda i, j: sp.Symbol(f"W{l}_{i}{j}"))
        b = sp.Matrix(len(layer["bias"]), 1, lambda i, _: sp.Symbol(f"b{l}_{i}"))
        for i, row in enumerate(_rows(layer["weights"])):
            for j, v in enumerate(row):
                values[W[i, j]] = v
        for i, v in enumerate(sp.Rational(c) for c in layer["bias"]):
            values[b[i]] = v
        shapes.append((W, b))
        params += list(W) + list(b)
    sig = lambda z: z.applyfunc(lambda u: 1 / (1 + sp.exp(-u)))
    losses = []
    for x, t in zip(X, T):
        h = sp.Matrix(x)
        for W, b in shapes:
            h = sig(W * h + b)
        losses.append(sum((h[i] - t[i]) ** 2 for i in range(len(t))) / 2)
    mean = sp.Add(*losses) / len(losses)
    return mean, losses, params, values, shapes


def test_the_example_matches_an_exact_sympy_derivative_of_the_mean_loss(engine):
    mean, losses, params, values, shapes = _sympy_oracle()
    eta = sp.Rational(RAW["learning_rate"])
    tol = mpmath.mpf("1e-30")
    assert abs(sp.N(mean.xreplace(values), 40) - sp.N(value(engine, "loss"), 40)) < 1e-14
    for k, loss_k in enumerate(losses, start=1):
        assert abs(float(loss_k.xreplace(values).evalf(30)) - value(engine, f"loss_s{k}")) < 1e-14
    new = {}
    for l, (W, b) in enumerate(shapes, start=1):
        for name, P in ((f"W{l}", W), (f"b{l}", b)):
            for i in range(P.rows):
                for j in range(P.cols):
                    idx = (i, j) if name[0] == "W" else (i,)
                    exact = sp.diff(mean, P[i, j]).xreplace(values).evalf(40)
                    lo, hi = _ends(engine[symbol("grad_" + name, idx)].enclosure)
                    assert lo - tol <= mpmath.mpf(str(exact)) <= hi + tol, (name, idx)
                    new[P[i, j]] = values[P[i, j]] - eta * exact
                    assert abs(float(new[P[i, j]]) - value(engine, name + "_new", idx)) < 1e-14
    assert abs(float(mean.xreplace(new).evalf(30)) - value(engine, "loss_new")) < 1e-14


# ----------------------------------------------------------------------------- PyTorch oracle

def _torch_reference():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the autograd reference is skipped")
    f = lambda a: torch.tensor([[float(c) for c in r] for r in a], dtype=torch.float64)
    v = lambda a: torch.tensor([float(c) for c in a], dtype=torch.float64)
    X, T = f(RAW["input"]), f(RAW["target"])
    params = []
    for layer in RAW["layer"]:
        params += [f(layer["weights"]).requires_grad_(), v(layer["bias"]).requires_grad_()]
    out, h = {}, X
    zs = []
    for l in range(len(RAW["layer"])):
        z = h @ params[2 * l].T + params[2 * l + 1]
        z.retain_grad()
        zs.append(z)
        h = torch.sigmoid(z)
        out[f"z{l + 1}"], out[f"h{l + 1}"] = z, h
    per = 0.5 * ((h - T) ** 2).sum(dim=1)
    # per-sample δ's: the gradient of the summed per-sample losses (each z row feeds one loss only)
    per.sum().backward(retain_graph=True)
    deltas = {f"delta{l + 1}": z.grad.clone() for l, z in enumerate(zs)}
    for p in params:
        p.grad = None
    per.mean().backward()
    eta = float(RAW["learning_rate"])
    with torch.no_grad():
        new = [p - eta * p.grad for p in params]
        h2 = X
        for l in range(len(RAW["layer"])):
            h2 = torch.sigmoid(h2 @ new[2 * l].T + new[2 * l + 1])
        loss_new = (0.5 * ((h2 - T) ** 2).sum(dim=1)).mean()
    return out, per, deltas, params, new, loss_new


def test_the_example_matches_pytorch_autograd(engine):
    out, per, deltas, params, new, loss_new = _torch_reference()
    close = lambda a, b: abs(a - b) <= 1e-12 * max(1.0, abs(b))
    for k in range(M):
        for name, t in list(out.items()) + list(deltas.items()):
            row = t[k].detach().numpy()
            for i, ref in enumerate(row):
                assert close(value(engine, f"{name}_s{k + 1}", (i,)), float(ref)), (name, k, i)
        assert close(value(engine, f"loss_s{k + 1}"), float(per[k].detach()))
    assert close(value(engine, "loss"), float(per.mean().detach()))
    for l in range(len(RAW["layer"])):
        mean_delta = deltas[f"delta{l + 1}"].mean(dim=0).numpy()
        for i, ref in enumerate(mean_delta):
            assert close(value(engine, f"delta{l + 1}", (i,)), float(ref))
        for name, p, p_new in ((f"W{l + 1}", params[2 * l], new[2 * l]), (f"b{l + 1}", params[2 * l + 1], new[2 * l + 1])):
            g, n = p.grad.numpy(), p_new.numpy()
            for idx in np.ndindex(g.shape):
                assert close(value(engine, "grad_" + name, idx), float(g[idx])), (name, idx)
                assert close(value(engine, name + "_new", idx), float(n[idx])), (name, idx)
    assert close(value(engine, "loss_new"), float(loss_new))


# ----------------------------------------------------------------------------- the commands

def test_verify_finds_every_stated_number_of_the_example(capsys):
    assert cli.main(["verify", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    stated = sum(len(v) if isinstance(v, list) and not isinstance(v[0], list) else
                 sum(map(len, v)) if isinstance(v, list) else 1
                 for v in tomllib.loads(EXAMPLE.read_text())["stated"].values())
    assert f"{stated} stated numbers: {stated} exact, 0 carried, 0 wrong" in out


def test_a_wrong_per_sample_number_is_found(tmp_path, capsys):
    text = EXAMPLE.read_text().replace('delta2_s2 = ["0.1378"', 'delta2_s2 = ["0.1387"')
    (tmp_path / "mb.toml").write_text(text)
    assert cli.main(["verify", str(tmp_path / "mb.toml")]) == 1
    wrong = [line for line in capsys.readouterr().out.splitlines()
             if line.rstrip().endswith("wrong") and "stated numbers" not in line]
    assert len(wrong) == 1 and wrong[0].split()[:2] == ["delta2_s2", "[0]"]


def test_an_unknown_per_sample_name_exits_2(tmp_path, capsys):
    text = EXAMPLE.read_text().replace("loss_s3 =", "loss_s4 =")
    (tmp_path / "mb.toml").write_text(text)
    assert cli.main(["verify", str(tmp_path / "mb.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "loss_s4" in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("fmt", ["tex", "md"])
def test_the_handout_shows_each_sample_and_the_means(fmt, tmp_path, engine):
    out = tmp_path / f"mb.{fmt}"
    assert cli.main(["handout", str(EXAMPLE), "-o", str(out)]) == 0
    text = out.read_text()
    for k in range(1, M + 1):
        assert f"Sample {k}: backward pass" in text
    assert "The mean over the mini-batch of 3 samples" in text
    # the mean δ of the output layer, rounded to the handout's 4 decimals, as the engine has it
    for i in range(2):
        assert f"{value(engine, 'delta2', (i,)):.4f}" in text


def _numpy_batch() -> dict[str, np.ndarray]:
    """Per-sample values from the float oracle of tests/oracles.py (one sample at a time), and their means."""
    per = []
    for x, t in zip(RAW["input"], RAW["target"]):
        one = {"network": {**RAW, "input": x, "target": t}}
        per.append(network_values(one))
    out = {f"{name}_s{k}": v[name] for k, v in enumerate(per, start=1) for name in v}
    for name in ("loss", "delta1", "delta2", "grad_W1", "grad_b1", "grad_W2", "grad_b2"):
        out[name] = sum(v[name] for v in per) / len(per)
    eta = float(RAW["learning_rate"])
    for p in ("W1", "b1", "W2", "b2"):
        out[p + "_new"] = per[0][p] - eta * out["grad_" + p]
    return out


@pytest.mark.parametrize("fmt", ["tex", "md"])
def test_the_handout_of_a_softmax_cross_entropy_batch(fmt, tmp_path):
    """Found by tests/test_properties_network.py: the softmax/cross-entropy step's printer named
    the one-sample quantities gprime1 and grad_y, which a batch calls gprime1_s1 and grad_y_s1."""
    spec = tmp_path / "sm.toml"
    spec.write_text('[network]\ninput = [["1", "0"], ["0", "1"]]\ntarget = [["1", "0"], ["0", "1"]]\n'
                    'loss = "cross_entropy"\n[[network.layer]]\nweights = [["0.5", "0"], ["0", "0.25"]]\n'
                    'activation = "softmax"\n')
    out = tmp_path / f"sm.{fmt}"
    assert cli.main(["handout", str(spec), "-o", str(out)]) == 0
    assert out.read_text().count("Softmax with cross-entropy: the Jacobian product") >= 2     # one per sample


def test_check_grades_per_sample_and_mean_answers(capsys):
    cli.main(["check", str(EXAMPLE), str(ANSWERS), "--json"])
    records = json.loads(capsys.readouterr().out)["submissions"][0]["records"]
    truth = _numpy_batch()
    assert len(records) == 18
    for r in records:
        true = float(np.asarray(truth[r["quantity"]])[tuple(r["index"] or ())])
        answer, half = stated_value(r["answer"])
        assert r["verdict"] == ("correct" if abs(answer - true) <= half else "wrong"), r
    assert {r["verdict"] for r in records if r["quantity"] == "grad_W2"} == {"wrong"}   # the sum, not the mean


def test_the_kernel_takes_the_mean_over_the_batch(engine, tmp_path):
    import kernels
    k = kernels.compile(load(EXAMPLE), cache_dir=tmp_path)
    theta = k.params_from_spec()
    X, T, lr = k.spec_sample()
    assert X.shape == (M, 2) and T.shape == (M, 2)
    loss, grad = k.loss_and_grad(theta, X, T)
    assert abs(loss - value(engine, "loss")) <= 1e-12
    for name, g in k.unpack(grad).items():
        for idx in np.ndindex(g.shape):
            assert abs(g[idx] - value(engine, "grad_" + name, idx)) <= 1e-12
    before = k.sgd_step(theta, X, T, lr)
    assert abs(before - value(engine, "loss")) <= 1e-12
    for name, p in k.unpack(theta).items():
        for idx in np.ndindex(p.shape):
            assert abs(p[idx] - value(engine, name + "_new", idx)) <= 1e-12


# ----------------------------------------------------------------------------- the spec

def _spec(inputs: str, targets: str) -> str:
    return (f"[network]\ninput = {inputs}\ntarget = {targets}\nloss = \"half_sse\"\n"
            "[[network.layer]]\nweights = [[\"0.5\", \"-0.25\"]]\nactivation = \"sigmoid\"\n")


def test_one_row_is_the_plain_one_sample_network():
    one = derive_network(loads(_spec('[["1", "2"]]', '[["0.5"]]')).problem)
    plain = derive_network(loads(_spec('["1", "2"]', '["0.5"]')).problem)
    assert one == plain


def test_a_batch_of_identical_rows_has_the_one_sample_gradients():
    batch = evaluate(derive_network(loads(_spec('[["1", "2"], ["1", "2"]]', '[["0.5"], ["0.5"]]')).problem))
    plain = evaluate(derive_network(loads(_spec('["1", "2"]', '["0.5"]')).problem))
    for idx in [(0, 0), (0, 1)]:
        assert batch[symbol("grad_W1", idx)].enclosure == plain[symbol("grad_W1", idx)].enclosure


@pytest.mark.parametrize("inputs, targets, path", [
    ('[["1", "2"], ["3"]]', '[["0"], ["1"]]', "network.input[1]"),
    ('[["1", "2"], ["3", "4"]]', '[["0"]]', "network.target"),
    ('[["1", "2"], ["3", "4"]]', '["0"]', "network.target"),
    ('[["1", "2"], ["3", "4"]]', '[["0"], ["1", "2"]]', "network.target[1]"),
    ('["1", "2"]', '[["0"], ["1"]]', "network.target"),
    ("[" + ", ".join(['["1", "2"]'] * 65) + "]", '[["0"]]', "network.input"),
])
def test_bad_batches_name_the_key(inputs, targets, path):
    with pytest.raises(SpecError) as err:
        loads(_spec(inputs, targets))
    assert err.value.path == path


def test_a_batch_without_targets_names_network_target():
    text = _spec('[["1", "2"], ["3", "4"]]', '[["0"], ["1"]]').replace('target = [["0"], ["1"]]\n', "")
    with pytest.raises(SpecError) as err:
        loads(text)
    assert err.value.path == "network.target"
