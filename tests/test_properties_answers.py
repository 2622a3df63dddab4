"""Random answer files for random graph, cnn and recurrent problems (issue 10): ``check`` never
crashes, no file scores above the asked total, right numbers and the printer's own formulas are
correct, wrong numbers are not, and garbage scores at most the documented bound (10% of the total,
docs/checking.md).

The problems are drawn by tests/strategies_graph.py and tests/strategies_shapes.py with a
``[grading]`` table asking for a few quantities.  Right answers are the true values at 4 decimals:
for graphs the mpmath oracle's, for cnn and recurrent problems ``solve``'s (proved equal to PyTorch
by tests/test_properties_shapes.py).  Formulas are printed by the engine's own printer with the
handout's names (as tests/test_handout_symbols_graded.py does).  Garbage: random bytes, numbers
out of range, deep nesting, unknown names, random text and LaTeX.
"""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import assume, given, note
from hypothesis import strategies as st

from cli_props import in_process, run  # noqa: F401  (in_process: autouse fixture)
from derive.core.errors import SpecError
from derive.grading.answers import CORRECT
from derive.grading.grade import Problem, grade_data, grade_latex
from derive.verify.report import solve_dict
from derive.kinds import loads
from derive.core.steps import Given
from strategies import fuzz_profile as profile
from strategies_graph import Undefined, graphs, oracle
from strategies_shapes import cnns, rnns
from test_handout_symbols_graded import _formula_steps, _in_handout_symbols, _printed_names

GARBAGE_BOUND = 0.10        # docs/checking.md


@st.composite
def problems(draw):
    """(spec text with a [grading] ask, the problem, {quantity: true value}), or None (no values)."""
    kind = draw(st.sampled_from(["graph", "cnn", "recurrent"]))
    case = draw({"graph": graphs(stated=False), "cnn": cnns(), "recurrent": rnns()}[kind])
    if kind == "cnn" and not case.fits:
        return None
    try:
        spec = loads(case.toml)
        from derive.kinds import derive
        derivation = derive(spec)
        true = solve_dict(spec.name, derivation)["quantities"]
    except SpecError:
        return None
    if kind == "graph":          # the graph's true values: the mpmath oracle's, not the engine's
        try:
            values, grads = oracle(case)
        except Undefined:
            return None
        true = {**{n: float(v) for n, v in values.items()}, **{f"grad_{n}": float(g) for n, g in grads.items()}}
    given_names = {s.name for s in derivation.steps if isinstance(s, Given)}
    candidates = sorted(n for n in true if n not in given_names and not n.startswith("shape_")
                        and n in derivation and all(abs(v) < 1e6 for v in np.ravel(true[n])))
    if not candidates:
        return None
    ask = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=4, unique=True))
    text = case.toml + "\n[grading]\ndecimals = 4\nask = [" + ", ".join(f'"{a}"' for a in ask) + "]\n"
    try:
        problem = Problem.build(loads(text))
    except SpecError:    # an ask that names one element twice (h2 and its alias y2): refused, rightly
        return None
    return text, problem, {a: true[a] for a in ask}


def _elements(value) -> list[tuple[tuple[int, ...] | None, float]]:
    a = np.asarray(value, dtype=float)
    return [(None, float(a))] if a.shape == () else [(tuple(int(i) for i in idx), float(a[idx])) for idx in np.ndindex(a.shape)]


def _key(name, idx) -> str:
    return name if idx is None else f"{name}[{','.join(map(str, idx))}]"


def _grade(p: Problem, answers: dict) -> tuple[float, float, list]:
    records, latex = grade_data(p, {"answers": answers})
    for i, a in latex:
        out = grade_latex(p, a.quantity, a.index, a.text)
        records[i].verdict, records[i].score = out["verdict"], records[i].max_score * p.policy.credit[out["verdict"]]
    return sum(r.score for r in records), sum(p.policy.points_of(n) for n, _ in p.asked()), records


def _total(p: Problem) -> float:
    return sum(p.policy.points_of(n) for n, _ in p.asked())


GARBAGE = st.one_of(
    st.sampled_from(["1e999", "-1e999", "9" * 40, "1e15", "0e100", "NaN", "inf", "", " ", "0x10", "1,5", "½",
                     "$$", "$\\frac{1}{0}$", "$" + "\\left(" * 60 + "x" + "\\right)" * 60 + "$",
                     "$" + "{" * 200 + "}" * 200 + "$", "$\\unknowncommand{x}$", "$zz_{9} + qq$", "$\\x00$"]),
    st.text(max_size=30),
    st.text(max_size=10).map(lambda t: f"${t}$"),
    st.recursive(st.just("1"), lambda inner: st.lists(inner, min_size=1, max_size=2), max_leaves=30),
    st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.dictionaries(st.text(max_size=3), st.just("1"), max_size=2),
)


@profile(scale=1.5)
@given(drawn=problems(), data=st.data())
def test_random_answer_files_are_graded_within_their_total(drawn, data):
    assume(drawn is not None)
    text, p, true = drawn
    note(text)
    answers, expect = {}, {}
    nm = None
    for name, value in true.items():
        for idx, v in _elements(value):
            how = data.draw(st.sampled_from(["right", "rounded", "wrong", "formula", "garbage", "none"]))
            key = _key(name, idx)
            if how == "right":
                answers[key], expect[key] = f"{v:.4f}", True
            elif how == "rounded":
                answers[key] = f"{v:.{data.draw(st.integers(0, 3))}f}"
            elif how == "wrong":
                answers[key], expect[key] = f"{v + data.draw(st.sampled_from([0.37, -1.5, 12.0, 1e3])):.4f}", False
            elif how == "formula":
                step = next((s for s in _formula_steps(p) if s.name == name), None)
                if step is None:
                    continue
                sym = p.element_symbol(name, idx)
                expr = dict(step.items()).get(sym)
                if expr is None:
                    continue
                nm = nm or _printed_names(p.spec, p, dict(p.spec.notation).get("profile", "standard"))
                latex = "$" + _in_handout_symbols(expr, nm) + "$"
                if len(latex) <= 2000:
                    answers[key], expect[key] = latex, True
            elif how == "garbage":
                answers[key] = data.draw(GARBAGE)
    if data.draw(st.booleans()):                     # names the problem does not have
        answers[data.draw(st.sampled_from(["zz", "grad_zz", "h9[3]", "x[99,99]", "é"]))] = "1.0"
    note(json.dumps(answers, default=str)[:3000])
    score, total, records = _grade(p, answers)
    assert score <= _total(p) + 1e-9, (score, _total(p))
    verdicts = {_key(r.quantity, r.index): r.verdict for r in records if r.quantity is not None}
    for key, right in expect.items():
        assert (verdicts.get(key) == CORRECT) == right, (key, answers[key], verdicts.get(key), records)


@profile(scale=1.5)
@given(drawn=problems(), data=st.data())
def test_garbage_never_scores_above_the_bound(drawn, data):
    assume(drawn is not None)
    text, p, true = drawn
    note(text)
    answers = {}
    for name, value in true.items():
        for idx, v in _elements(value):
            g = data.draw(GARBAGE)
            if isinstance(g, (str, int, float)) and not isinstance(g, bool):
                try:        # a garbage string that happens to be the right number is no garbage
                    if math.isfinite(float(g)) and abs(float(g) - v) <= 0.05 * max(1.0, abs(v)):
                        g = "garbage"
                except (ValueError, OverflowError):
                    pass
            answers[_key(name, idx)] = g
    note(json.dumps(answers, default=str)[:3000])
    score, _, _ = _grade(p, answers)
    assert score <= GARBAGE_BOUND * _total(p) + 1e-9, (score, _total(p))


@profile(scale=0.5)
@given(drawn=problems(), raw=st.binary(max_size=300), suffix=st.sampled_from([".toml", ".json"]))
def test_check_of_random_bytes_is_a_record_not_a_crash(drawn, raw, suffix, capsys):
    assume(drawn is not None)
    text, p, _ = drawn
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.toml"
        spec.write_text(text, encoding="utf-8")
        answers = Path(tmp) / f"answers{suffix}"
        answers.write_bytes(raw)
        code, out, err = run(capsys, "check", spec, answers, "--json", "--jobs", "1")
        assert code in (0, 1), (code, err)     # an answer file that cannot be read is its record, exit 1
        sub = json.loads(out)["submissions"][0]
        assert sub["score"] <= sub["max_score"] + 1e-9 and sub["score"] <= GARBAGE_BOUND * _total(p) + 1e-9
