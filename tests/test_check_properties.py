"""Property tests of the marks (issue 9): garbage earns at most a small bound, no file beats its total.

Bounded for CI: a few dozen examples per property, no deadline.  ``NNDERIVE_HYPOTHESIS_PROFILE=long``
runs many more (see docs/checking.md); the worst garbage score found is printed with ``-s``.
"""
from __future__ import annotations

import math
import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings, target
from hypothesis import strategies as st

import oracles
import worked_examples
from derive.grading.grade import Problem, grade_data, grade_latex
from derive.kinds import load
from oracles import mlp3333, rnd

LONG = os.environ.get("NNDERIVE_HYPOTHESIS_PROFILE") == "long"   # the one switch of tests/strategies.py
# CI: few examples and no shrinking (a failure is reported as found); long: many, shrunk
SETTINGS = settings(max_examples=300 if LONG else 15, deadline=None,
                    phases=list(Phase) if LONG else [Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
GARBAGE_BOUND = 0.10       # documented in docs/checking.md: garbage scores at most 10% of the total

HW = Path(__file__).resolve().parents[1] / "docs" / "examples" / "hw_222.toml"
HW_ASKED = ["h1", "h2", "o1", "o2", "Error", "grad_o1", "grad_In_o1", "grad_w5", "grad_h1", "grad_w1", "w5_new"]
HW_TOTAL = 12
HW_NAMES = {q: rf"\mathrm{{{q}}}" for q in oracles.ORDER_222 + ["Error"]}

# the 3-3-3-3 example with a [grading] ask (its own [stated] dropped)
NET_ASK = ["z1", "h3", "loss", "delta3", "delta2", "W1_new"]
NET_SHAPES = {"z1": (3,), "h1": (3,), "z2": (3,), "h2": (3,), "z3": (3,), "h3": (3,), "loss": (), "delta3": (3,),
              "delta2": (3,), "grad_W3": (3, 3), "W1_new": (3, 3)}
NET_TOTAL = 3 + 3 + 1 + 3 + 3 + 9
NET_TEX = {"z1": "z^{(1)}", "h2": "h^{(2)}", "h3": "h^{(3)}", "loss": "L", "delta3": r"\delta^{(3)}",
           "delta2": r"\delta^{(2)}", "grad_W3": r"\frac{\partial L}{\partial W^{(3)}}", "W1_new": r"\mathrm{W1_new}",
           "z2": "z^{(2)}", "z3": "z^{(3)}", "h1": "h^{(1)}"}
ALIASES = {"grad_z2": "delta2", "grad_z3": "delta3", "y": "h3"}


@pytest.fixture(scope="module")
def hw():
    return Problem.build(load(HW))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    text = worked_examples.path("000_3_mlp_3333").read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("net") / "net.toml"
    ask = ", ".join(f'"{q}"' for q in NET_ASK)
    path.write_text(text[:text.index("[stated]")] + f"\n[grading]\ndecimals = 4\nask = [{ask}]\n", encoding="utf-8")
    return Problem.build(load(path))


def scored(p: Problem, answers: dict) -> tuple[float, float, list]:
    """(score, max score, records) of an answer file, its formulas graded in this process."""
    records, latex = grade_data(p, {"answers": answers})
    for i, a in latex:
        verdict = grade_latex(p, a.quantity, a.index, a.text)["verdict"]
        records[i].verdict, records[i].score = verdict, records[i].max_score * p.policy.credit[verdict]
    return sum(r.score for r in records), sum(r.max_score for r in records), records


# ----------------------------------------------------------------------------- garbage

ZEROS = st.sampled_from(["0", "0.0", "0.0000", "-0.0000", "0e9", "0e-9", "0.00e5", "-0"])


@st.composite
def printed(draw) -> str:
    """A printed decimal of any size and number of digits."""
    decimals = draw(st.integers(0, 6))
    units = draw(st.integers(-10**7, 10**7))
    scale = draw(st.sampled_from([1, 1, 1, 10, 1000]))
    q = Decimal(units * scale).scaleb(-decimals - 4)
    return str(q.quantize(Decimal(1).scaleb(-decimals)))


def right(text: str, x) -> bool:
    """The true value ``x`` to 4 decimals, or rounded or truncated to 2 or 3 (what earns credit alone)."""
    v, d = Decimal(text), -Decimal(text).as_tuple().exponent
    x = Decimal(repr(float(x)))
    if abs(v - x) <= Decimal("0.00005"):
        return True
    if not 2 <= d < 4:
        return False
    ulp = Decimal(1).scaleb(-d)
    return abs(v - x) <= ulp / 2 or (v != 0 and abs(v + (ulp / 2 if v > 0 else -ulp / 2) - x) <= ulp / 2)


@st.composite
def garbage_file(draw, quantities: list[str], true: dict, tex: dict, shapes: dict, downstream: dict) -> dict:
    """Every asked quantity answered by some kind of garbage; one constant and one pool per file."""
    constant = draw(printed())
    pool = draw(st.lists(printed(), min_size=1, max_size=3))

    def number(q, idx):
        text = any_number(q, idx)
        v = true.get(q)
        if v is not None and right(text, v[idx] if idx else v):   # by chance a right answer: not garbage
            return draw(ZEROS)
        return text

    def any_number(q, idx):
        kind = draw(st.sampled_from(["zero", "constant", "pool", "magnitude", "coarse"]))
        if kind == "zero":
            return draw(ZEROS)
        if kind == "constant":
            return constant
        if kind == "pool":
            return draw(st.sampled_from(pool))
        v = true.get(q)
        if v is None:
            return constant
        x = v[idx] if idx else v
        if kind == "magnitude":   # random digits at the wrong power of ten (not a multiple of the key's value)
            power = math.floor(math.log10(abs(float(x)) or 1e-9)) + draw(st.sampled_from([-3, -2, -1, 1, 2, 3]))
            digits = draw(st.integers(1000, 9999)) * draw(st.sampled_from([1, -1]))
            return rnd(Decimal(digits).scaleb(power - 3), 4)
        coarse = rnd(x, draw(st.integers(0, 1)))        # 4 asked, window 2: too coarse for credit ...
        return coarse if abs(float(coarse) - float(x)) > 0.5e-4 else constant   # ... unless it is exact

    def formula(q):
        own = tex[q]
        later = [tex[d] for d in downstream.get(q, []) if d in tex]
        name = draw(st.sampled_from([own] + later))
        shape = draw(st.sampled_from(["{n}", "2 {n} - {o}", "{o} + 0.5 {n} - 0.5 {n}", r"\frac{{{n}}}{{2}} \cdot 2"]))
        return "$" + shape.format(n=name, o=own) + "$"

    answers = {}
    for q in quantities:
        if draw(st.integers(0, 5)) == 0:
            answers[q] = formula(q)
            continue
        shape = shapes.get(q, ())
        if not shape:
            answers[q] = number(q, ())
        elif len(shape) == 1:
            answers[q] = [number(q, (i,)) for i in range(shape[0])]
        else:
            answers[q] = [[number(q, (i, j)) for j in range(shape[1])] for i in range(shape[0])]
    return answers


def _hw_true():
    v = oracles.net222(eta="0.5")
    return {q: v[q] for q in HW_ASKED}


HW_DOWNSTREAM = {"h1": ["o1", "Error", "grad_w5"], "h2": ["o2", "o1"], "o1": ["Error", "grad_o1", "grad_In_o1"],
                 "o2": ["Error"], "Error": [], "grad_o1": ["grad_In_o1", "grad_w5"], "grad_In_o1": ["grad_w5", "grad_h1"],
                 "grad_w5": ["w5_new"], "grad_h1": ["grad_w1"], "grad_w1": ["w1_new"], "w5_new": []}
NET_DOWNSTREAM = {"z1": ["h1", "z2"], "h3": ["loss", "delta3"], "loss": [],
                  "delta3": ["delta2", "grad_W3"], "delta2": ["W1_new"], "W1_new": []}
_WORST = {}


def _report(name: str, value: float) -> None:
    if value >= _WORST.get(name, -1):
        _WORST[name] = value
    target(value)


@SETTINGS
@given(data=st.data())
def test_garbage_scores_at_most_the_bound_on_hw_222(hw, data):
    tex = {q: HW_NAMES[q].replace(r"\mathrm{Error}", "E") for q in HW_ASKED + ["w1_new"]}
    answers = data.draw(garbage_file(HW_ASKED, _hw_true(), tex, {}, HW_DOWNSTREAM))
    score, total, records = scored(hw, answers)
    assert total == HW_TOTAL
    _report("hw_222", score / total)
    event(f"score {score:g}")
    assert score <= GARBAGE_BOUND * total, [(r.quantity, r.answer, r.verdict) for r in records if r.score]


@SETTINGS
@given(data=st.data())
def test_garbage_scores_at_most_the_bound_on_a_network(net, data):
    v = mlp3333()
    true = {q: v[q] for q in NET_ASK if q in v}
    answers = data.draw(garbage_file(NET_ASK, true, NET_TEX, NET_SHAPES, NET_DOWNSTREAM))
    score, total, records = scored(net, answers)
    assert total == NET_TOTAL
    _report("mlp_3333", score / total)
    assert score <= GARBAGE_BOUND * total, [(r.quantity, r.index, r.answer, r.verdict) for r in records if r.score]


@pytest.fixture(scope="module", autouse=True)
def _print_worst():
    """After the module: the worst garbage score each property found (shown with -s)."""
    yield
    for name, worst in _WORST.items():
        print(f"\nworst garbage score on {name}: {worst:.1%} of the total (bound {GARBAGE_BOUND:.0%})")


# ----------------------------------------------------------------------------- never above the total

KEYS = ["z1", "z1[0]", "z1[2]", "delta2", "grad_z2", "delta2[1]", "W1_new", "W1_new[0,0]", "W1_new[2,1]", "h3", "y",
        "y[0]", "h3[2]", "loss", "grad_W3", "grad_W3[1,2]", "h2", "h2[1]", "delta3", "grad_z3[0]"]


def _elements(key: str) -> set:
    """The (quantity, index) items a key answers, from the shapes and aliases above (not from the engine)."""
    name, _, idx = key.partition("[")
    name = ALIASES.get(name, name)
    if idx:
        return {(name, tuple(int(x) for x in idx.rstrip("]").split(",")))}
    shape = NET_SHAPES[name]
    if not shape:
        return {(name, None)}
    if len(shape) == 1:
        return {(name, (i,)) for i in range(shape[0])}
    return {(name, (i, j)) for i in range(shape[0]) for j in range(shape[1])}


@st.composite
def mixed_file(draw) -> dict:
    """Whole quantities, elements, aliases and repeats of the same items; true values, garbage, formulas."""
    v = mlp3333()
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=10, unique=True))
    answers = {}
    for key in keys:
        name, _, idx = key.partition("[")
        canonical = ALIASES.get(name, name)
        shape = NET_SHAPES[canonical]

        def number(index):
            x = v.get(canonical)
            if x is not None and draw(st.booleans()):
                return rnd(x[index] if index else x, 4)
            return draw(st.one_of(printed(), ZEROS))

        if idx:
            index = tuple(int(x) for x in idx.rstrip("]").split(","))
            answers[key] = draw(st.one_of(st.just(number(index)), st.just(f"${NET_TEX.get(canonical, 'x')}_{{1}}$")))
        elif not shape:
            answers[key] = number(())
        elif draw(st.integers(0, 3)) == 0:
            answers[key] = "$" + NET_TEX.get(canonical, "x") + "$"      # a whole-quantity formula
        elif len(shape) == 1:
            answers[key] = [number((i,)) for i in range(shape[0])]
        else:
            answers[key] = [[number((i, j)) for j in range(shape[1])] for i in range(shape[0])]
    return answers


@SETTINGS
@given(answers=mixed_file())
def test_no_file_scores_above_its_total(net, answers):
    records, latex = grade_data(net, {"answers": answers})
    total = sum(r.max_score for r in records)
    assert total == NET_TOTAL                                  # the asked total, whatever was answered
    best = sum(r.score for r in records) + sum(records[i].max_score for i, _ in latex)   # every formula right
    assert best <= total
    asked = set().union(*(_elements(q) for q in NET_ASK))
    answered = set().union(*(_elements(k) for k in answers)) & asked
    points = {(r.quantity, r.index): r.max_score for r in records if r.answer is None}   # 'not answered'
    assert sum(points.values()) == len(asked - answered)


@SETTINGS
@given(answers=mixed_file())
def test_without_ask_each_answered_item_counts_once(mlp_plain, answers):
    records, _ = grade_data(mlp_plain, {"answers": answers})
    assert sum(r.max_score for r in records) == len(set().union(*(_elements(k) for k in answers)))


@pytest.fixture(scope="module")
def mlp_plain():
    return Problem.build(load(worked_examples.path("000_3_mlp_3333")))
