"""A kind added from the tests alone (issue 11): one neuron ``y = w·x`` with loss ½(y − t)² and one
step of gradient descent, registered through ``derive.kinds.register`` without touching the engine.
It gets ``verify`` (stated numbers), ``solve``, a handout and ``check`` (numbers and formulas).

The expected numbers are computed here by hand with Fractions: y = w x, ∂L/∂w = (y − t) x,
w_new = w − η ∂L/∂w."""
from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction

import pytest
import sympy as sp

from derive import kinds
from derive.cli import main
from derive.core.errors import SpecError
from derive.core.plugin import Kind
from derive.core.scalar import Leaf, ScalarNode, _given, reverse_mode
from derive.core.spec import _unknown_keys, number
from derive.core.steps import LR, Derivation, Given, Node, Quantity, Update, symbol

W, X, T, ETA = Fraction(1, 2), Fraction(3), Fraction(2), Fraction(1, 10)


@dataclass(frozen=True)
class Neuron:
    w: sp.Expr
    x: sp.Expr
    t: sp.Expr
    learning_rate: sp.Expr


def load_neuron(table: dict, path: str) -> Neuron:
    _unknown_keys(table, {"w", "x", "t", "learning_rate"}, path)
    for key in ("w", "x", "t", "learning_rate"):
        if key not in table:
            raise SpecError(f"{path}.{key}", "missing")
    return Neuron(*(number(table[k], f"{path}.{k}") for k in ("w", "x", "t", "learning_rate")))


def derive_neuron(n: Neuron) -> Derivation:
    leaves = [Leaf("w", n.w, "param"), Leaf("x", n.x, "input"), Leaf("t", n.t, "target")]
    w, x, t = (leaf.symbol for leaf in leaves)
    y = ScalarNode("y", w * x, "mul")
    loss = ScalarNode("loss", (y.symbol - t) ** 2 / 2, "loss")
    steps = [_given(leaf) for leaf in leaves] + [Given(Quantity(LR), (n.learning_rate,), (), role="hyper")]
    steps += [Node(Quantity(node.name), (node.expr,), tuple(s.name for s in node.args()), op=node.op,
                   args=tuple(s.name for s in node.args())) for node in (y, loss)]
    steps += reverse_mode(leaves, [y, loss], "loss")
    steps.append(Update(Quantity("w_new"), (w - symbol(LR) * symbol("grad_w"),), ("w", LR, "grad_w"), param="w"))
    return Derivation(tuple(steps), "neuron")


NEURON = Kind("neuron", load_neuron, derive_neuron, Neuron,
              notation=lambda d: {"y": r"\hat{y}", "loss": r"\mathcal{L}"})

y = W * X
grad_w = (y - T) * X
w_new = W - ETA * grad_w
SPEC = f"""
[meta]
title = "One neuron"
[neuron]
w = {float(W)}
x = {float(X)}
t = {float(T)}
learning_rate = {float(ETA)}
[stated]
y = "{float(y)}"
grad_w = "{float(grad_w)}"
w_new = "{float(w_new) + 1}"      # wrong on purpose
"""


@pytest.fixture
def neuron():
    remove = kinds.register(NEURON)
    yield
    remove()


def test_the_tiny_kind_verifies_stated_numbers(neuron):
    from derive.verify.stated import verify_spec
    report = verify_spec(kinds.loads(SPEC, name="neuron"))
    verdicts = {r.quantity: r.verdict for r in report.records}
    assert verdicts == {"y": "exact", "grad_w": "exact", "w_new": "wrong"}


def test_the_tiny_kind_solves_and_prints_a_handout(neuron, tmp_path, capsys):
    from derive.handout.assemble import build
    spec = kinds.loads(SPEC, name="neuron")
    tex = build(spec).tex()
    assert r"\hat{y}" in tex and r"\mathcal{L}" in tex and "One neuron" in tex
    (tmp_path / "neuron.toml").write_text(SPEC)
    assert main(["solve", str(tmp_path / "neuron.toml"), "--json"]) == 0
    exact = json.loads(capsys.readouterr().out)["exact"]
    assert Fraction(exact["grad_w"]) == grad_w and Fraction(exact["w_new"]) == w_new


def test_the_tiny_kind_grades_answers(neuron, tmp_path, capsys):
    (tmp_path / "neuron.toml").write_text(SPEC.split("[stated]")[0])
    answers = {"y": str(float(y)), "grad_w": "1.5",           # the sign flipped: the true value is (y − t) x = −1.5
               "w_new": r"$w - \eta \frac{\partial \mathcal{L}}{\partial w}$"}
    (tmp_path / "alice.json").write_text(json.dumps({"answers": answers}))
    code = main(["check", str(tmp_path / "neuron.toml"), str(tmp_path / "alice.json"), "--json", "--no-progress"])
    records = {r["quantity"]: r["verdict"] for r in json.loads(capsys.readouterr().out)["submissions"][0]["records"]}
    assert float(grad_w) == -1.5
    assert records == {"y": "correct", "grad_w": "wrong", "w_new": "correct"} and code == 1


def test_an_unregistered_table_is_an_input_error():
    with pytest.raises(SpecError, match="neuron"):
        kinds.loads(SPEC, name="neuron")


def test_the_walk_through_in_the_architecture_guide_runs(capsys):
    """docs/architecture.md shows how a kind is added; its example runs as printed."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = text.index("```python\nfrom dataclasses import dataclass") + len("```python\n")
    code = text[start:text.index("```", start)]
    try:
        exec(compile(code, "docs/architecture.md", "exec"), {"__name__": "walk_through"})   # our own docs
    finally:
        kinds.kinds().pop("neuron", None)
    assert capsys.readouterr().out.strip() == "(grad_y*x,)"
