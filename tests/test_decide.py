"""The one identity decider (derive/verify/decide.py), used by slide claims and by grading alike.

The oracle for the kink: by the registry, relu′ is 1 for a positive input and 0 otherwise, so
``step(x)`` (1 at x = 0) differs from it at x = 0 only, a point random sampling never hits; the
case split must find it for a claim and for a student's formula alike.  The sampler's properties
are checked over generated symbols and domains."""
from __future__ import annotations

import random

import sympy as sp
from hypothesis import given, strategies as st

from derive import kinds
from derive.grading.answers import CORRECT, WRONG
from derive.grading.grade import Problem, grade_latex
from derive.verify import decide
from derive.verify.claims import check_claims

RELU = '''[graph]
values = { x = "symbol", t = "symbol" }
nodes = ["y = relu(x)", "L = (y - t)**2 / 2"]
'''
CLAIMS = RELU + '''
[[claim]]
lhs = "grad_x"
rhs = "grad_y * step(x)"
[[claim]]
lhs = "grad_x"
rhs = "(y - t) * d(y, x)"
'''


def test_a_claim_that_differs_only_at_a_kink_differs_at_that_point():
    spec = kinds.loads(CLAIMS)
    kink, same = check_claims(spec, kinds.derive(spec))
    assert kink.verdict == "differs" and "x = 0" in kink.counterexample
    assert same.verdict == "proved"


def test_a_student_formula_that_differs_only_at_a_kink_is_wrong_and_told_where():
    p = Problem.build(kinds.loads(RELU))
    kink = grade_latex(p, "grad_x", None, r"$\frac{\partial L}{\partial y} \operatorname{step}(x)$")
    assert kink["verdict"] == WRONG and "x = 0" in kink["feedback"] and "kink" in kink["feedback"]
    same = grade_latex(p, "grad_x", None, r"$(y-t)\operatorname{relu}'(x)$")
    assert same["verdict"] == CORRECT and "case split" in same["feedback"]


def test_one_result_type_for_both_uses():
    spec = kinds.loads(CLAIMS)
    result = check_claims(spec, kinds.derive(spec))[0]
    assert isinstance(result.decision, decide.Decision)
    assert result.decision.verdict == decide.NOT_EQUIVALENT and result.decision.method == "at a kink"


def test_untrusted_input_is_not_simplified_beyond_the_budget():
    x = sp.Symbol("x", real=True)
    big = sp.Add(*[(x + k) ** 2 for k in range(300)]) - sp.Add(*[(x + k) ** 2 for k in range(300)][::-1])
    assert decide.zero(sp.Add(*[(x + k) ** 2 - x ** 2 - 2 * k * x - k ** 2 for k in range(150)]), budget=50) is None
    assert decide.zero(sp.Add(*[(x + k) ** 2 - x ** 2 - 2 * k * x - k ** 2 for k in range(150)])) == "expansion"
    assert decide.zero(big, budget=50) == "identical"          # SymPy already cancelled it: no work


@given(st.lists(st.sampled_from(["real", "positive", "negative", "simplex"]), min_size=1, max_size=8),
       st.integers(0, 2**32 - 1))
def test_the_sampler_respects_domains(domains, seed):
    symbols = [sp.Symbol(f"s{i}") for i in range(len(domains))]
    of = dict(zip(symbols, domains))
    point = decide.random_point(symbols, random.Random(seed), of.__getitem__)
    assert set(point) == set(symbols)
    for s, dom in of.items():
        v = point[s]
        assert isinstance(v, sp.Rational)
        if dom == "positive":
            assert sp.Rational(1, 10) <= v <= 2
        elif dom == "negative":
            assert -2 <= v <= -sp.Rational(1, 10)
        elif dom == "real":
            assert sp.Rational(1, 10) <= abs(v) <= 2
    simplex = [point[s] for s, d in of.items() if d == "simplex"]
    if simplex:
        assert sum(simplex) == 1 and all(v > 0 for v in simplex)
