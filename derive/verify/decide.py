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

One decider for slide claims (:mod:`derive.verify.claims`) and students' formulas
(:mod:`derive.grading.grade`): :func:`decide_zero` runs the stages over a list of differences, with
one zero test (:func:`zero`: expansion, cancellation, simplification, and a case split on the sign
of the real symbols a ``Piecewise``/``Abs``/``max`` reads, so that ReLU′(0) conventions are seen),
one sampler (:func:`random_point`) and one result type (:class:`Decision`).  What differs between
the two uses is policy: a claim counts as proved only symbolically (agreement at random points
leaves it undetermined), a student's formula may be accepted by certified evaluation; and a
student's input is bounded (``budget``: no simplification above that many operations).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping

import sympy as sp

from derive.core.algebra import Unfolder, _is_mat
from derive.core.evaluate import Num, Undecided, enclose, precision, rational, value_of
from derive.core.steps import Activate, Affine, Derivation, Given, LossValue, Node, Recompute

EQUIVALENT, NOT_EQUIVALENT, UNDETERMINED = "equivalent", "not equivalent", "undetermined"
POINTS = 24
MIN_POINTS = 12
CHEAP_OPS = 400            # exact simplification only below this many operations
BITS = 160
_FORWARD = (Given, Affine, Activate, Node, LossValue, Recompute)
_KINKS = (sp.Piecewise, sp.Abs, sp.sign, sp.Max, sp.Min, sp.Heaviside)


@dataclass(frozen=True)
class Decision:
    """The one result of the decider: verdict, how it was reached, and the evidence."""

    verdict: str               # EQUIVALENT | NOT_EQUIVALENT | UNDETERMINED
    method: str
    detail: str = ""           # what differs (a shape, a difference), for the reader
    counterexample: str = ""   # a point where the difference is certainly nonzero
    proved: bool = False       # equivalent symbolically, not only at random points
    points: int = 0            # random points where every difference was certainly 0


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


def _expands_small(d: sp.Expr, limit: int = 5000) -> bool:
    """A rough bound on the terms expansion would make: (a + b + …)^n has up to len^n of them."""
    for p in d.atoms(sp.Pow):
        if p.base.is_Add and p.exp.is_Integer and abs(int(p.exp)) > 1:
            if len(p.base.args) ** min(abs(int(p.exp)), 64) > limit:
                return False
    return True


def _assumed_domain(s: sp.Symbol) -> str:
    if s.is_positive or s.is_nonnegative:
        return "positive"
    if s.is_negative or s.is_nonpositive:
        return "negative"
    return "real"


def random_point(symbols, rng: random.Random, domain=None, fixed: Mapping | None = None) -> dict:
    """The one sampler: a rational in ±[0.1, 2] for each symbol, its sign from its domain
    (``domain(s)``: 'real', 'positive', 'negative', … or 'simplex'; default: the symbol's
    assumptions); 'simplex' symbols get positive weights summing to 1 (targets that sum to one);
    ``fixed`` symbols keep their given values."""
    domain = domain or _assumed_domain
    point: dict = {}
    simplex = []
    for s in symbols:
        if fixed and s in fixed:
            point[s] = sp.Rational(fixed[s])
            continue
        dom = domain(s)
        if dom == "simplex":
            simplex.append(s)
            continue
        v = sp.Rational(rng.randint(10, 200), 100)
        if dom == "real" and rng.random() < 0.5:
            v = -v
        if dom in ("negative", "nonpositive"):
            v = -v
        point[s] = v
    if simplex:
        weights = [sp.Rational(rng.randint(1, 100)) for _ in simplex]
        total = sum(weights)
        for s, w in zip(simplex, weights):
            point[s] = w / total
    return point


def _point(ctx: Context, rng: random.Random, fixed: Mapping) -> dict:
    return {s: rational(v) for s, v in random_point(ctx.leaves, rng, ctx.domains.__getitem__, fixed).items()}


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
    a_els, b_els = _elements(answer), _elements(target)
    diffs = [ctx.unfold(a) - ctx.unfold(b) for a, b in zip(a_els, b_els)]

    def sample(count):
        verdict, where, agreed = _by_points(ctx, a_els, b_els, seed, {})
        return (where or "a random point") if verdict == NOT_EQUIVALENT else None, agreed
    full = Unfolder(ctx.full)

    def kinks(d):
        """The difference in the given leaves, for the case split: only where a kink is involved."""
        if not small(d, CHEAP_OPS):
            return None
        reads = _closure(ctx, d.free_symbols, {})
        leaves = [x for x in reads if x in ctx.domains]
        if len(leaves) > 2 or not any(ctx.full[x].has(*_KINKS) for x in reads if x in ctx.full):
            return None       # the case split takes at most two real leaves: nothing to gain, and unfolding costs
        return full(d)
    decision = decide_zero(diffs, [lambda d: d], sample, budget=CHEAP_OPS, by_evaluation=True, kinks=kinks)
    if decision.proved:
        return Decision(EQUIVALENT, f"proved: the difference is 0 ({decision.method}) after unfolding the "
                                    "derivation's definitions", proved=True)
    if decision.verdict == NOT_EQUIVALENT:
        fixed = _missing_leaves(ctx, a_els, b_els)
        if fixed:
            v2, _, agreed2 = _by_points(ctx, a_els, b_els, seed + 1, fixed)
            if v2 == EQUIVALENT:
                names = ", ".join(x.name for x in fixed)
                return Decision(EQUIVALENT, f"equal at the problem's values of {names} "
                                            f"({agreed2} random points of the others)")
        where = decision.counterexample
        return Decision(NOT_EQUIVALENT, decision.method, f"differs at {where}" if where else "", where)
    if decision.verdict == UNDETERMINED:
        return Decision(UNDETERMINED, f"not simplified to 0; only {decision.points} of {POINTS} random points usable")
    return decision


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


def zero(e: sp.Expr, budget: int | None = None) -> str | None:
    """How ``e`` was proved identically zero, or None: successively stronger SymPy normalisations,
    and a case split on signs when a Piecewise, Abs, sign, Max or Min is involved.

    ``budget`` bounds the work on untrusted input: nothing is tried above that many operations or
    when expansion would be large, and SymPy's ``simplify`` (unbounded) is left out."""
    if e == 0:
        return "identical"
    if budget is not None and (not small(e, 4 * budget) or sp.count_ops(e) > budget or not _expands_small(e)):
        return None
    if e.has(sp.Piecewise, sp.Abs, sp.sign, sp.Max, sp.Min, sp.Heaviside):
        return "case split" if _zero_by_cases(e) else None
    # A polynomial is zero exactly when its expansion is, a rational function exactly when its
    # cancelled form is: for those, the later, slower normalisations cannot succeed.
    rational_ = e.is_rational_function()
    attempts = [("expansion", sp.expand), ("cancellation", lambda v: sp.cancel(sp.together(v)))]
    if budget is None:
        attempts.append(("simplification", lambda v: sp.simplify(v.rewrite(sp.exp))))
    for name, attempt in attempts:
        try:
            if attempt(e) == 0:
                return name
        except (TypeError, ValueError, NotImplementedError, RecursionError, sp.PolynomialError):
            continue
        if rational_ and name == "cancellation":
            return None
    return None


def _zero_by_cases(e: sp.Expr) -> bool:
    """Zero on each sign case of the real symbols a Piecewise/Abs/sign depends on."""
    return case_split(e) == (True, None)


def case_split(e: sp.Expr) -> tuple[bool, str | None]:
    """(zero on every case, a counterexample where a case is a nonzero constant).

    A real s is replaced by log(1 + q), −log(1 + q) (q > 0) and 0: each a bijection onto its
    half-line, under which e^s is rational in q, so SymPy can decide the branch conditions.  A
    convention that differs at a single point (ReLU'(0)) shows up in the case s = 0, which random
    points would never hit.
    """
    if not e.has(sp.Piecewise, sp.Max, sp.Min, sp.Abs, sp.sign, sp.Heaviside):
        return False, None
    reals = sorted((s for s in e.free_symbols if s.is_real and not s.is_positive and not s.is_negative),
                   key=lambda s: s.name)
    if not reals or len(reals) > 2:
        return False, None
    cases, dummies = [{}], []
    for s in reals:
        q = sp.Dummy("q", positive=True)
        dummies.append(q)
        cases = [{**c, s: v} for c in cases for v in (sp.log(1 + q), -sp.log(1 + q), sp.Integer(0))]
    for case in cases:
        v = sp.piecewise_fold(e.xreplace(case))
        if v != 0:
            v = sp.simplify(v)
        if v == 0:
            continue
        at = {q: 1 for q in dummies}
        w = v.xreplace(at)
        if w.is_number and w != 0:
            where = ", ".join(f"{s} = {sp.N(val.xreplace(at), 6) if val != 0 else 0}" for s, val in case.items())
            return False, f"{where}: lhs − rhs = {sp.N(w, 6)}"
        return False, None
    return True, None


class Instances:
    """Random numeric instances of the derivations, evaluated step by step with certified enclosures.

    Every given (and declared) symbol gets a random value of its domain; the symbols an assumption
    solves for get their value from it.  Instances are cached per assumption, so the claims of a
    spec share them.
    """

    def __init__(self, derivations, seed: int = 0, symbols=()):
        self.derivations = derivations
        self.seed = seed
        self.defined = {sym for d in derivations for step in d.steps if not isinstance(step, Given)
                        for sym, _ in step.items()}
        self.given = {sym for d in derivations for step in d.steps if isinstance(step, Given)
                      for sym, _ in step.items()} | set(symbols)
        self.cache: dict = {}

    def _instances(self, subs: dict, base: list, count: int) -> list:
        key = (tuple(sorted(subs.items(), key=str)), tuple(base))
        done = self.cache.setdefault(key, [])
        rng = random.Random(self.seed + 7919 * len(done))
        with precision(96):
            while len(done) < count:
                point = random_point(base, rng)
                # enclosures only: an instance needs no exact arithmetic, and intervals are fast
                env = {s: Num(rational(v).enclosure) for s, v in point.items()}
                try:
                    for s, e in subs.items():
                        env[s] = value_of(e, env)
                    for d in self.derivations:
                        for step in d.steps:
                            if not isinstance(step, Given):
                                for sym, e in step.items():
                                    env.setdefault(sym, value_of(e, env))
                except (ArithmeticError, ValueError, KeyError):
                    env = None  # outside the domain of a log or a division: not an instance
                done.append((point, env))
        return done[:count]

    def counterexample(self, diffs: list, subs: dict, count: int) -> str | None:
        """A random instance where some difference is certainly nonzero, as text; None if none found."""
        free = set().union(*[d.free_symbols for d in diffs])
        base = sorted((self.given | free) - self.defined - set(subs), key=lambda s: s.name)
        for point, env in self._instances(subs, base, count):
            if env is None:
                continue
            try:
                with precision(96):
                    values = [value_of(d, env) for d in diffs]
            except (ArithmeticError, ValueError, KeyError):
                continue
            for v in values:
                if not (v.enclosure.a <= 0 <= v.enclosure.b):
                    where = ", ".join(f"{s} = {point[s]}" for s in base if s in free) or "a random instance"
                    return f"{where}: lhs − rhs = {float(v):.6g}"
        return None


def small(e: sp.Expr, limit: int) -> bool:
    """Whether ``e`` has at most ``limit`` nodes (counted without walking past the limit)."""
    for n, _ in enumerate(sp.preorder_traversal(e)):
        if n > limit:
            return False
    return True


def decide_zero(diffs: list, unfolds: list, sample, *, screen: int = 0, budget: int | None = None,
                by_evaluation: bool = False, kinks=None) -> Decision:
    """Is every difference in ``diffs`` identically zero?  The one procedure of both uses.

    ``unfolds``: ways to write a difference before the zero test, weakest first (the derivation's
    definitions unfolded part way, then fully); ``sample(count)`` evaluates the differences at
    ``count`` random points (None: as many as the use takes) and returns (a counterexample or None,
    the number of points where every difference was certainly 0).  Stages: a numeric screen of
    ``screen`` points; the zero test on each unfolding (and on ``kinks(d)``); random points; a case split of the last
    unfolding (or of ``kinks(d)``, when given: the difference in the given leaves) for a
    counterexample at a kink (ReLU′(0)).  Agreement at random points is equivalence only
    ``by_evaluation`` (grading), else undetermined (claims)."""
    if screen:
        counter, _ = sample(screen)
        if counter is not None:
            return Decision(NOT_EQUIVALENT, "evaluation", counterexample=counter)
    for unfold in unfolds + ([kinks] if kinks else []):
        methods = []
        for d in diffs:
            e = unfold(d)
            how = None if e is None else zero(e, budget)
            if how is None:
                break
            methods.append(how)
        else:
            return Decision(EQUIVALENT, ", ".join(dict.fromkeys(methods)), proved=True)
    counter, agreed = sample(None)
    method = "evaluation"
    if counter is None and unfolds:
        for d in diffs:
            e = (kinks or unfolds[-1])(d)
            if e is None or (budget is not None and not small(e, budget)):
                continue
            counter = case_split(e)[1]
            if counter is not None:
                method = "at a kink"  # equal at random points, not where a piecewise function switches
                break
    if counter is not None:
        return Decision(NOT_EQUIVALENT, method, counterexample=counter)
    if by_evaluation and agreed >= MIN_POINTS:
        return Decision(EQUIVALENT, f"equal at {agreed} random points (certified), not proved symbolically",
                        points=agreed)
    return Decision(UNDETERMINED, "not simplified to 0", points=agreed)
