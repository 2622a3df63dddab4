"""Values of every quantity: exact where the arithmetic is rational, certified everywhere.

A numeric value is a :class:`Num`: its exact SymPy Rational when every input was rational and the
result is rational (``z = W h + b`` from printed numbers), and always a rigorous enclosure from
interval arithmetic (mpmath ``iv``) for values such as ``σ(27/20)``.  A decision (is
``|true − stated| ≤ ½·10^−d``?) is taken exactly on Rationals and otherwise only when the
enclosure settles it; when it does not, :class:`Undecided` asks the caller to evaluate again at a
higher precision.  So no verdict depends on rounding error, and expressions never grow the way
nested exact closed forms do.

Symbolic problems (a spec that leaves symbols) have no values; their formulas are checked by
``claims.py``, which unfolds definitions instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import sympy as sp
from mpmath import iv
from mpmath import libmp as mlib
from sympy.logic.boolalg import ITE, BooleanFunction

from derive.core.errors import SpecError
from derive.core.steps import Derivation, Given

DEFAULT_PREC = 160          # bits of the enclosures; raised on demand
PRECISIONS = (160, 640, 2560)


class Undecided(ArithmeticError):
    """An enclosure was too wide to decide a comparison at the current precision."""


@dataclass(frozen=True)
class Num:
    """A real number: a certified enclosure, and the exact Rational when there is one."""

    enclosure: object              # mpmath ivmpf
    exact: sp.Rational | None = None

    def __float__(self) -> float:
        return float(self.exact) if self.exact is not None else float(self.enclosure.mid)

    @property
    def is_number(self) -> bool:
        return True


Values = dict[sp.Symbol, Num]


class precision:
    """Context manager setting the interval precision in bits."""

    def __init__(self, bits: int):
        self.bits = bits

    def __enter__(self):
        self.saved = iv.prec
        iv.prec = self.bits

    def __exit__(self, *exc):
        iv.prec = self.saved


def rational(value: sp.Rational) -> Num:
    return _rational(value, iv.prec)


@lru_cache(maxsize=8192)
def _rational(value: sp.Rational, bits: int) -> Num:
    # cached: graders convert the same printed numbers and tolerances over and over
    return Num(iv.mpf(int(value.p)) / int(value.q), value)


def _decide(result) -> bool:
    if result is None:
        raise Undecided("enclosure too wide")
    return bool(result)


class Env(dict):
    """Values by symbol, with the definitions they were computed from (symbol → its expression in
    earlier symbols, or its exact given number), so that a tie can be decided exactly."""

    UNFOLD_LIMIT = 400          # symbols unfolded for one comparison, at most

    def __init__(self, definitions: Mapping[sp.Symbol, sp.Expr]):
        super().__init__()
        self.definitions = definitions

    def same(self, a: sp.Expr, b: sp.Expr) -> bool:
        """Are ``a`` and ``b`` the same expression once every symbol is replaced by its definition?
        (SymPy's canonical form makes two equal unfoldings compare equal.)  False when unsure."""
        seen: dict[sp.Symbol, sp.Expr] = {}

        def unfold(e: sp.Expr) -> sp.Expr:
            subs = {}
            for sym in e.free_symbols:
                if sym not in seen:
                    if sym not in self.definitions or len(seen) >= self.UNFOLD_LIMIT:
                        raise LookupError
                    seen[sym] = sym                     # a guard against a cycle; replaced below
                    seen[sym] = unfold(self.definitions[sym])
                subs[sym] = seen[sym]
            return e.xreplace(subs)
        try:
            return unfold(a) == unfold(b)
        except (LookupError, RecursionError):
            return False


def _condition(cond, env) -> bool:
    """The truth of a condition at ``env``: relations, and any Boolean combination SymPy writes of
    them (``And``, ``Or``, ``Not``, ``ITE``, ``Xor``, ``Implies``, ``Equivalent``, ...).  Raises
    :class:`Undecided` only when the answer depends on a comparison the enclosures cannot settle."""
    if cond == sp.true:
        return True
    if cond == sp.false:
        return False
    if isinstance(cond, sp.core.relational.Relational):
        d = enclose(cond.lhs - cond.rhs, env)
        zero = iv.mpf(0)
        op = cond.rel_op
        if d.a <= 0 <= d.b and isinstance(env, Env) and env.same(cond.lhs, cond.rhs):
            # a tie of two values that are one expression of the given numbers (two equal maxima
            # σ(1) and σ(1)): equal exactly, which no enclosure can show
            d = zero
        if op in ("==", "!="):
            is_zero = True if d.a == 0 and d.b == 0 else (False if d.a > 0 or d.b < 0 else None)
            return _decide(is_zero) if op == "==" else not _decide(is_zero)
        return _decide({">": d > zero, ">=": d >= zero, "<": d < zero, "<=": d <= zero}.get(op))
    if isinstance(cond, (sp.And, sp.Or)):
        # decided by one argument that settles it, even when another cannot be decided
        settles = isinstance(cond, sp.Or)
        undecided = False
        for c in cond.args:
            try:
                if _condition(c, env) == settles:
                    return settles
            except Undecided:
                undecided = True
        if undecided:
            raise Undecided("enclosure too wide")
        return not settles
    if isinstance(cond, sp.Not):
        return not _condition(cond.args[0], env)
    if isinstance(cond, ITE):
        test, then, other = cond.args
        return _condition(then if _condition(test, env) else other, env)
    if isinstance(cond, BooleanFunction):      # Xor, Implies, Equivalent, Nand, Nor: from the arguments' truth
        truth = cond.func(*[sp.true if _condition(c, env) else sp.false for c in cond.args])
        if truth in (sp.true, sp.false):
            return truth == sp.true
    raise ValueError(f"cannot evaluate condition {cond}")


def enclose(e: sp.Expr, env: Mapping[sp.Symbol, Num]):
    """A rigorous interval containing the value of ``e`` at ``env``."""
    if e.is_Symbol:
        return env[e].enclosure
    if e.is_Integer:
        return iv.mpf(int(e))
    if e.is_Rational:
        return iv.mpf(int(e.p)) / int(e.q)
    if e is sp.E:
        return iv.e
    if e is sp.pi:
        return iv.pi
    f, args = e.func, e.args
    if f is sp.Add:
        total = enclose(args[0], env)
        for a in args[1:]:
            total = total + enclose(a, env)
        return total
    if f is sp.Mul:
        prod = enclose(args[0], env)
        for a in args[1:]:
            prod = prod * enclose(a, env)
        return prod
    if f is sp.Pow:
        base, exp = args
        if exp.is_Integer:
            b = enclose(base, env)
            n = int(exp)
            return b**n if n >= 0 else 1 / (b ** (-n))
        if exp == sp.Rational(1, 2):
            return iv.sqrt(enclose(base, env))
        return iv.exp(enclose(exp, env) * iv.log(enclose(base, env)))
    if f is sp.exp:
        return iv.exp(enclose(args[0], env))
    if f is sp.log:
        return iv.log(enclose(args[0], env))
    if f is sp.tanh:
        return 1 - 2 / (iv.exp(2 * enclose(args[0], env)) + 1)
    if f is sp.Abs:
        return abs(enclose(args[0], env))
    if f is sp.sign:
        x = enclose(args[0], env)
        if _decide(x > 0):
            return iv.mpf(1)
        if _decide(x < 0):
            return iv.mpf(-1)
        return iv.mpf(0)
    if f is sp.Piecewise:
        return _piecewise(args, env)
    if f in (sp.Max, sp.Min):       # monotone in each argument: the ends of the enclosures
        ends = [enclose(a, env) for a in args]
        pick = max if f is sp.Max else min
        return iv.mpf([pick(x.a for x in ends), pick(x.b for x in ends)])
    raise ValueError(f"cannot evaluate {f.__name__} numerically")


def _piecewise(branches, env):
    """The branch that applies.  When the enclosures cannot decide a condition (inputs known only to an
    interval, as a student's rounded numbers are, or a tie such as two equal maxima), the value is this
    branch's or a later one's, so the hull of both encloses it."""
    for k, (expr, cond) in enumerate(branches):
        try:
            holds = _condition(cond, env)
        except Undecided:
            if k + 1 == len(branches):
                raise
            a, b = enclose(expr, env), _piecewise(branches[k + 1:], env)
            return iv.mpf([min(a.a, b.a), max(a.b, b.b)])
        if holds:
            return enclose(expr, env)
    raise ValueError("no branch of a Piecewise applies")


def _known_exactly(num: Num) -> sp.Rational | None:
    """The exact value of ``num``: its Rational, or the one point of an enclosure of width zero
    (a rigorous enclosure [a, a] is the value a: 0 from relu at a negative input, σ(0) = 1/2)."""
    if num.exact is not None:
        return num.exact
    a, b = num.enclosure._mpi_
    if a != b or a in (mlib.finf, mlib.fninf, mlib.fnan):
        return None
    return sp.Rational(*mlib.to_rational(a))


def value_of(expr: sp.Expr, env: Mapping[sp.Symbol, Num]) -> Num:
    """Evaluate ``expr``: exactly when its inputs are exact and the result is rational."""
    free = expr.free_symbols
    exacts = {s: _known_exactly(env[s]) for s in free}
    if all(v is not None for v in exacts.values()):
        exact = expr.xreplace(exacts)
        if exact.is_Rational:
            return rational(exact)
        if exact.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I):
            raise ArithmeticError("not a finite real number (division by zero or a log of a negative?)")
        return _finite(Num(enclose(exact, {})))
    return _finite(Num(enclose(expr, env)))


FLOAT_MAX = 1e300


def _finite(num: Num) -> Num:
    e = num.enclosure
    if iv.isinf(e.a) or iv.isinf(e.b) or iv.isnan(e.a) or iv.isnan(e.b):
        raise ArithmeticError("not a finite real number (division by zero or overflow?)")
    if abs(e.mid) > FLOAT_MAX:
        raise ArithmeticError("value beyond the range of a float (overflow)")
    return num


def _step_value(step, sym, expr, env) -> Num:
    try:
        return value_of(expr, env)
    except Undecided:
        raise
    except (ArithmeticError, ValueError, TypeError, ZeroDivisionError) as err:
        raise SpecError(sym.name, f"cannot evaluate: {err}") from None


def is_numeric(derivation: Derivation) -> bool:
    return all(e.is_number for s in derivation.steps if isinstance(s, Given) for e in s.exprs)


def evaluate(derivation: Derivation, overrides: Mapping[sp.Symbol, sp.Expr] | None = None,
             bits: int = DEFAULT_PREC) -> Values:
    """The value of every element of every quantity, as :class:`Num`.

    ``overrides`` replaces the value of given symbols (used for variants of a problem).
    A problem that leaves symbols has no numbers: that is a :class:`SpecError`.
    """
    own = getattr(derivation, "evaluate_itself", None)    # a derivation that evaluates itself (wide layers)
    if own is not None:
        if overrides:
            raise SpecError("", "wide layers take no overridden values")
        return own(bits)
    overrides = overrides or {}
    if not is_numeric(derivation):
        free = [s.name for s in derivation.steps if isinstance(s, Given) and not all(e.is_number for e in s.exprs)]
        raise SpecError("", f"the problem leaves symbols ({', '.join(free[:6])}{', …' if len(free) > 6 else ''} "
                            "given no numbers), so it has no numbers")
    definitions = {sym: (overrides[sym] if sym in overrides else expr)
                   for step in derivation.steps for sym, expr in step.items()}
    with precision(bits):
        env = Env(definitions)
        for step in derivation.steps:
            for sym, expr in step.items():
                env[sym] = rational(overrides[sym]) if sym in overrides else _step_value(step, sym, expr, env)
        return dict(env)


def carry(derivation: Derivation, values: Values, stated: Mapping[sp.Symbol, sp.Rational],
          bits: int = DEFAULT_PREC, spread: Mapping[sp.Symbol, sp.Rational] | None = None
          ) -> tuple[Values, set[sp.Symbol]]:
    """Each quantity recomputed from the stated values of its inputs.

    Walking the steps in order, an input's value is its stated value when one was printed, else
    its own recomputed value (so a chain of unprinted intermediates is recomputed from the last
    printed ones).  Returns the recomputed values and the symbols whose recomputed value depends
    on at least one stated number.  With ``spread``, a stated value stands for the whole interval
    ``[v − spread, v + spread]`` (what its printed digits allow), so each recomputed value is an
    enclosure of everything the unrounded inputs could have given.
    """
    own = getattr(derivation, "carry_itself", None)       # a derivation that evaluates itself (wide layers)
    if own is not None:
        if spread:
            raise SpecError("", "wide layers are not graded with spreads")
        return own(stated, bits)
    # a stated value is its own definition (a number, or with a spread an interval: never unfolded)
    env: Values = Env({sym: stated.get(sym, expr) for step in derivation.steps for sym, expr in step.items()
                       if not (spread and sym in spread and sym in stated)})
    carried: Values = {}
    touched: set[sp.Symbol] = set()
    with precision(bits):
        for step in derivation.steps:
            for sym, expr in step.items():
                if isinstance(step, Given):
                    carried[sym] = values[sym]
                elif any(s in stated or s in touched for s in expr.free_symbols):
                    try:
                        carried[sym] = value_of(expr, env)
                        touched.add(sym)
                    except Undecided:
                        raise
                    except (ArithmeticError, ValueError, TypeError, ZeroDivisionError):
                        # the stated inputs (or the intervals their digits allow) leave the function's
                        # domain: log(1 − y) at a printed y = 1.0000.  Nothing can be carried through
                        # here, so the quantity is judged against its true value only.
                        carried[sym] = values[sym]
                else:
                    carried[sym] = _step_value(step, sym, expr, env)
                if sym in stated and spread and sym in spread:
                    v, h = stated[sym], spread[sym]
                    env[sym] = Num(iv.mpf([rational(v - h).enclosure.a, rational(v + h).enclosure.b]))
                else:
                    env[sym] = rational(stated[sym]) if sym in stated else carried[sym]
    return carried, touched


def within(value: Num, target: sp.Rational, tolerance: sp.Rational) -> bool:
    """|value − target| ≤ tolerance, decided exactly or by the enclosure (else :class:`Undecided`)."""
    if value.exact is not None:
        return abs(value.exact - target) <= tolerance
    gap = abs(value.enclosure - rational(target).enclosure)
    return _decide(gap <= rational(tolerance).enclosure)


def to_float(value: Num) -> float:
    """The nearest float, for reports."""
    return float(value)
