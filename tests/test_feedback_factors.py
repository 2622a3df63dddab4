"""A wrong formula's feedback points at the factor that differs, never at one the student got right
(issue 12): ``(y₁ − o₁) h₁ o₁ (1 − o₁)`` for ∂E/∂w₅ is a slip in ``(y₁ − o₁)``, not in ``h₁``.

The expected sentences are written here by hand from the derivation of docs/examples/hw_222.toml
(∂E/∂w₅ = (o₁ − y₁) o₁ (1 − o₁) h₁); the grader must produce them."""
from __future__ import annotations

from pathlib import Path

import pytest

from derive.grading.grade import Problem, grade_latex
from derive.kinds import load

HW = Path(__file__).resolve().parent.parent / "docs" / "examples" / "hw_222.toml"


@pytest.fixture(scope="module")
def hw():
    return Problem.build(load(HW))


@pytest.mark.parametrize("text, says, never", [
    (r"$(y_1 - o_1)\,h_1\,o_1(1 - o_1)$", "sign flipped: the factor y₁ - o₁ should be o₁ - y₁", "h₁ expected"),
    (r"$(o_1 - y_1)\,o_1(1 - o_1)\,h_2$", "used h₂ where h₁ is needed", "differs at"),
    (r"$2\,(o_1 - y_1)\,o_1(1 - o_1)\,h_1$", "the factor 2 should not be there", "differs at"),
    (r"$(o_1 - y_1)\,h_1$", "missing", "differs at"),
    (r"$o_1 + h_1$", "not equivalent to the derivation's formula (the expected form is shown)", "differs at"),
])
def test_the_differing_factor_is_named(hw, text, says, never):
    r = grade_latex(hw, "grad_w5", None, text)
    assert r["verdict"] == "wrong", r
    assert says in r["feedback"] and never not in r["feedback"], r["feedback"]
    assert r["expected"]          # the expected form is always there to compare with
