"""A wrong number's feedback names the slip without blaming a factor the student got right
(issue 12).  Oracle: the 2-2-2 example computed by hand in mpmath (tests/oracles.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from derive.grading.grade import Problem, grade_data
from derive.kinds import load
from oracles import net222, rnd

HW = Path(__file__).resolve().parent.parent / "docs" / "examples" / "hw_222.toml"


@pytest.fixture(scope="module")
def hw():
    return Problem.build(load(HW))


def _feedback(p, answers: dict, key: str) -> tuple[str, str]:
    records, _ = grade_data(p, {"answers": answers})
    (r,) = [r for r in records if r.quantity == key]
    return r.verdict, r.feedback


def test_y_minus_o_alone_is_the_sign_of_the_output_gradient(hw):
    """∂E/∂w₅ from (y₁ − o₁): the slip is in y₁ − o₁, not in h₁ (which the old feedback blamed)."""
    v = net222(mistake="sign_o1", eta="0.5")
    verdict, text = _feedback(hw, {"grad_w5": rnd(v["grad_w5"], 4)}, "grad_w5")
    assert verdict == "wrong" and "sign flipped in ∂Error/∂o₁" in text, text
    assert "h₁ expected" not in text and "∂Inₒ₁/∂w₅" not in text


def test_a_sign_lost_in_the_last_step_is_said_so(hw):
    """Every earlier answer right, the last one negated: 'sign flipped', no step blamed wrongly."""
    v = net222(eta="0.5")
    answers = {k: rnd(v[k], 4) for k in ("h1", "o1", "grad_o1", "grad_In_o1")}
    answers["grad_w5"] = rnd(-v["grad_w5"], 4)
    verdict, text = _feedback(hw, answers, "grad_w5")
    assert verdict == "wrong" and text.startswith("sign flipped") and "carried" not in text, text


def test_a_right_number_rounded_too_far_blames_no_slip(hw):
    v = net222(eta="0.5")
    verdict, text = _feedback(hw, {"h1": rnd(v["h1"], 1)}, "h1")
    assert verdict == "wrong" and "rounded to 1 decimal" in text, text
    assert "slip" not in text and "bias" not in text and "carried" not in text
