"""Numeric grading: expectations follow from independent arithmetic (tests/oracles.py), not typed lists."""
from __future__ import annotations

import mpmath as mpm
import pytest

from derive.grading.answers import CARRIED, CORRECT, PRECISION, WRONG
from derive.grading.grade import grade_data
import oracles
from oracles import ORDER_222, mlp3333, rnd


def by_name(records):
    return {(r.quantity, r.index): r for r in records}


def grade(problem, answers):
    records, latex = grade_data(problem, {"problem": "001_4_net_222", "answers": answers})
    assert not latex
    return by_name(records)


def test_all_correct(net222):
    v = oracles.net222()
    recs = grade(net222, {q: rnd(v[q], 4) for q in ORDER_222})
    assert {r.verdict for r in recs.values()} == {CORRECT}
    assert all(r.score == r.max_score == 1 for r in recs.values())
    assert all(r.expected == rnd(v[q], 4) for (q, _), r in recs.items())


def test_precision_where_two_decimals_are_not_four(net222):
    v = oracles.net222()
    recs = grade(net222, {q: rnd(v[q], 2) for q in ORDER_222})
    for q in ORDER_222:
        exact_enough = abs(mpm.mpf(rnd(v[q], 2)) - v[q]) <= mpm.mpf("0.00005")
        assert recs[(q, None)].verdict == (CORRECT if exact_enough else PRECISION), q
    assert any(r.verdict == PRECISION for r in recs.values())


def test_truncation_is_precision(net222):
    v = oracles.net222()
    # a positive quantity whose value truncated to 4 decimals differs from its rounding
    q = next(q for q in ORDER_222 if v[q] > 0 and mpm.mpf(rnd(v[q], 4)) != mpm.floor(v[q] * 10**4) / 10**4)
    truncated = str(mpm.floor(v[q] * 10**4) / 10**4)[:6]
    r = grade(net222, {q: truncated})[(q, None)]
    assert r.verdict == PRECISION and "truncated" in r.feedback


def test_error_carried_forward(net222):
    """h1 off by 0.01; every later answer computed from the student's own h1."""
    true = oracles.net222()
    bad_h1 = str(mpm.mpf(rnd(true["h1"], 4)) + mpm.mpf("0.01"))[:6]
    student = oracles.net222(override={"h1": bad_h1})
    answers = {q: rnd(student[q], 4) for q in ORDER_222}
    answers["h1"] = bad_h1
    recs = grade(net222, answers)
    assert recs[("h1", None)].verdict == WRONG
    for q in ORDER_222:
        if q == "h1":
            continue
        affected = rnd(student[q], 4) != rnd(true[q], 4)
        assert recs[(q, None)].verdict == (CARRIED if affected else CORRECT), q
        if affected:
            assert recs[(q, None)].feedback.startswith("follows from your")
    assert sum(r.verdict == CARRIED for r in recs.values()) >= 10
    assert f"h₁ = {bad_h1} (wrong)" in recs[("In_o1", None)].feedback


@pytest.mark.parametrize("mistake, quantity, words", [
    ("no_sigma_prime_o1", "grad_In_o1", "missing σ′ of o₁"),
    ("sign_o1", "grad_o1", "sign flipped in ∂Error/∂o₁"),
    ("update_plus", "w5_new", "update sign flipped"),
    ("one_path_h1", "grad_h1", "missing the path through Inₒ₂"),
])
def test_mistake_named(net222, mistake, quantity, words):
    true = oracles.net222()
    wrong = oracles.net222(mistake=mistake)
    answers = {q: rnd(wrong[q], 4) for q in ORDER_222}
    recs = grade(net222, answers)
    r = recs[(quantity, None)]
    assert r.verdict == WRONG and words in r.feedback, r
    # answers computed from it are carried, not wrong again
    later = [q for q in ORDER_222[ORDER_222.index(quantity) + 1:] if rnd(wrong[q], 4) != rnd(true[q], 4)]
    assert later or mistake == "update_plus"
    for q in later:
        if mistake == "update_plus" and q.endswith("_new"):  # every update repeats the same slip
            assert recs[(q, None)].verdict == WRONG and words in recs[(q, None)].feedback, q
        else:
            assert recs[(q, None)].verdict == CARRIED, q


def test_mistake_named_through_unanswered_step(net222):
    """grad_In_o1 not answered: grad_w5 computed without σ′ still names the missing σ′."""
    wrong = oracles.net222(mistake="no_sigma_prime_o1")
    answers = {q: rnd(wrong[q], 4) for q in ["h1", "o1", "grad_o1", "grad_w5"]}
    r = grade(net222, answers)[("grad_w5", None)]
    assert r.verdict == WRONG and "missing σ′ of o₁" in r.feedback


def test_wrong_without_a_known_mistake_names_the_step(net222):
    r = grade(net222, {"grad_w5": "0.9999"})[("grad_w5", None)]
    assert r.verdict == WRONG and "δ₅ = ∂Error/∂Inₒ₁·h₁" in r.feedback   # ∂E/∂w5 is δ₅ in the deck's notation


@pytest.mark.parametrize("mistake, quantity, words", [
    ("W_not_transposed", "grad_h2", "used W³ where W³ᵀ is needed"),
    ("no_gprime2", "delta2", "missing g′(z²)"),
])
def test_network_mistakes(mlp, mistake, quantity, words):
    right, wrong = mlp3333(), mlp3333(mistake)
    answers = {q: [rnd(x, 4) for x in wrong[q]] for q in ("z1", "h1", "z2", "h2", "z3", "h3", "delta3", quantity)}
    records, _ = grade_data(mlp, {"answers": answers})
    mine = [r for r in records if r.quantity == quantity]
    differ = [i for i in range(3) if rnd(wrong[quantity][i], 4) != rnd(right[quantity][i], 4)]
    assert differ
    for i in differ:
        assert mine[i].verdict == WRONG and words in mine[i].feedback, mine[i]


def test_matrix_answers(mlp):
    v = mlp3333()
    answers = {"grad_W3": [[rnd(x, 4) for x in row] for row in v["grad_W3"]]}
    records, _ = grade_data(mlp, {"answers": answers})
    assert len(records) == 9 and all(r.verdict == CORRECT for r in records)
    assert [r.index for r in records] == [(i, j) for i in range(3) for j in range(3)]


def test_policy_ask_points_and_missing(tmp_path):
    from derive.grading.grade import Problem
    from derive.kinds import loads
    text = open(__import__("worked_examples").path("001_4_net_222"), encoding="utf-8").read()
    text = text.replace("[notation]", "[grading]\ndecimals = 3\npoints = { default = 1, grad_w5 = 4 }\n"
                        "credit = { precision = 0.25 }\nask = [\"h1\", \"grad_w5\", \"o2\"]\n\n[notation]")
    p = Problem.build(loads(text, name="hw"))
    v = oracles.net222()
    recs = by_name(grade_data(p, {"answers": {"h1": rnd(v["h1"], 3), "grad_w5": rnd(v["grad_w5"], 1),
                                              "o1": rnd(v["o1"], 3)}})[0])
    assert recs[("h1", None)].verdict == CORRECT and recs[("h1", None)].max_score == 1
    g = recs[("grad_w5", None)]
    assert g.max_score == 4
    if g.verdict == PRECISION:
        assert g.score == 1.0
    assert recs[("o2", None)].feedback == "not answered" and recs[("o2", None)].max_score == 1
    assert recs[("o1", None)].max_score == 0  # answered but not asked


def test_bad_numbers_are_invalid_and_the_rest_graded(net222):
    v = oracles.net222()
    recs = grade(net222, {"h1": "nan", "h2": "inf", "o1": "1e309", "o2": "0x10", "Error": True,
                          "grad_w5": rnd(v["grad_w5"], 4), "grad_w9": "0.1", "In_h1": "--1"})
    for q in ("h1", "h2", "o1", "o2", "Error", "grad_w9", "In_h1"):
        assert recs[(q, None)].verdict == "invalid" and recs[(q, None)].feedback, q
    assert recs[("grad_w5", None)].verdict == CORRECT
    assert "did you mean" in recs[("grad_w9", None)].feedback
