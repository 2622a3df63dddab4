"""Conditions of piecewise values (issue 10): nested max/min, whose conditions SymPy writes with
``ITE``/``And``/``Or``/``Not``, evaluate like any other.  Oracle: mpmath at 60 digits, and the
truth table of the Boolean function computed here from plain Python booleans."""
from __future__ import annotations

import itertools

import mpmath
import pytest
import sympy as sp
from sympy.logic.boolalg import ITE

from derive.kinds import derive
from derive.core.evaluate import Undecided, _condition, evaluate, rational
from derive.kinds import loads


def _graph(values: dict, nodes: list[str]) -> dict:
    text = ("[graph]\nvalues = { " + ", ".join(f'{k} = "{v}"' for k, v in values.items()) + " }\n"
            f"params = {list(values)!r}\nnodes = [" + ", ".join(f'"{n}"' for n in nodes) + "]\n").replace("'", '"')
    d = derive(loads(text))
    return {s.name: v for s, v in evaluate(d).items()}


def _lse_reference(z):
    """log Σ exp(z_i) and its gradient, the softmax, in mpmath at 60 digits."""
    with mpmath.workdps(60):
        zs = [mpmath.mpf(v) for v in z]
        m = max(zs)
        s = mpmath.fsum(mpmath.exp(v - m) for v in zs)
        return m + mpmath.log(s), [mpmath.exp(v - m) / s for v in zs]


@pytest.mark.parametrize("z", [(1000, -1000, 3), (-1000, 1000, 1000), (3, 2, 1000), (-1000, -1000, -999)])
def test_hand_written_log_sum_exp_at_large_logits(z):
    """Regression: every gradient through ``max(max(z1, z2), z3)`` failed with
    'cannot evaluate condition ITE(z1 - z2 > 0, ...)'."""
    values = _graph(dict(zip(("z1", "z2", "z3"), z)),
                    ["m = max(max(z1, z2), z3)", "s = exp(z1 - m) + exp(z2 - m) + exp(z3 - m)", "L = m + log(s)"])
    loss, softmax = _lse_reference(z)
    with mpmath.workdps(60):
        for name, ref in [("L", loss)] + [(f"grad_z{i + 1}", p) for i, p in enumerate(softmax)]:
            e = values[name].enclosure
            lo, hi = mpmath.mpf(e.a), mpmath.mpf(e.b)
            assert mpmath.isfinite(lo) and mpmath.isfinite(hi), name
            assert abs((lo + hi) / 2 - ref) <= mpmath.mpf(10) ** -30 * abs(ref), (name, lo, hi, ref)


def test_nested_min_and_max_gradients_follow_the_branch_taken():
    # u = min(min(a, b), max(c, a)) at a = 2, b = 5, c = 7: min(2, 7) = 2 through a, so ∂u/∂a = 1
    values = _graph({"a": 2, "b": 5, "c": 7}, ["u = min(min(a, b), max(c, a))", "L = u*u"])
    assert values["u"].exact == 2 and values["L"].exact == 4
    assert (values["grad_a"].exact, values["grad_b"].exact, values["grad_c"].exact) == (4, 0, 0)


def test_every_boolean_combination_is_evaluated_by_its_truth_table():
    x, y = sp.symbols("x y", real=True)
    env = {x: rational(sp.Integer(1)), y: rational(sp.Integer(-2))}
    atoms = {"x > 0": (x > 0, True), "y > 0": (y > 0, False), "x = 1": (sp.Eq(x, 1), True),
             "y != -2": (sp.Ne(y, -2), False)}
    ops = {"And": (sp.And, all), "Or": (sp.Or, any), "Xor": (sp.Xor, lambda v: sum(v) % 2 == 1),
           "Implies": (sp.Implies, lambda v: (not v[0]) or v[1]), "Equivalent": (sp.Equivalent, lambda v: v[0] == v[1])}
    for (_, (a, ta)), (_, (b, tb)) in itertools.product(atoms.items(), repeat=2):
        for name, (op, truth) in ops.items():
            expr = op(a, b, evaluate=False)
            if expr in (sp.true, sp.false):
                continue
            assert _condition(expr, env) == truth([ta, tb]), (name, a, b)
        assert _condition(sp.Not(a, evaluate=False), env) == (not ta)
        c = ITE(a, b, sp.Not(b), evaluate=False)
        assert _condition(c, env) == (tb if ta else not tb)


def test_and_or_are_decided_by_one_settling_argument_even_if_another_is_undecided():
    from mpmath import iv
    from derive.core.evaluate import Num
    x, y = sp.symbols("x y", real=True)
    env = {x: rational(sp.Integer(1)), y: Num(iv.mpf([-1, 1]))}      # y's sign cannot be decided
    assert _condition(sp.Or(y > 0, x > 0), env) is True
    assert _condition(sp.And(y > 0, x < 0), env) is False
    with pytest.raises(Undecided):
        _condition(sp.And(y > 0, x > 0), env)


def test_the_log_sum_exp_handout_prints_with_checked_numbers():
    """The handout of the same graph: the shift's gradient cancels to 0 and is known only to an
    interval around 0 (shown ≈ 0.0000); the conditions print with ∧, ∨, ¬ instead of ITE."""
    from derive.handout.assemble import build
    from derive.kinds import names
    from numbers_check import NumberCheck
    spec = loads('[graph]\nvalues = { z1 = "1000", z2 = "-1000", z3 = "3" }\nparams = ["z1", "z2", "z3"]\n'
                 'nodes = ["m = max(max(z1, z2), z3)", "s = exp(z1 - m) + exp(z2 - m) + exp(z3 - m)", '
                 '"L = m + log(s)"]\n')
    d = derive(spec)
    h = build(spec)
    for fmt, doc in (("tex", h.tex()), ("md", h.markdown())):
        check = NumberCheck(names([d], "xjtu"), [d], evaluate(d))
        check.document(doc, f"lse.{fmt}")
        assert not check.problems, check.problems[:5]
        assert r"\wedge" in doc and "ITE" not in doc
