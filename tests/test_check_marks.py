"""Marks must come from the work (issue 9): no formula may name what it answers, garbage numbers earn
nothing through 'carried', and no item is scored twice.

Expected numbers come from tests/oracles.py (mpmath and NumPy written out by hand), never from the
engine; verdicts on formulas follow from the rule "a formula may use the given values and what the
asked quantity is computed from", which each case states.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import mpmath as mpm
import numpy as np
import pytest

import oracles
import worked_examples
from derive.cli import main
from derive.core.errors import SpecError
from derive.grading.answers import CARRIED, CORRECT, INVALID, PRECISION, WRONG
from derive.grading.grade import Problem, grade_data, grade_latex
from derive.kinds import load, loads
from oracles import mlp3333, rnd

HW = Path(__file__).resolve().parents[1] / "docs" / "examples" / "hw_222.toml"
ASKED = ["h1", "h2", "o1", "o2", "Error", "grad_o1", "grad_In_o1", "grad_w5", "grad_h1", "grad_w1", "w5_new"]
TOTAL = 12  # hw_222: 11 asked, grad_w1 worth 2


@pytest.fixture(scope="module")
def hw():
    return Problem.build(load(HW))


def true_hw(**override):
    return oracles.net222(override=override or None, eta="0.5")   # hw_222 is 001_4_net_222 with η = 0.5


def score(records):
    return sum(r.score for r in records)


def by_name(records):
    return {(r.quantity, r.index): r for r in records}


# ----------------------------------------------------------------------------- formulas naming themselves

TAUTOLOGIES = {
    "h1": r"$h_1$", "h2": r"$h_2$", "o1": r"$o_1$", "o2": r"$o_2$", "Error": r"$E$",
    "grad_o1": r"$\frac{\partial E}{\partial o_1}$",
    "grad_In_o1": r"$\frac{\partial E}{\partial \mathrm{In}_{o_1}}$",
    "grad_w5": r"$\frac{\partial E}{\partial w_5}$", "grad_h1": r"$\frac{\partial E}{\partial h_1}$",
    "grad_w1": r"$\frac{\partial E}{\partial w_1}$", "w5_new": r"$\mathrm{w5_new}$",
}


# how the feedback writes each quantity: the course's notation (the handout's), in plain text
SHOWN = {"h1": "h₁", "h2": "h₂", "o1": "o₁", "o2": "o₂", "Error": "Error", "grad_o1": "∂Error/∂o₁",
         "grad_In_o1": "∂Error/∂Inₒ₁", "grad_w5": "∂Error/∂w₅", "grad_h1": "∂Error/∂h₁", "grad_w1": "∂Error/∂w₁",
         "w5_new": "w₅ⁿᵉʷ"}


@pytest.mark.parametrize("quantity", ASKED)
def test_a_formula_that_names_the_asked_quantity_is_invalid(hw, quantity):
    r = grade_latex(hw, quantity, None, TAUTOLOGIES[quantity])
    assert r["verdict"] == INVALID and f"uses {SHOWN[quantity]} itself" in r["feedback"], r
    assert "write" in r["feedback"] and "given values" in r["feedback"]


@pytest.mark.parametrize("quantity, text, why", [
    # o1 = σ(In_o1), so In_o1 = ln(o1 / (1 − o1)) is true, but o1 is computed from In_o1
    ("In_o1", r"$\ln\left(\frac{o_1}{1 - o_1}\right)$", "o₁, which is computed from Inₒ₁"),
    ("h1", r"$h_1 + 0 \cdot \frac{\partial E}{\partial h_1}$", "uses h₁ itself"),
    ("Error", r"$\frac{\mathrm{Error}}{2} \cdot 2$", "uses Error itself"),
    # ∂E/∂w7 = δ·h2 and ∂E/∂w5 = δ·h1: equal values, but grad_w5 is not computed from grad_w7
    ("grad_w5", r"$\frac{\partial E}{\partial w_7} \cdot \frac{h_1}{h_2}$", "∂Error/∂w₇, which ∂Error/∂w₅ is not computed from"),
])
def test_a_formula_using_a_later_or_unrelated_quantity_is_invalid(hw, quantity, text, why):
    r = grade_latex(hw, quantity, None, text)
    assert r["verdict"] == INVALID and why in r["feedback"], r


@pytest.mark.parametrize("quantity, text", [
    ("grad_w5", r"$\frac{\partial E}{\partial \mathrm{In}_{o_1}}\, h_1$"),
    ("grad_w1", r"$\frac{\partial E}{\partial h_1} h_1 (1 - h_1) x_1$"),
    ("w5_new", r"$w_5 - \eta \frac{\partial E}{\partial w_5}$"),
    ("In_o1", r"$w_5 h_1 + w_7 h_2$"),
    ("Error", r"$\frac{1}{2}(o_1 - y_1)^2 + \frac{1}{2}(o_2 - y_2)^2$"),
])
def test_honest_formulas_from_earlier_quantities_stay_correct(hw, quantity, text):
    assert grade_latex(hw, quantity, None, text)["verdict"] == CORRECT


@pytest.fixture(scope="module")
def mlp():
    return Problem.build(load(worked_examples.path("000_3_mlp_3333")))


def test_network_delta_naming_itself_is_invalid_and_the_chain_rule_is_correct(mlp):
    r = grade_latex(mlp, "delta2", None, r"$\delta^{(2)}$")
    assert r["verdict"] == INVALID and "uses δ² itself" in r["feedback"]
    r = grade_latex(mlp, "delta2", None, r"$\frac{\partial L}{\partial z^{(2)}}$")
    assert r["verdict"] == INVALID and "uses δ² itself" in r["feedback"]
    r = grade_latex(mlp, "delta2", None, r"$(W^{(3)T}\delta^{(3)}) \odot \sigma'(z^{(2)})$")
    assert r["verdict"] == CORRECT, r
    r = grade_latex(mlp, "z1", (0,), r"$z^{(1)}_1$")
    assert r["verdict"] == INVALID and "uses z¹ itself" in r["feedback"]
    # z1 > 0, so h1 = ReLU(z1) = z1 in value; but h1 is computed from z1
    r = grade_latex(mlp, "z1", (0,), r"$h^{(1)}_1$")
    assert r["verdict"] == INVALID and "h¹, which is computed from z¹" in r["feedback"]


def hw_with(grading_extra: str) -> Problem:
    text = HW.read_text(encoding="utf-8").replace("[variants]", grading_extra + "\n\n[variants]", 1)
    return Problem.build(loads(text, name="hw_222"))


def test_grading_allow_forbid_and_numbers_only():
    p = hw_with('allow = { grad_w5 = ["grad_w7"] }\nforbid = { grad_w1 = ["grad_h1"] }\nnumbers_only = ["Error"]')
    sibling = r"$\frac{\partial E}{\partial w_7} \cdot \frac{h_1}{h_2}$"
    assert grade_latex(p, "grad_w5", None, sibling)["verdict"] == CORRECT        # widened
    r = grade_latex(p, "grad_w1", None, r"$\frac{\partial E}{\partial h_1} h_1 (1 - h_1) x_1$")
    assert r["verdict"] == INVALID and "does not allow" in r["feedback"]           # narrowed
    assert grade_latex(p, "grad_w1", None, r"$\frac{\partial E}{\partial \mathrm{In}_{h_1}} x_1$")["verdict"] == CORRECT
    recs = by_name(grade_data(p, {"answers": {"Error": r"$\frac{1}{2}(o_1 - y_1)^2 + \frac{1}{2}(o_2 - y_2)^2$"}})[0])
    assert recs[("Error", None)].verdict == INVALID and "a number is asked" in recs[("Error", None)].feedback


@pytest.mark.parametrize("extra, path", [
    ('allow = { grad_w5 = ["grad_w9"] }', "grading.allow.grad_w5[0]"),
    ('allow = { grad_w9 = ["grad_w5"] }', "grading.allow.grad_w9"),
    ('allow = { grad_w5 = ["grad_w5"] }', "grading.allow.grad_w5[0]"),
    ('forbid = { h1 = "In_h1" }', "grading.forbid.h1"),
    ('numbers_only = ["nope"]', "grading.numbers_only[0]"),
    ('numbers_only = 3', "grading.numbers_only"),
    ('ask = ["h1", "h1"]', "grading.ask[1]"),
])
def test_grading_uses_keys_are_validated_with_their_path(extra, path):
    text = HW.read_text(encoding="utf-8")
    if extra.startswith("ask"):
        text = text.replace('ask = ["h1", "h2",', 'ask = ["h2",').replace("ask = [", extra[:-1] + ", ", 1)
    with pytest.raises(SpecError) as err:
        hw_with(extra) if not extra.startswith("ask") else Problem.build(loads(text, name="hw_222"))
    assert err.value.path == path, err.value


# ----------------------------------------------------------------------------- garbage numbers

def test_zeros_everywhere_score_nothing(hw):
    for zero in ("0", "0.0000", "-0.0000", "0e9", "0.00e-3"):
        records, _ = grade_data(hw, {"answers": {q: zero for q in ASKED}})
        assert score(records) == 0, (zero, [(r.quantity, r.verdict) for r in records if r.score])


def test_a_coarse_or_zero_first_answer_is_no_base_for_carried_values(hw):
    """0e9 is 'zero to the nearest 10⁹': it once made every later 0.1234 'carried'."""
    records, _ = grade_data(hw, {"answers": {q: ("0e9" if q == "h1" else "0.1234") for q in ASKED}})
    assert score(records) == 0 and not any(r.verdict == CARRIED for r in records)


def test_exponent_notation_counts_the_mantissa_digits(hw):
    h1 = true_hw()["h1"]
    four, two = rnd(h1, 4), rnd(h1, 2)
    as_exp = lambda text: f"{Decimal(text).scaleb(1)}e-1"           # 0.5622 -> 5.622e-1
    recs = by_name(grade_data(hw, {"answers": {"h1": as_exp(four), "h2": as_exp(two)}})[0])
    assert recs[("h1", None)].verdict == CORRECT
    recs = by_name(grade_data(hw, {"answers": {"h1": as_exp(two)}})[0])
    assert recs[("h1", None)].verdict == PRECISION                  # 5.6e-1: two decimals


def test_hostile_examples_in_the_docs_score_nothing(capsys):
    """docs/checking.md: the tautology, zeros and 0e9 files of docs/examples/hostile score 0 / 12."""
    assert main(["check", str(HW), str(HW.parent / "hostile"), "--json"]) == 1   # wrong answers found
    subs = json.loads(capsys.readouterr().out)["submissions"]
    assert sorted(Path(s["file"]).name for s in subs) == ["exponent.toml", "tautology.toml", "zeros.toml"]
    assert all(s["score"] == 0 and s["max_score"] == TOTAL for s in subs)


def test_carried_from_a_zero_is_not_credited(hw):
    # o1 computed from the student's h1 = 0 (true h2): σ(w5·0 + w7·h2)
    from_zero = true_hw(h1="0")["o1"]
    recs = by_name(grade_data(hw, {"answers": {"h1": "0.0000", "o1": rnd(from_zero, 4)}})[0])
    assert recs[("o1", None)].verdict == WRONG
    # h1 a hundred times too large: o2 = σ(w6·h1 + w8·h2) is about 1e-12, but an answer of zero shows no work
    big = "56.2177"
    assert rnd(true_hw(h1=big)["o2"], 4) == "0.0000"
    recs = by_name(grade_data(hw, {"answers": {"h1": big, "o2": "0.0000"}})[0])
    assert recs[("o2", None)].verdict == WRONG
    # zero at the 4 decimals asked: grad_w1 = grad_h1·h1(1 − h1)·x1 is about 9e-7 from grad_h1 = 7e-6
    assert abs(true_hw(grad_h1="0.000007")["grad_w1"]) < mpm.mpf("0.00005")
    recs = by_name(grade_data(hw, {"answers": {"grad_h1": "0.000007", "grad_w1": "0.000007"}})[0])
    assert recs[("grad_w1", None)].verdict == WRONG


def test_a_base_needs_two_significant_digits(hw):
    """grad_h1 = 0.001 says 'from 0.0005 to 0.0015'; grad_w1 = grad_h1·h1(1 − h1)·x1 from it is any
    of 0.0001, 0.0002: a guess, not a computation (Hypothesis found such files scoring 20%)."""
    one_digit = rnd(true_hw(grad_h1="0.001")["grad_w1"], 4)
    recs = by_name(grade_data(hw, {"answers": {"grad_h1": "0.001", "grad_w1": one_digit}})[0])
    assert recs[("grad_w1", None)].verdict == WRONG
    two_digits = rnd(true_hw(grad_h1="0.0062")["grad_w1"], 4)          # docs/examples/answers/ada.toml
    recs = by_name(grade_data(hw, {"answers": {"grad_h1": "0.0062", "grad_w1": two_digits}})[0])
    assert recs[("grad_w1", None)].verdict == CARRIED


def test_the_precision_window_holds_for_carried_values(hw):
    """h1 wrong (0.9000); o1 recomputed from it is about 0.485: printed to 1 decimal ('0.5') that is
    three decimals fewer than asked, outside the window of 2, so wrong, as it is standing alone."""
    carried = true_hw(h1="0.9")["o1"]
    true = true_hw()["o1"]
    one, two, four = rnd(carried, 1), rnd(carried, 2), rnd(carried, 4)
    assert abs(mpm.mpf(one) - carried) <= mpm.mpf("0.05") and rnd(true, 2) != two
    recs = by_name(grade_data(hw, {"answers": {"h1": "0.9000", "o1": one}})[0])
    assert recs[("o1", None)].verdict == WRONG
    assert "partial credit needs at least 2" in recs[("o1", None)].feedback
    recs = by_name(grade_data(hw, {"answers": {"h1": "0.9000", "o1": two}})[0])
    assert recs[("o1", None)].verdict == PRECISION                       # 2 decimals: within the window
    recs = by_name(grade_data(hw, {"answers": {"h1": "0.9000", "o1": four}})[0])
    assert recs[("o1", None)].verdict == CARRIED
    # a base printed outside the window carries nothing
    recs = by_name(grade_data(hw, {"answers": {"h1": "0.9", "o1": four}})[0])
    assert recs[("o1", None)].verdict == WRONG


def test_honest_carried_answers_still_carried(hw):
    """grad_h1 forgets the path through In_o2; grad_w1 computed from it is carried (docs/examples)."""
    slip = oracles.net222(mistake="one_path_h1", eta="0.5")
    answers = {q: rnd(slip[q], 4) for q in ASKED}
    recs = by_name(grade_data(hw, {"answers": answers})[0])
    assert recs[("grad_h1", None)].verdict == WRONG and recs[("grad_w1", None)].verdict == CARRIED
    assert score(recs.values()) == TOTAL - 1


# ----------------------------------------------------------------------------- each item scored once

MLP_ASKED = '\n[grading]\ndecimals = 4\nask = ["z1[0]", "delta2", "W1_new"]\n'
MLP_TOTAL = 1 + 3 + 9


def mlp_numbers():
    """z1, δ2 and W1_new of the 3-3-3-3 example (NumPy, written out here and in tests/oracles.py)."""
    v = mlp3333()
    W1 = np.array([[0.1, 0.3, 0.4], [0.2, 0.2, 0.3], [0.3, 0.7, 0.9]])
    W2 = np.array([[0.2, 0.3, 0.6], [0.3, 0.5, 0.4], [0.5, 0.7, 0.8]])
    x = np.array([0.1, 0.2, 0.7])
    delta1 = (W2.T @ v["delta2"]) * (v["z1"] > 0)
    return {"z1": v["z1"], "delta2": v["delta2"], "W1_new": W1 - 0.5 * np.outer(delta1, x)}


def mlp_spec(tmp_path) -> Path:
    text = worked_examples.path("000_3_mlp_3333").read_text(encoding="utf-8")
    path = tmp_path / "net.toml"
    path.write_text(text[:text.index("[stated]")] + MLP_ASKED, encoding="utf-8")
    return path


def test_duplicate_answers_count_once(tmp_path):
    p = Problem.build(load(mlp_spec(tmp_path)))
    v = mlp_numbers()
    vec = lambda q: [rnd(x, 4) for x in v[q]]
    mat = [[rnd(x, 4) for x in row] for row in v["W1_new"]]
    answers = {"z1[0]": rnd(v["z1"][0], 4), "z1": vec("z1"), "delta2": vec("delta2"), "grad_z2": vec("delta2"),
               "W1_new": mat, "W1_new[0,0]": mat[0][0], "delta2[1]": vec("delta2")[1]}
    records, _ = grade_data(p, {"answers": answers})
    assert sum(r.max_score for r in records) == MLP_TOTAL
    assert score(records) == MLP_TOTAL
    firsts = [r for r in records if r.max_score > 0]
    assert [(r.quantity, r.index) for r in firsts] == [("z1", (0,)), *[("delta2", (i,)) for i in range(3)],
                                                       *[("W1_new", (i, j)) for i in range(3) for j in range(3)]]
    later = [r for r in records if r.verdict == INVALID]
    assert {r.quantity for r in later} == {"z1", "grad_z2", "W1_new", "delta2"}
    assert all("the first answer counts" in r.feedback for r in later)


def test_whole_formula_and_elements_never_above_the_total(tmp_path, capsys):
    spec = mlp_spec(tmp_path)
    v = mlp_numbers()
    mat = [[rnd(x, 4) for x in row] for row in v["W1_new"]]
    f = tmp_path / "dup.json"
    f.write_text(json.dumps({"answers": {
        "z1": r"$W^{(1)} x + b^{(1)}$",                       # whole vector, only z1[0] asked: 1 point
        "W1_new": r"$W^{(1)} - \eta \delta^{(1)} x^T$",       # 9 points ...
        "W1_new[0,0]": mat[0][0], "W1_new[2,2]": mat[2][2],   # ... and not 9 + 2
        "delta2": [rnd(x, 4) for x in v["delta2"]]}}))
    assert main(["check", str(spec), str(f), "--json"]) == 1   # the repeated answers are invalid records
    (sub,) = json.loads(capsys.readouterr().out)["submissions"]
    assert sub["max_score"] == MLP_TOTAL and sub["score"] == MLP_TOTAL
    z1 = next(r for r in sub["records"] if r["quantity"] == "z1")
    assert z1["verdict"] == CORRECT and z1["max_score"] == 1
