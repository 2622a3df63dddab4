"""Wide layers in index form (issue 9): derive/wide.py against independent oracles.

* the element engine (derive_network, every element its own SymPy expression) on networks small
  enough for both: the same names, shapes and aliases, the same exact Rationals, enclosures that
  overlap, the same rounded numbers and the same verdicts for stated numbers (Hypothesis over the
  suite's network strategy);
* PyTorch autograd and NumPy (float64) on a 300→300 sigmoid layer given as a spec file (under the
  1 MB spec cap) and on a two-layer network above the element engine's limit;
* mpmath at 60 digits from the given numbers: the enclosures contain the true values;
* the commands on the 300→300 spec end (hang guard only: derive.core.sandbox.run with a generous limit).
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given, note

from derive.kinds.network import wide
from derive.kinds.network.spec import MAX_EXACT_PARAMS
from derive.kinds.network.derivation import derive_network
from derive.core.errors import SpecError
from derive.core.evaluate import carry, evaluate, precision
from derive.core.steps import vector_symbols
from derive.core.rounding import _ends as ends, show
from derive.core.sandbox import run
from derive.kinds import loads
from strategies import networks, profile

ROOT = Path(__file__).resolve().parents[1]
HANG = 600       # seconds: a hang guard, not a speed requirement


# ----------------------------------------------------------------------------- specs

def wide_spec(n_in: int, sizes: list[int], seed: int = 1, acts=("sigmoid",), loss: str = "half_sse",
              stated: str = "") -> tuple[str, dict]:
    """A spec of 2-decimal numbers and the plain data it was written from (the oracles read the data)."""
    rng = random.Random(seed)
    d = lambda: f"{rng.randint(-50, 50) / 100:.2f}"
    data = {"x": [d() for _ in range(n_in)], "layers": [], "lr": "0.5"}
    prev = n_in
    for k, n in enumerate(sizes):
        data["layers"].append({"W": [[d() for _ in range(prev)] for _ in range(n)], "b": [d() for _ in range(n)],
                               "act": acts[k % len(acts)]})
        prev = n
    data["t"] = [str(rng.randint(0, 1)) for _ in range(prev)]
    q = lambda v: "[" + ", ".join(f'"{x}"' for x in v) + "]"
    text = [f'[meta]\ntitle = "wide {n_in}-{"-".join(map(str, sizes))}"\n[network]', f"input = {q(data['x'])}",
            f"target = {q(data['t'])}", f'loss = "{loss}"', f'learning_rate = "{data["lr"]}"']
    for layer in data["layers"]:
        text += ["[[network.layer]]", "weights = [" + ",\n".join(q(r) for r in layer["W"]) + "]",
                 f"bias = {q(layer['b'])}", f'activation = "{layer["act"]}"']
    return "\n".join(text) + "\n" + stated, data


def torch_reference(data: dict, loss: str = "half_sse") -> dict:
    """Forward, backward and one SGD step by PyTorch autograd in float64."""
    torch = pytest.importorskip("torch")
    f = lambda v: torch.tensor([float(x) for x in v], dtype=torch.float64)
    x, t = f(data["x"]), f(data["t"])
    Ws = [torch.tensor([[float(w) for w in r] for r in L["W"]], dtype=torch.float64, requires_grad=True)
          for L in data["layers"]]
    bs = [f(L["b"]).requires_grad_(True) for L in data["layers"]]
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda z: z}
    out, h = {}, x
    for k, (W, b, L) in enumerate(zip(Ws, bs, data["layers"]), start=1):
        z = W @ h + b
        z.retain_grad()
        h = act[L["act"]](z)
        out[f"z{k}"], out[f"h{k}"] = z, h
    y = h
    lossv = 0.5 * ((y - t) ** 2).sum() if loss == "half_sse" else ((y - t) ** 2).mean()
    lossv.backward()
    lr = float(data["lr"])
    res = {k: v.detach().numpy() for k, v in out.items()}
    res["loss"] = float(lossv.detach())
    for k, (W, b) in enumerate(zip(Ws, bs), start=1):
        res[f"grad_W{k}"], res[f"grad_b{k}"] = W.grad.numpy(), b.grad.numpy()
        res[f"delta{k}"] = out[f"z{k}"].grad.numpy()
        res[f"W{k}_new"], res[f"b{k}_new"] = (W - lr * W.grad).detach().numpy(), (b - lr * b.grad).detach().numpy()
    with torch.no_grad():
        h = x
        for k, (W, b, L) in enumerate(zip(Ws, bs, data["layers"]), start=1):
            h = act[L["act"]]((W - lr * W.grad) @ h + (b - lr * b.grad))
            res[f"h{k}_new"] = h.numpy()
        res["loss_new"] = float(0.5 * ((h - t) ** 2).sum() if loss == "half_sse" else ((h - t) ** 2).mean())
    return res


def numpy_reference(data: dict) -> dict:
    """The same single sigmoid layer and half_sse, written out with NumPy (float64)."""
    x = np.array(data["x"], float)
    t = np.array(data["t"], float)
    (L,) = data["layers"]
    W, b = np.array(L["W"], float), np.array(L["b"], float)
    z = W @ x + b
    h = 1 / (1 + np.exp(-z))
    delta = (h - t) * h * (1 - h)
    gW = np.outer(delta, x)
    lr = float(data["lr"])
    W2, b2 = W - lr * gW, b - lr * delta
    h2 = 1 / (1 + np.exp(-(W2 @ x + b2)))
    return {"z1": z, "h1": h, "delta1": delta, "grad_W1": gW, "W1_new": W2, "b1_new": b2, "h1_new": h2,
            "loss": 0.5 * ((h - t) ** 2).sum(), "loss_new": 0.5 * ((h2 - t) ** 2).sum()}


# ----------------------------------------------------------------------------- the element engine

def assert_same_values(net, stated=None):
    """Index form and element engine agree: exact parts equal, enclosures overlap, same rounding."""
    d_el, d_wide = derive_network(net), wide.derive_wide(net)
    assert [s.name for s in d_el.steps] == d_wide.names
    assert [s.target.shape for s in d_el.steps] == [s.target.shape for s in d_wide.steps]
    assert d_el.aliases == d_wide.aliases
    if stated is None:
        a, b, touched_a, touched_b = evaluate(d_el), evaluate(d_wide), None, None
    else:
        (a, touched_a), (b, touched_b) = carry(d_el, evaluate(d_el), stated), carry(d_wide, evaluate(d_wide), stated)
    with precision(160):
        for step in d_el.steps:
            for sym in step.target.symbols():
                x, y = a[sym], b[sym]
                assert x.enclosure.a <= y.enclosure.b and y.enclosure.a <= x.enclosure.b, sym
                if x.exact is not None and y.exact is not None:
                    assert x.exact == y.exact, sym
                elif (x.exact is None) != (y.exact is None):
                    # only where the two enclosures differ: a product over whole rows can find an
                    # exact value (a + (−a) = 0) that an element's interval sum only encloses
                    exact, other = (x, y) if x.exact is not None else (y, x)
                    lo, hi = ends(other)
                    assert lo <= exact.exact <= hi and hi - lo < sp.Rational(1, 10**40), sym
                for places in (4, 10):
                    try:
                        want = show(x, places)
                    except ArithmeticError:      # Undecided: too close to a rounding boundary to say
                        continue
                    try:     # the same number (a tighter enclosure may show an exact 0 as "0", not "0.0000")
                        assert sp.Rational(show(y, places).text) == sp.Rational(want.text), sym
                    except ArithmeticError:
                        pass
                if touched_a is not None:
                    assert (sym in touched_a) == (sym in touched_b), sym
    return d_el, d_wide


SMALL = """
[network]
input = ["0.5", "-0.2", "0.1"]
target = ["1", "0"]
loss = "half_sse"
learning_rate = "0.1"
[[network.layer]]
weights = [["0.1", "0.4", "0.3"], ["-0.3", "0.2", "log(0.34)"]]
bias = ["0", "0.1"]
activation = "tanh"
[[network.layer]]
weights = [["0.7", "-0.5"], ["0.2", "0.3"]]
bias = ["0.2", "-0.1"]
activation = "sigmoid"
"""


def test_a_small_network_has_the_element_engines_values():
    # z1[0] = 0.05 − 0.08 + 0.03 = 0 exactly, so tanh gives an exact 0 and W2_new[·,0] stays exact
    d_el, _ = assert_same_values(loads(SMALL).problem)
    values = evaluate(d_el)
    from derive.core.steps import symbol
    assert values[symbol("h1", (0,))].exact == 0 and values[symbol("W2_new", (0, 0))].exact == sp.Rational(7, 10)


def test_carried_values_and_what_they_read_match_the_element_engine():
    from derive.core.steps import symbol
    net = loads(SMALL).problem
    stated = {symbol("z1", (1,)): sp.Rational(-21, 100), symbol("grad_W2", (1, 0)): sp.Rational(1, 50),
              symbol("W1_new", (0, 2)): sp.Rational(3, 10), symbol("delta2", (0,)): sp.Rational(-1, 10),
              symbol("learning_rate"): sp.Rational(1, 5)}
    assert_same_values(net, stated)


SUPPORTED_LOSSES = {"half_sse", "mse", "mae", "bce", "cross_entropy"}


@profile(3)
@given(case=networks(max_samples=1, stated=True))
def test_index_form_equals_element_engine_on_random_small_networks(case):
    from derive.verify.stated import resolve
    spec = loads(case.toml)
    net = spec.problem
    assume(wide.unsupported(net) is None)
    note(case.toml)
    try:
        evaluate(derive_network(net))
    except (SpecError, ArithmeticError):
        assume(False)                  # no numbers (a log of 0, an overflow): nothing to compare
    stated = {}
    for st in spec.stated:
        try:
            stated[resolve(derive_network(net), st)] = st.stated.value
        except SpecError:
            pass
    assert_same_values(net, stated or None)


def test_the_loss_gradient_is_the_element_engines_for_every_supported_loss():
    from derive.kinds.network.derivation import loss_gradient
    from derive.core import primitives
    for name in primitives.LOSSES:
        supported = wide._loss_terms(name, 3) is not None
        assert supported == (name in SUPPORTED_LOSSES), name
        if not supported:
            continue
        for n in (1, 2, 5):
            ys, ts = vector_symbols("h2", n), vector_symbols("t", n)
            assert wide.output_gradient(name, "h2", n) == list(loss_gradient(primitives.LOSSES[name].define(ys, ts), ys))


# ----------------------------------------------------------------------------- PyTorch, NumPy, mpmath

def _close(got, want, what):
    np.testing.assert_allclose(np.array(got, dtype=float), np.asarray(want, dtype=float), rtol=1e-11, atol=1e-13,
                               err_msg=what)


def test_a_300_by_300_sigmoid_layer_matches_pytorch_and_numpy():
    from derive.verify.report import solve_dict
    text, data = wide_spec(300, [300])
    spec = loads(text)
    assert spec.problem.param_count > MAX_EXACT_PARAMS
    q = run(lambda: solve_dict("w", derive_network(spec.problem)), timeout=HANG, memory_mb=2048)["quantities"]
    for ref in (torch_reference(data), numpy_reference(data)):
        for name, want in ref.items():
            _close(q[name], want, name)


def test_two_wide_layers_match_pytorch():
    from derive.verify.report import solve_dict
    text, data = wide_spec(150, [140, 20], seed=3, acts=("tanh", "sigmoid"), loss="mse")
    net = loads(text).problem
    assert net.param_count > MAX_EXACT_PARAMS
    q = run(lambda: solve_dict("w", derive_network(net)), timeout=HANG, memory_mb=2048)["quantities"]
    for name, want in torch_reference(data, "mse").items():
        _close(q[name], want, name)


def test_enclosures_hold_the_true_values():
    """h1, δ1, ∂L/∂W1 and W1_new elements of the 300→300 layer at 60 digits from the given numbers."""
    from derive.core.steps import symbol
    text, data = wide_spec(300, [300], seed=5)
    values = evaluate(derive_network(loads(text).problem))
    (L,) = data["layers"]
    with mp.workdps(60):
        x, t = [mp.mpf(v) for v in data["x"]], [mp.mpf(v) for v in data["t"]]
        for i, j in ((0, 0), (17, 299), (299, 150)):
            z = mp.fsum(mp.mpf(w) * xv for w, xv in zip(L["W"][i], x)) + mp.mpf(L["b"][i])
            h = 1 / (1 + mp.exp(-z))
            delta = (h - t[i]) * h * (1 - h)
            truth = {symbol("z1", (i,)): z, symbol("h1", (i,)): h, symbol("delta1", (i,)): delta,
                     symbol("grad_W1", (i, j)): delta * x[j],
                     symbol("W1_new", (i, j)): mp.mpf(L["W"][i][j]) - mp.mpf("0.5") * delta * x[j]}
            for sym, true in truth.items():
                enc = values[sym].enclosure
                assert mp.mpf(enc.a) <= true <= mp.mpf(enc.b), sym
                assert mp.mpf(enc.b) - mp.mpf(enc.a) < mp.mpf(10) ** -40, sym


# ----------------------------------------------------------------------------- the commands

def cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "derive.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=HANG, cwd=cwd)


@pytest.fixture(scope="module")
def wide_file(tmp_path_factory):
    """The 300→300 spec with stated numbers: three true values (computed here by NumPy and rounded to
    4 decimals, far from a rounding boundary), one 0.01 off."""
    text, data = wide_spec(300, [300], seed=7)
    ref = numpy_reference(data)
    stated = {"z1[4]": ref["z1"][4], "h1[10]": ref["h1"][10], "grad_W1[3,7]": ref["grad_W1"][3][7],
              "h1_new[2]": ref["h1_new"][2] + 0.01}
    for k, v in stated.items():
        assert abs(v * 1e4 - round(v * 1e4) - 0.5) > 1e-3 and abs(v * 1e4 - round(v * 1e4) + 0.5) > 1e-3
    lines = "[stated]\n" + "".join(f'"{k}" = "{v:.4f}"\n' for k, v in stated.items())
    path = tmp_path_factory.mktemp("wide") / "w300.toml"
    path.write_text(text + lines)
    assert path.stat().st_size < 1_000_000
    return path, ref


def test_verify_gives_the_verdicts_on_a_wide_layer(wide_file):
    path, _ = wide_file
    r = cli("verify", path, "--json")
    assert r.returncode == 1, r.stderr              # one stated number is wrong
    verdicts = {(rec["quantity"], tuple(rec["index"])): rec["verdict"] for rec in json.loads(r.stdout)["examples"][0]["records"]}
    assert verdicts == {("z1", (4,)): "exact", ("h1", (10,)): "exact", ("grad_W1", (3, 7)): "exact",
                        ("h1_new", (2,)): "wrong"}


def test_solve_json_gives_every_element(wide_file):
    path, ref = wide_file
    r = cli("solve", path, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert np.array(out["quantities"]["grad_W1"]).shape == (300, 300)
    assert len(out["exact"]["W1_new"]) == 300 and all(len(row) == 300 for row in out["exact"]["W1_new"])
    _close(out["quantities"]["W1_new"], ref["W1_new"], "W1_new")
    from fractions import Fraction
    assert float(Fraction(out["exact"]["z1"][4])) == pytest.approx(ref["z1"][4], rel=1e-12)   # a rational: exact
    lo, hi = (float(v) for v in out["exact"]["h1"][0].strip("[]").split(","))            # an enclosure
    assert lo <= ref["h1"][0] * (1 + 1e-15) and ref["h1"][0] * (1 - 1e-15) <= hi


def test_the_handout_shows_vector_forms_and_a_few_elements(wide_file, tmp_path):
    path, ref = wide_file
    out = tmp_path / "w.md"
    r = cli("handout", path, "--format", "md", "-o", out)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert r"z^{(1)} & = W^{(1)} x + b^{(1)}" in text
    assert r"\frac{\partial L}{\partial W^{(1)}} & = \delta^{(1)} \, x^{T}" in text
    assert text.count("\n") < 400                     # not one line per element
    assert f"{ref['h1'][0]:.4f}" in text              # h1[0], rounded as NumPy rounds it (far from a tie here)


def test_check_and_claims_refuse_a_wide_layer_in_one_line(wide_file, tmp_path):
    path, _ = wide_file
    answers = tmp_path / "a.toml"
    answers.write_text('[answers]\n"z1[0]" = "0.1"\n')
    r = cli("check", path, answers)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "at most 20000 parameters" in r.stderr


@pytest.mark.parametrize("change,words", [
    ('activation = "sigmoid"', "softmax"), ('loss = "half_sse"', "hinge")])
def test_what_the_index_form_does_not_take_is_one_line(tmp_path, change, words):
    text, _ = wide_spec(150, [140], seed=2)
    if words == "softmax":
        text = text.replace(change, 'activation = "softmax"').replace('loss = "half_sse"', 'loss = "cross_entropy"')
    else:
        text = text.replace(change, 'loss = "hinge"')
    path = tmp_path / "w.toml"
    path.write_text(text)
    r = cli("solve", path, "--json")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "index form" in r.stderr and words in r.stderr


# ----------------------------------------------------------------------------- generated weights

def splitmix64_reference(seed: int, k: int) -> int:
    """The generator of derive/generated.py's docstring, written again with Python integers."""
    mask = 2**64 - 1
    z = (seed + (k + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_generated_weights_are_the_documented_rule():
    from fractions import Fraction
    text = ('[network]\ninput = ["0.5", "-0.25", "1"]\ntarget = ["1", "0"]\nloss = "half_sse"\n'
            '[[network.layer]]\nsize = 2\nweights = { seed = 12345, low = "-0.5", high = "0.25", decimals = 2 }\n'
            'bias = { seed = 9, low = "0", high = "1", decimals = 1 }\nactivation = "sigmoid"\n')
    layer = loads(text).problem.layers[0]
    want = [Fraction(-50 + splitmix64_reference(12345, k) % 76, 100) for k in range(6)]
    assert [Fraction(int(w.p), int(w.q)) for row in layer.weights for w in row] == want
    assert [Fraction(int(b.p), int(b.q)) for b in layer.bias] == \
        [Fraction(splitmix64_reference(9, k) % 11, 10) for k in range(2)]


def test_a_generated_1000_by_1000_layer_matches_pytorch():
    """The 1000→1000 layer of docs/guide.md's example fits the spec cap through its seeded weights."""
    from fractions import Fraction
    from derive.verify.report import solve_dict
    rng = random.Random(4)
    n = 1000
    x = [f"{rng.randint(-50, 50) / 100:.2f}" for _ in range(n)]
    t = [str(rng.randint(0, 1)) for _ in range(n)]
    q = lambda v: "[" + ", ".join(f'"{e}"' for e in v) + "]"
    text = (f'[network]\ninput = {q(x)}\ntarget = {q(t)}\nloss = "half_sse"\nlearning_rate = "0.5"\n'
            '[[network.layer]]\nsize = 1000\nweights = { seed = 7, low = "-0.05", high = "0.05", decimals = 3 }\n'
            'bias = { seed = 8, low = "-0.5", high = "0.5", decimals = 2 }\nactivation = "sigmoid"\n')
    assert len(text.encode()) < 1_000_000
    W = [[float(Fraction(-50 + splitmix64_reference(7, i * n + j) % 101, 1000)) for j in range(n)] for i in range(n)]
    b = [float(Fraction(-50 + splitmix64_reference(8, i) % 101, 100)) for i in range(n)]
    data = {"x": x, "t": t, "lr": "0.5", "layers": [{"W": W, "b": b, "act": "sigmoid"}]}
    q_out = run(lambda: solve_dict("g", derive_network(loads(text).problem)), timeout=HANG, memory_mb=3072)
    assert q_out["exact_omitted"] == ["W1", "grad_W1", "W1_new"]
    for name, want in torch_reference(data).items():
        _close(q_out["quantities"][name], want, name)


BAD_TABLES = [({"seed": -1}, "seed"), ({"seed": True}, "seed"), ({"decimals": 7}, "decimals"),
              ({"low": "0.123"}, "low"), ({"high": "-0.9"}, "high"), ({"low": 1}, "low"), ({"extra": 1}, "")]


@pytest.mark.parametrize("change,key", BAD_TABLES)
def test_a_bad_generator_table_names_its_key(change, key):
    table = {"seed": 1, "low": "-0.5", "high": "0.5", "decimals": 2, **change}
    body = ", ".join(f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}" for k, v in table.items())
    text = f'[network]\ninput = ["1"]\ntarget = ["0"]\nloss = "half_sse"\n[[network.layer]]\nsize = 1\n' \
           f'weights = {{ {body} }}\nactivation = "sigmoid"\n'
    with pytest.raises(SpecError) as err:
        loads(text)
    assert err.value.path == "network.layer[0].weights" + (f".{key}" if key else "")


@profile(20)
@given(text=__import__("hypothesis").strategies.from_regex(r"-?[0-9]{1,30}(\.[0-9]{1,30})?", fullmatch=True))
def test_a_plain_decimal_is_read_as_parse_stated_reads_it(text):
    """spec.number's shortcut for plain decimals (a written-out wide layer has 10⁵ of them)."""
    from derive.core.numbers import parse_stated
    from derive.core.spec import number
    assert number(text, "x") == parse_stated(text, "x").value


def test_claims_on_a_wide_layer_are_refused_in_one_line(tmp_path):
    text, _ = wide_spec(150, [140], seed=2, stated='[[claim]]\nlhs = "delta1"\nrhs = "grad_y * gprime1"\n')
    path = tmp_path / "w.toml"
    path.write_text(text)
    r = cli("verify", path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "claim" in r.stderr and "at most 20000 parameters" in r.stderr
