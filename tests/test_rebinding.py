"""Names bound again in a [graph] (issue 10): micrograd's straight-line code ``c = c + c + 1``.

The oracle for docs/examples/micrograd.toml is PyTorch autograd (float64) running the same
straight-line code, and exact rational arithmetic (``fractions``) for the forward values.
"""
from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from derive.kinds import derive
from derive.core.errors import SpecError
from derive.core.evaluate import evaluate
from derive.handout.assemble import build
from derive.kinds import names
from derive.kinds import load, loads
from derive.verify.stated import verify_spec
from numbers_check import NumberCheck

ROOT = Path(__file__).resolve().parents[1]
MICROGRAD = ROOT / "docs" / "examples" / "micrograd.toml"


def _micrograd(a, b, relu):
    """micrograd's test_more_ops, line by line (Python rebinding; works on Fractions and tensors)."""
    c = a + b
    d = a * b + b ** 3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + relu(b + a)
    d = d + 3 * d + relu(b - a)
    e = c - d
    f = e ** 2
    g = f / 2
    g = g + 10.0 / f if not isinstance(f, Fraction) else g + Fraction(10) / f
    return g


def _values(spec):
    d = derive(spec)
    return d, {s.name: v for s, v in evaluate(d).items()}


def test_micrograd_matches_torch_autograd_and_exact_arithmetic():
    torch = pytest.importorskip("torch")
    a = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    g = _micrograd(a, b, torch.relu)
    g.backward()
    exact_g = _micrograd(Fraction(-4), Fraction(2), lambda x: max(x, Fraction(0)))
    _, values = _values(load(MICROGRAD))
    assert values["g"].exact == exact_g                              # 2421/98, exactly
    for name, ref in (("g", g.item()), ("grad_a", a.grad.item()), ("grad_b", b.grad.item())):
        assert abs(float(values[name]) - ref) <= 1e-12 * abs(ref), (name, float(values[name]), ref)
    # the numbers the spec states are torch's, rounded to 4 decimals
    assert (f"{g.item():.4f}", f"{a.grad.item():.4f}", f"{b.grad.item():.4f}") == \
        ("24.7041", "138.8338", "645.5773")


def test_micrograd_verifies_every_stated_number_exactly():
    spec = load(MICROGRAD)
    records = verify_spec(spec).records
    assert sorted(r.quantity for r in records) == ["g", "grad_a", "grad_b"]
    assert {r.verdict for r in records} == {"exact"}


def test_micrograd_handout_in_tex_and_md_with_checked_numbers():
    spec = load(MICROGRAD)
    h = build(spec)
    d, _ = _values(spec)
    for fmt, doc in (("tex", h.tex()), ("md", h.markdown())):
        check = NumberCheck(names([d], "xjtu"), [d], evaluate(d), report=verify_spec(spec))
        check.document(doc, f"micrograd.{fmt}")
        assert not check.problems, check.problems[:5]
        assert check.checked > 20
        # the rebindings are shown primed, never under their internal names c_1, d_2
        assert "{c}' & = 2 c + 1" in doc and "{d}'' & = 4 {d}'" in doc and "c_{1}" not in doc


def _graph(nodes, stated="", loss=None):
    text = '[graph]\nvalues = { a = "3", b = "5" }\nparams = ["a", "b"]\nnodes = [' + \
        ", ".join(f'"{n}"' for n in nodes) + "]\n" + (f'loss = "{loss}"\n' if loss else "") + stated
    return loads(text)


def test_a_name_means_its_latest_binding():
    # t = a b; t = t + a (= a b + a); u = t² (= (a b + a)²): ∂u/∂b = 2 (a b + a) a = 2·18·3 = 108
    spec = _graph(["t = a*b", "t = t + a", "u = t**2"])
    d, values = _values(spec)
    assert values["u"].exact == 18 ** 2 and values["t"].exact == 15 and values["t_1"].exact == 18
    assert values["grad_b"].exact == 108 and values["grad_a"].exact == 2 * 18 * (5 + 1)


def test_a_given_value_can_be_bound_again_and_the_loss_names_the_latest_binding():
    # a = a*a then x = a + b; loss "a" means the latest a (a² = 9), so ∂/∂a = 2a = 6 and ∂/∂b = 0
    spec = _graph(["a = a*a", "x = a + b"], loss="a")
    d, values = _values(spec)
    assert spec.problem.loss == "a_1" and values["grad_a"].exact == 6 and values["grad_b"].exact == 0


def test_a_rebinding_is_stated_by_its_node_name():
    spec = _graph(["t = a*b", "t = t + a"], stated='[stated]\nt = "15"\nt_1 = "19"\n')
    verdicts = {r.quantity: r.verdict for r in verify_spec(spec).records}
    assert verdicts == {"t": "exact", "t_1": "wrong"}


def test_a_rebinding_that_collides_with_a_name_is_one_clear_error():
    with pytest.raises(SpecError, match=r"graph.nodes\[2\].*'t_1'.*rename"):
        _graph(["t = a*b", "t_1 = a", "t = t + a"])


def test_rebinding_on_the_command_line_and_in_the_old_error():
    """Regression: ``c = c + c + 1`` gave "'c' is defined twice" (exit 2)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "derive.cli", "verify", str(MICROGRAD)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0 and "3 exact, 0 carried, 0 wrong" in done.stdout, done.stderr


def test_micrograd_kernel_equals_torch(tmp_path):
    """The generated Numba kernel reads the rebindings as the engine does."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("numba")
    import kernels
    a = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    g = _micrograd(a, b, torch.relu)
    g.backward()
    k = kernels.compile(load(MICROGRAD).problem, cache_dir=tmp_path)
    loss, grad = k.loss_and_grad(k.values_from_spec())
    ref = {"a": a.grad.item(), "b": b.grad.item()}
    assert abs(float(loss) - g.item()) <= 1e-12 * g.item()
    for name, got in zip(k.names, grad):
        assert abs(float(got) - ref[name]) <= 1e-12 * abs(ref[name]), (name, got)


def test_a_rebound_loss_is_named_as_shown():
    spec = _graph(["t = a*b", "t = t + a"])
    md = build(spec).markdown()
    assert "with loss node ${t}'$" in md and "t_1" not in md and "t_{1}" not in md
