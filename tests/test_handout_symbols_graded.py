"""Issue 11, "two notations": a student who answers in the handout's own symbols is graded like one
who answers in the canonical names.  For every bundled example with a formula quantity, in every
notation profile, a sample of the derivation's own formulas (the first element of every step, or the
whole vector) is printed with the names the handout prints (derive/printing/names.py, the printer's table,
signs included: deck 003 prints δ = −∂E/∂net) and graded: the verdict must be ``correct``."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import sympy as sp

import worked_examples
from derive.core.errors import SpecError
from derive.grading.answers import CORRECT
from derive.grading.grade import Problem, grade_latex
from derive.printing.latex import ExprPrinter
from derive import kinds
from derive.kinds import names
from derive.printing.notation import PROFILES
from derive.grading.parse import MAX_CHARS as MAX_LATEX_CHARS
from derive.kinds import load
from derive.core.steps import Given

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [worked_examples.path(n) for n in worked_examples.names()] + sorted((ROOT / "docs/examples").glob("*.toml"))
STEPS_PER_PROFILE = 2          # a sample, to keep the test bounded
_ELEMENT = re.compile(r"(.+)\[(\d+)(?:,(\d+))?\]")


def _in_profile(spec, prof: str):
    return dataclasses.replace(spec, notation=(("profile", prof),) + tuple(
        (k, v) for k, v in spec.notation if k != "profile"))


def _printed_names(spec, problem: Problem, prof: str):
    """The names the handout printer uses (built the way the handout assembly builds them)."""
    return names(kinds.companions(spec, problem.derivation), prof, spec.notation)


def _in_handout_symbols(expr, nm) -> str:
    """``expr`` printed with the handout's LaTeX for each symbol; a symbol the notation prints negated
    (its printed name stands for minus the quantity) is written as minus that name."""
    stand, shown = {}, {}
    for k, x in enumerate(sorted(expr.free_symbols, key=lambda x: x.name)):
        y = sp.Symbol(f"handout{k}")
        stand[x] = nm.sign(x.name) * y
        shown[y.name] = nm(x.name)
    return ExprPrinter(shown.__getitem__).doprint(expr.xreplace(stand))


def _formula_steps(problem: Problem):
    out = []
    for step in problem.derivation.steps:
        if isinstance(step, Given) or step.name not in problem.derivation:
            continue
        items = list(step.items())
        # a formula with a case split (ReLU's derivative) is printed as an indicator 1[z > 0], which
        # a student writes as relu'(z) instead: the printed form is not an answer's spelling
        if items and any(e.free_symbols for _, e in items) and not any(e.has(sp.Piecewise) for _, e in items):
            out.append(step)
    return out


def _sample(steps, turn: int):
    """``STEPS_PER_PROFILE`` steps spread over the passes, a different set in each profile's turn (so
    the profiles together cover up to six times as many steps)."""
    picks = len(PROFILES) * STEPS_PER_PROFILE
    spread = [steps[int(k * len(steps) / picks)] for k in range(picks)] if len(steps) > picks else steps
    return [s for k, s in enumerate(spread) if k % len(PROFILES) == turn] or spread[:STEPS_PER_PROFILE]


def _problem(path: Path):
    try:
        spec = load(path)
        return spec, Problem.build(spec)
    except SpecError:           # a spec of formulas only, or a spec that shows an error message
        return None, None


# examples that check does not grade: wide layers (derived in index form; check refuses them in one line)
NOT_GRADED = {"wide_1000"}
# examples with nothing to answer as a formula (tables of activations, claims only, a bad spec)
NO_FORMULA = {"001_1_activation_table", "002_1_mcp_neuron", "002_3_activations", "004_3_linreg_loss_expansion",
              "004_7_activations", "bad_activation"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_handout_symbols_are_graded_correct_in_every_profile(path):
    if path.stem in NOT_GRADED:
        with pytest.raises(SpecError, match="wide layers"):
            Problem.build(load(path))
        return
    spec, base = _problem(path)
    if base is None or not _formula_steps(base):
        assert path.stem in NO_FORMULA, f"{path.stem} has no formula quantity to grade"
        return
    assert path.stem not in NO_FORMULA
    for turn, prof in enumerate(PROFILES):
        pspec = _in_profile(spec, prof)
        problem = Problem.build(pspec)
        nm = _printed_names(pspec, problem, prof)
        for k, step in enumerate(_sample(_formula_steps(problem), turn)):
            q = problem.derivation.quantity(step.name)
            sym, expr = next(iter(step.items()))
            index = None
            m = _ELEMENT.fullmatch(sym.name)
            if q.shape and k % 2 == 1 and len(q.shape) == 1 and 1 < q.shape[0] <= 4:
                expr, index = sp.Matrix([e for _, e in step.items()]), None     # the whole vector
            elif m:
                index = tuple(int(i) for i in m.groups()[1:] if i is not None)
            text = "$" + (_vector(expr, nm) if hasattr(expr, "shape") else _in_handout_symbols(expr, nm)) + "$"
            if len(text) > MAX_LATEX_CHARS:       # longer than an answer may be (a convolution's sum)
                continue
            got = grade_latex(problem, step.name, index, text)
            assert got["verdict"] == CORRECT, (prof, step.name, index, text, got["feedback"])


def _vector(m, nm) -> str:
    return r"\begin{bmatrix}" + r" \\ ".join(_in_handout_symbols(e, nm) for e in m) + r"\end{bmatrix}"


# ----------------------------------------------------------------------------- deck 003 by hand
# Deck 003 (profile "uibe") writes d for the target, o and y for the output and hidden values,
# w_jk for hidden j -> output k, and its error signal is δ = −∂E/∂net (formulas 3.9–3.12).  The
# answers below are the deck's own formulas, typed the way the slides write them; what they must
# equal is the engine's ∂E/∂net and ∂E/∂w (a deck δ is minus the engine's).

DECK_003 = [
    # ∂E/∂net^o_1 = −δ^o_1 = (o_1 − d_1) o_1 (1 − o_1): the "unknown name 'd'"
    ("delta2", (0,), r"(o_{1} - d_{1}) o_{1} (1 - o_{1})"),
    # ∂E/∂w_21 = −δ^o_1 y_2 (3.11): the "sign flipped"
    ("grad_W2", (0, 1), r"-\delta^{o}_{1} y_{2}"),
    # ∂E/∂net^y_1 = −δ^y_1 = −(δ^o_1 w_11 + δ^o_2 w_12) y_1 (1 − y_1) (3.12)
    ("delta1", (0,), r"-\left(\delta^{o}_{1} w_{11} + \delta^{o}_{2} w_{12}\right) y_{1} (1 - y_{1})"),
    # ∂E/∂v_11 = −δ^y_1 x_1, the hidden layer's weights (3.12)
    ("grad_W1", (0, 0), r"-\delta^{y}_{1} x_{1}"),
]


@pytest.fixture(scope="module")
def deck003():
    return Problem.build(load(worked_examples.path("003_4_bp_formulas")))


@pytest.mark.parametrize("quantity,index,text", DECK_003)
def test_deck_003_formulas_in_the_deck_symbols_are_correct(deck003, quantity, index, text):
    got = grade_latex(deck003, quantity, index, "$" + text + "$")
    assert got["verdict"] == CORRECT, got["feedback"]


def test_deck_003_delta_with_the_engine_sign_is_wrong(deck003):
    """The deck's δ is minus ∂E/∂net: δ^o_1 y_2 for ∂E/∂w_21 has the sign flipped."""
    got = grade_latex(deck003, "grad_W2", (0, 1), r"$\delta^{o}_{1} y_{2}$")
    assert got["verdict"] == "wrong" and "sign" in got["feedback"], got


def test_canonical_names_still_read_beside_the_deck_symbols(deck003):
    """The documented canonical names stay: δ^{(2)}_1 is ∂E/∂z (the engine's sign), t_1 the target."""
    got = grade_latex(deck003, "grad_W2", (0, 1), r"$\delta^{(2)}_{1} h^{(1)}_{2}$")
    assert got["verdict"] == CORRECT, got["feedback"]
    got = grade_latex(deck003, "delta2", (0,), r"$(\hat{y}_{1} - t_{1}) \hat{y}_{1} (1 - \hat{y}_{1})$")
    assert got["verdict"] == CORRECT, got["feedback"]


# ----------------------------------------------------------------------------- every printed name
from functools import lru_cache  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from derive.grading.parse import parse_answer  # noqa: E402
from derive.core.steps import symbol  # noqa: E402

_ELEMENT_NAME = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\[(\d+)(?:,(\d+))?\]")


@lru_cache(maxsize=None)
def _net(prof: str):
    spec = _in_profile(load(worked_examples.path("003_4_bp_formulas")), prof)
    p = Problem.build(spec)
    return p, _printed_names(spec, p, prof)


def _element_names(p: Problem, nm) -> list[str]:
    """Element names of the derivation's quantities that the handout prints (engine names)."""
    out = []
    for step in p.derivation.steps:
        q = step.target
        for idx in q.indices() if q.shape else []:
            key = f"{q.name}[{','.join(map(str, idx))}]"
            if key in nm.elements:
                out.append(key)
    return out


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(PROFILES)), st.data(), st.integers(-9, 9), st.integers(1, 9))
def test_every_printed_element_reads_as_its_signed_value(prof, data, a, b):
    """``a·N₁ + b·N₂`` written with two printed element names N reads as a·s₁·e₁ + b·s₂·e₂, where e
    is the element's symbol (built here from the engine name) and s the profile's sign."""
    p, nm = _net(prof)
    pool = _element_names(p, nm)
    n1, n2 = data.draw(st.sampled_from(pool)), data.draw(st.sampled_from(pool))
    sym = lambda n: symbol(_ELEMENT_NAME.fullmatch(n).group(1), tuple(
        int(i) for i in _ELEMENT_NAME.fullmatch(n).groups()[1:] if i is not None))
    expected = a * nm.sign(n1) * sym(n1) + b * nm.sign(n2) * sym(n2)
    text = rf"${a} \cdot {nm(n1)} + {b} \cdot {nm(n2)}$"
    assert sp.expand(parse_answer(text, p.vocab) - expected) == 0, text
