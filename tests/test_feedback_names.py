"""Every quantity's name in feedback is plain text in the course's notation, with no LaTeX left in
it (issue 12): deck 002 printed ∂L/∂ŷ as ``∂L/∂\\haty``.  Oracle: the display names are searched
for a backslash or a brace, which plain text never has."""
from __future__ import annotations

from pathlib import Path

import pytest

import worked_examples
from derive.core.errors import SpecError
from derive.grading.grade import Problem, grade_latex
from derive.kinds import load

NAMES = ["001_4_net_222", "002_2_net_232_softmax", "000_3_mlp_3333", "003_5_xor_bp_iter1", "004_6_practice2",
         "004_4_chain_rule_221"]


@pytest.mark.parametrize("name", NAMES)
def test_display_names_have_no_latex_left(name):
    try:
        p = Problem.build(load(worked_examples.path(name)))
    except SpecError:
        pytest.fail(f"{name} cannot be graded")
    shown = {}
    for step in p.derivation.steps:
        shown[step.name] = p.display(step.name)
        for i in (step.target.indices() or [()])[:2]:
            key = step.name + ("[" + ",".join(map(str, i)) + "]" if i else "")
            shown[key] = p.display(key)
    bad = {k: v for k, v in shown.items() if "\\" in v or "{" in v or "}" in v}
    assert not bad, bad


def test_deck_002_writes_y_hat():
    p = Problem.build(load(worked_examples.path("002_2_net_232_softmax")))
    assert p.display("grad_y") == "∂L/∂ŷ" and p.display("h2") == "ŷ"


def test_a_slip_in_a_deck_notation_names_the_deck_symbols():
    """Deck 002 writes the target y and the output ŷ; deck 003 prints W² as Wᵀ (its W is the
    transpose), so W² for W²ᵀ is 'Wᵀ where W is needed' there (sentences written by hand)."""
    deck002 = Problem.build(load(worked_examples.path("002_2_net_232_softmax")))
    r = grade_latex(deck002, "delta2", None, r"$\mathbf{y} - \hat{\mathbf{y}}$")
    assert r["verdict"] == "wrong" and "∂L/∂z⁽³⁾ = ŷ - y expected" in r["feedback"], r
    uibe = Problem.build(load(Path(__file__).resolve().parent / "data" / "slips_342_uibe.toml"))
    r = grade_latex(uibe, "grad_h1", None, r"$W^{(2)} \delta^{(2)}$")
    assert r["verdict"] == "wrong" and r["feedback"] == "used Wᵀ where W is needed", r
