"""Is a student's formula the derivation's, modulo the derivation's definitions?

Three stages, each sound:

1. *exact, modulo definitions*: both sides have the backward quantities unfolded into their
   definitions (``grad_w5 → grad_In_o1·h1 → … → (o1 − y1)·o1(1 − o1)·h1``) while forward nodes
   stay atoms; if the difference expands or cancels to 0 it is 0 for every value of those atoms,
   so in particular for the values the forward definitions give them.  Tried only while the
   difference is small (exact simplification "where cheap").
2. *random points*: both sides fully unfolded into the given leaves (inputs, weights, targets)
   and evaluated with certified interval arithmetic at random points of the declared domain,
   negatives included.  A point whose enclosure of the difference excludes 0 proves the formulas
   differ; agreement at many points is reported as equivalence *by evaluation*, with that method
   named.  Points where an expression is undefined (a log of a negative) are skipped; too few
   usable points give ``undetermined``.
3. *at the problem's values*: when the answer writes the given numbers instead of some leaves
   (``0.5 w_1`` for ``x_1 w_1``), those leaves are fixed at the spec's values and stage 2 runs again.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping

import sympy as sp

from derive.core.algebra import Unfolder, _is_mat
from derive.core.evaluate import Num, Undecided, enclose, precision, rational
from derive.core.steps import Activate, Affine, Derivation, Given, LossValue, Node, Recompute

EQUIVALENT, NOT_EQUIVALENT, UNDETERMINED = "equivalent", "not equivalent", "undetermined"
POINTS = 24
MIN_POINTS = 12
CHEAP_OPS = 400            # exact simplification only below this many operations
BITS = 160
_FORWARD = (Given, Affine, Activate, Node, LossValue, Recompute)


@dataclass(frozen=True)
class Decision:
    verdict: str
    method: str
    detail: str = ""


@dataclass
class Context:
    """What a comparison needs from one derivation, computed once per problem."""

    derivation: Derivation
    backward: dict           # symbol -> definition, backward steps only
    full: dict               # symbol -> definition, every step but the givens
    leaves: list             # the given symbols, in order
    order: list              # the defined symbols, in derivation order
    domains: dict            # leaf -> 'real' | 'positive' | 'simplex'
    given_values: dict       # leaf -> exact value, when the spec gives numbers
    unfold: Any = None       # backward symbols -> their definitions, each unfolded once


def context(derivation: Derivation, symbol_domains: Mapping[str, str] | None = None) -> Context:
    backward, full, leaves, domains, given, order = {}, {}, [], {}, {}, []
    simplex = any(getattr(s, "assumption", None) for s in derivation.steps)
    for step in derivation.steps:
        for sym, expr in step.items():
            if isinstance(step, Given):
                leaves.append(sym)
                if expr.is_number:
                    given[sym] = expr
                if step.name == "learning_rate":
                    domains[sym] = "positive"
                elif step.role == "target" and simplex:
                    domains[sym] = "simplex"
                else:
                    domains[sym] = (symbol_domains or {}).get(step.name, "real")
                continue
            full[sym] = expr
            order.append(sym)
            if not isinstance(step, _FORWARD) and not getattr(step, "forward", False):
                backward[sym] = expr
    return Context(derivation, backward, full, leaves, order, domains, given, Unfolder(backward))


def _elements(v: Any) -> list:
    return list(v) if _is_mat(v) else [v]


def _shape(v: Any) -> tuple[int, int]:
    return v.shape if _is_mat(v) else (1, 1)


def _cheap_zero(d: sp.Expr) -> str | None:
    if d == 0:
        return "identity"
    if sp.count_ops(d) > CHEAP_OPS or d.has(sp.Piecewise) or not _expands_small(d):
        return None
    for name, attempt in (("expansion", sp.expand), ("cancellation", lambda v: sp.cancel(sp.together(v)))):
        try:
            if attempt(d) == 0:
                return name
        except (TypeError, ValueError, NotImplementedError, sp.PolynomialError):
            continue
    return None


def _expands_small(d: sp.Expr, limit: int = 5000) -> bool:
    """A rough bound on the terms expansion would make: (a + b + …)^n has up to len^n of them."""
    for p in d.atoms(sp.Pow):
        if p.base.is_Add and p.exp.is_Integer and abs(int(p.exp)) > 1:
            if len(p.base.args) ** min(abs(int(p.exp)), 64) > limit:
                return False
    return True


def _point(ctx: Context, rng: random.Random, fixed: Mapping) -> dict:
    point: dict = {}
    simplex = [s for s in ctx.leaves if ctx.domains[s] == "simplex" and s not in fixed]
    for s in ctx.leaves:
        if s in fixed:
            point[s] = rational(sp.Rational(fixed[s]))
            continue
        dom = ctx.domains[s]
        if dom == "simplex":
            continue
        v = sp.Rational(rng.randint(10, 200), 100)
        if dom in ("real",) and rng.random() < 0.5:
            v = -v
        if dom in ("negative", "nonpositive"):
            v = -v
        point[s] = rational(v)
    if simplex:
        weights = [sp.Rational(rng.randint(1, 100)) for _ in simplex]
        total = sum(weights)
        for s, w in zip(simplex, weights):
            point[s] = rational(w / total)
    return point


def _closure(ctx: Context, symbols: set, overrides: Mapping) -> set:
    """Every defined symbol the given ones are computed from (through ``overrides`` where given)."""
    seen, stack = set(), list(symbols)
    while stack:
        x = stack.pop()
        if x in seen:
            continue
        seen.add(x)
        expr = overrides.get(x, ctx.full.get(x))
        if expr is not None:
            stack.extend(expr.free_symbols)
    return seen


def _values_at(ctx: Context, point: dict, needed: set, overrides: Mapping) -> dict:
    """The point extended through the derivation's definitions, step by step (no expression growth)."""
    env = dict(point)
    for sym in ctx.order:
        if sym in needed:
            env[sym] = Num(enclose(overrides.get(sym, ctx.full[sym]), env))
    return env


def _compare(va, vb) -> str:
    """'zero' (enclosure of the difference holds 0 and is tiny), 'nonzero' (certified), or 'unusable'."""
    d = va - vb
    lo, hi = float(d.a), float(d.b)
    if lo != lo or hi != hi or lo == float("-inf") or hi == float("inf"):
        return "unusable"
    if d.a > 0 or d.b < 0:
        return "nonzero"
    scale = 1 + max(abs(float(va.mid)), abs(float(vb.mid)))
    return "zero" if (hi - lo) < 1e-30 * scale else "unusable"


def _by_points(ctx: Context, answer: list, target: list, seed: int, fixed: Mapping,
               alt: Mapping | None = None, points: int = POINTS, least: int = MIN_POINTS) -> tuple[str, str, int]:
    """Compare element lists at random points; ``alt`` overrides definitions for the target side only."""
    rng = random.Random(seed)
    alt = alt or {}
    syms_a = set().union(*(e.free_symbols for e in answer)) if answer else set()
    syms_b = set().union(*(e.free_symbols for e in target)) if target else set()
    need_a, need_b = _closure(ctx, syms_a, {}), _closure(ctx, syms_b, alt)
    agreed = 0
    for _ in range(points):
        with precision(BITS):
            point = _point(ctx, rng, fixed)
            try:
                env_a = _values_at(ctx, point, need_a, {})
                env_b = env_a if not alt and need_b <= need_a else _values_at(ctx, point, need_b, alt)
                outcomes = [_compare(enclose(a, env_a), enclose(b, env_b)) for a, b in zip(answer, target)]
            except (Undecided, ValueError, ZeroDivisionError, TypeError, KeyError, OverflowError, ArithmeticError):
                continue
        if "nonzero" in outcomes:
            leaves = sorted((x for x in (need_a | need_b) if x in point), key=lambda x: x.name)
            where = ", ".join(f"{x} = {_show(point[x])}" for x in leaves[:5]) + (", …" if len(leaves) > 5 else "")
            return NOT_EQUIVALENT, where, agreed
        if all(o == "zero" for o in outcomes):
            agreed += 1
    return (EQUIVALENT if agreed >= least else UNDETERMINED), "", agreed


def _show(n: Num) -> str:
    return str(n.exact) if n.exact is not None else f"{float(n):.4g}"


def unfold_backward(ctx: Context, v: Any) -> Any:
    return v.applyfunc(ctx.unfold) if _is_mat(v) else ctx.unfold(v)


def decide(ctx: Context, answer: Any, target: Any, seed: int = 0) -> Decision:
    """Is ``answer`` (an expression or Matrix in the derivation's symbols) equal to ``target``?"""
    if _shape(answer) != _shape(target):
        r, c = _shape(answer)
        tr, tc = _shape(target)
        what = "a scalar" if (r, c) == (1, 1) else f"of shape {r}x{c}"
        return Decision(NOT_EQUIVALENT, "shape", f"the answer is {what}; {tr}x{tc} expected")
    a_back = [ctx.unfold(e) for e in _elements(answer)]
    b_back = [ctx.unfold(e) for e in _elements(target)]
    methods = []
    for a, b in zip(a_back, b_back):
        how = _cheap_zero(a - b)
        if how is None:
            break
        methods.append(how)
    else:
        return Decision(EQUIVALENT, "proved: the difference is 0 by " + ", ".join(dict.fromkeys(methods)) +
                        " after unfolding the derivation's definitions")
    a_els, b_els = _elements(answer), _elements(target)
    verdict, where, agreed = _by_points(ctx, a_els, b_els, seed, {})
    if verdict == EQUIVALENT:
        return Decision(EQUIVALENT, f"equal at {agreed} random points (certified), not proved symbolically")
    if verdict == NOT_EQUIVALENT:
        fixed = _missing_leaves(ctx, a_els, b_els)
        if fixed:
            v2, _, agreed2 = _by_points(ctx, a_els, b_els, seed + 1, fixed)
            if v2 == EQUIVALENT:
                names = ", ".join(x.name for x in fixed)
                return Decision(EQUIVALENT, f"equal at the problem's values of {names} "
                                            f"({agreed2} random points of the others)")
        return Decision(NOT_EQUIVALENT, "evaluation", f"differs at {where}" if where else "")
    return Decision(UNDETERMINED, f"not simplified to 0; only {agreed} of {POINTS} random points usable")


def _missing_leaves(ctx: Context, answer: list, target: list) -> dict:
    """Given leaves the target depends on and the answer does not (it may have written their numbers)."""
    leaves = set(ctx.leaves)
    syms_a = set().union(*(e.free_symbols for e in answer)) if answer else set()
    syms_b = set().union(*(e.free_symbols for e in target)) if target else set()
    missing = (_closure(ctx, syms_b, {}) & leaves) - (_closure(ctx, syms_a, {}) & leaves)
    if not missing or any(x not in ctx.given_values for x in missing):
        return {}
    return {x: ctx.given_values[x] for x in missing}


def matches(ctx: Context, answer: Any, alt: Mapping, candidate: Any, seed: int = 0) -> bool:
    """True when ``answer`` equals ``candidate`` computed with the definitions ``alt`` overrides (a
    mistaken variant of the derivation) at every usable random point: the evidence for naming a mistake."""
    if _shape(answer) != _shape(candidate):
        return False
    verdict, _, _ = _by_points(ctx, _elements(answer), _elements(candidate), seed, {}, alt, points=12, least=8)
    return verdict == EQUIVALENT
