"""A product whose shapes do not fit because of a known slip is ``wrong`` with the slip named, not
``invalid`` (issue 12): on the non-square 2-3-2 layer of tests/data/slips_232_tanh.toml, ``W² δ²``
for ``W²ᵀ δ²`` used to be "a product of shapes 2x3 and 2x1 does not fit" and 0 points.

Oracle: the expected sentences are written by hand from the network's shapes (W² is 2x3, δ² has
2 elements, h¹ has 3); an answer that cannot be read stays ``invalid``.  A Hypothesis property
feeds products of the problem's quantities with random transposes and ⊙/juxtaposition and checks
that a misfit is either named as a slip whose fix the engine confirms, or left ``invalid``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive.cli import main
from derive.grading.answers import INVALID, VERDICTS, WRONG
from derive.grading.grade import Problem, grade_latex
from derive.grading.parse import LatexError, parse_answer
from derive.kinds import load

TANH = Path(__file__).resolve().parent / "data" / "slips_232_tanh.toml"
EXAMPLES = 100 if os.environ.get("NNDERIVE_HYPOTHESIS_PROFILE") == "long" else 12


@pytest.fixture(scope="module")
def tanh():
    return Problem.build(load(TANH))


@pytest.mark.parametrize("quantity, text, says", [
    ("delta1", r"$W^{(2)} \delta^{(2)} \odot (1 - h^{(1)} \odot h^{(1)})$", "used W² where W²ᵀ is needed"),
    ("grad_h1", r"$W^{(2)} \delta^{(2)}$", "used W² where W²ᵀ is needed"),
    ("delta1", r"$W^{(2)T} \delta^{(2)} (1 - h^{(1)} \odot h^{(1)})$", "a matrix product where the element-wise product ⊙ is needed"),
    ("grad_W2", r"$\delta^{(2)} h^{(1)}$", "used h¹ where h¹ᵀ is needed"),
    ("delta1", r"$W^{(2)} \delta^{(2)} \odot (1 - h^{(1)})$",
     "used W² where W²ᵀ is needed; and tanh′ written as 1 − tanh"),
])
def test_a_misfit_made_by_a_known_slip_is_wrong_with_the_slip_named(tanh, quantity, text, says):
    with pytest.raises(LatexError, match="does not fit"):       # as written, it cannot be multiplied out
        parse_answer(text, tanh.vocab)
    r = grade_latex(tanh, quantity, None, text)
    assert r["verdict"] == WRONG and says in r["feedback"], r
    assert r["expected"]


@pytest.mark.parametrize("text", [r"$W^{(2)} x$", r"$W^{(2)} +$", r"$W^{(2)} h^{(1)} h^{(1)}$"])
def test_what_no_known_slip_explains_or_cannot_be_read_stays_invalid(tanh, text):
    assert grade_latex(tanh, "grad_h1", None, text)["verdict"] == INVALID


def test_check_json_grades_the_misfit_wrong(tmp_path, capsys):
    answers = tmp_path / "ada.toml"
    answers.write_text('[answers]\ngrad_h1 = \'$W^{(2)} \\delta^{(2)}$\'\n', encoding="utf-8")
    assert main(["check", str(TANH), str(answers), "--json", "--no-progress", "--jobs", "1"]) == 1
    (record,) = json.loads(capsys.readouterr().out)["submissions"][0]["records"]
    assert record["verdict"] == WRONG and record["feedback"] == "used W² where W²ᵀ is needed"


NAMES = {"W^{(2)}": "W2", "\\delta^{(2)}": "delta2", "h^{(1)}": "h1", "x": "x", "W^{(1)}": "W1", "z^{(1)}": "z1",
         "\\delta^{(1)}": "delta1", "h^{(2)}": "h2"}     # the last two: a quantity in its own formula


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(sorted(NAMES)), st.booleans()), min_size=2, max_size=3),
       st.sampled_from([" ", r" \odot ", r" \cdot "]),
       st.sampled_from(["grad_h1", "delta1", "grad_W2", "z2"]))
def test_a_misfit_is_named_only_when_its_fix_is_right(tanh, factors, op, quantity):
    text = "$" + op.join(f"{{{n}}}^T" if t else n for n, t in factors) + "$"
    try:
        parse_answer(text, tanh.vocab)
        fits = True
    except LatexError as err:
        fits = "does not fit" not in str(err)
    r = grade_latex(tanh, quantity, None, text)
    assert r["verdict"] in VERDICTS
    if not fits and r["verdict"] == WRONG:
        # named as a slip: the fix is one of the readings, and it is said in the course's notation
        assert re.search(r"is needed", r["feedback"]), r
    if r["verdict"] == WRONG:
        assert not re.search(r"\b(W[12]|delta[12]|h[12]|z1)\b", r["feedback"]), r


MLP = Path(__file__).resolve().parent.parent / "worked_examples" / "000_3_mlp_3333.toml"


@pytest.mark.parametrize("quantity, text, says", [
    ("delta2", r"$W^{(3)T} \delta^{(2)} \odot \sigma'(z^{(2)})$", "used δ² where δ³ is needed"),
    ("grad_h2", r"$W^{(3)T} \delta^{(2)}$", "used δ² where δ³ is needed"),
    ("z2", r"$W^{(2)} h^{(2)} + b^{(2)}$", "used h² where h¹ is needed"),
])
def test_a_layer_index_off_by_one_is_wrong_with_the_slip_named(quantity, text, says):
    """δ² in δ²'s own formula was refused as 'the answer uses δ² itself'; the layer's neighbour
    makes it right, so it is the slip 'δ^l for δ^{l+1}' (the expected sentences by hand, deck 000's
    notation)."""
    r = grade_latex(Problem.build(load(MLP)), quantity, None, text)
    assert r["verdict"] == WRONG and r["feedback"] == says, r


def test_the_quantity_itself_stays_invalid():
    r = grade_latex(Problem.build(load(MLP)), "delta2", None, r"$\delta^{(2)}$")
    assert r["verdict"] == INVALID and "itself" in r["feedback"]
