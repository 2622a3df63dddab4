"""Numbers as a handout shows them: exact when short, else correctly rounded to ``d`` decimals.

A value whose exact decimal expansion has at most ``d`` digits after the point (a given weight
``0.1``, ``z = 1.35``) is shown exactly and marked exact, so the printer writes ``=``; any other
value is rounded half away from zero to ``d`` decimals and the printer writes ``≈``.  Rounding is
decided on the exact Rational, or on the certified enclosure when there is none: both ends of the
enclosure must round alike, else :class:`~derive.core.evaluate.Undecided` asks for more precision.
"""
from __future__ import annotations

import decimal
import math
from fractions import Fraction

from dataclasses import dataclass

import sympy as sp
from mpmath.libmp import to_rational

from derive.core.evaluate import Num, Undecided

DEFAULT_DECIMALS = 4


@dataclass(frozen=True)
class Shown:
    text: str      # "-0.1339", "1.35", "1"
    exact: bool    # True when text is the value itself


def _round(q: sp.Rational, d: int) -> int:
    """round(q · 10^d), halves away from zero."""
    scaled = q * sp.Integer(10) ** d
    n = sp.floor(abs(scaled) + sp.Rational(1, 2))
    return int(n) if scaled >= 0 else -int(n)


def _text(n: int, d: int, negative: bool) -> str:
    digits = str(abs(n)).rjust(d + 1, "0")
    body = digits if d == 0 else f"{digits[:-d]}.{digits[-d:]}"
    return ("-" if negative else "") + body


def _terminating(q: sp.Rational, d: int) -> str | None:
    """The exact decimal text of q when it has at most d decimals."""
    for k in range(d + 1):
        scaled = q * sp.Integer(10) ** k
        if scaled.is_Integer:
            return _text(int(scaled), k, q < 0)
    return None


TINY_BITS = 100_000          # an enclosure's end below 2^-TINY_BITS in size is taken as 0 or ±10^-1000


def _ends(value: Num) -> tuple[sp.Rational, sp.Rational]:
    """The enclosure's endpoints as exact Rationals, or, for an end too small to write as one (a value
    such as exp(-exp(30)), about 10^-4.6e12), the nearest of 0 and ±10^-1000 on the outer side: no
    rounding to fewer than 1000 decimals can tell them apart."""
    return tuple(_rational_end(end, upper) for end, upper in zip(value.enclosure._mpi_, (False, True)))


def _rational_end(end, upper: bool) -> sp.Rational:
    sign, man, exp, bc = end
    if man and exp + bc < -TINY_BITS:
        outer = sp.Rational(1, 10**1000)
        return (outer if upper else 0) if not sign else (0 if upper else -outer)
    return sp.Rational(*to_rational(end))


def fixed(value: Num, decimals: int) -> str:
    """``value`` rounded half away from zero to exactly ``decimals`` places ("0.5000", "0.13").

    The one rounding rule of answer keys, verdicts and feedback, the same as :func:`show`'s.
    When a certified enclosure cannot decide the last digit (a value within its width of a
    half), its midpoint decides, so that an answer key always has a number to print.
    """
    if value.exact is not None:
        q = value.exact
    else:
        lo, hi = _ends(value)
        n_lo, n_hi = _round(lo, decimals), _round(hi, decimals)
        if n_lo == n_hi:
            return _text(n_lo, decimals, n_lo < 0)
        q = (lo + hi) / 2
    n = _round(q, decimals)
    return _text(n, decimals, n < 0)


def decimal_text(q, decimals: int) -> str:
    """An exact number with at most ``decimals`` places written with exactly that many ("-0.40")."""
    scaled = sp.Rational(q) * sp.Integer(10) ** decimals
    if not scaled.is_Integer:
        raise ValueError(f"{q} has more than {decimals} decimals")
    return _text(int(scaled), decimals, scaled < 0)


def show(value: Num, decimals: int = DEFAULT_DECIMALS) -> Shown:
    """``value`` for print with ``decimals`` places (exactly, when it is that short)."""
    if value.exact is not None:
        text = _terminating(value.exact, decimals)
        if text is not None:
            return Shown(text, True)
        n = _round(value.exact, decimals)
        return Shown(_text(n, decimals, value.exact < 0), False)
    lo, hi = _ends(value)
    if lo == hi:   # an enclosure of width zero is the exact value (0 from a product with an exact 0)
        return show(Num(value.enclosure, lo), decimals)
    n_lo, n_hi = _round(lo, decimals), _round(hi, decimals)
    if n_lo == n_hi == 0 and lo <= 0 <= hi:
        # a value at or next to 0 whose sign no precision may settle (0.01·1 − 0.01·1 with the 1s
        # known by enclosures): it is 0 to ``decimals`` places, whichever its sign
        return Shown(_text(0, decimals, False), False)
    if n_lo != n_hi or (lo < 0) != (hi < 0):
        raise Undecided("enclosure too wide to round")
    return Shown(_text(n_lo, decimals, hi < 0), False)


def exact_text(num) -> str:
    """A value as text that loses nothing: its rational (``"2421/98"``, ``"-3"``), or else an interval
    ``"[lo, hi]"`` of 30 significant digits that contains it (ends rounded outward)."""
    if num.exact is not None:
        return str(num.exact)
    lo, hi = num.enclosure._mpi_
    return f"[{_end_text(lo, decimal.ROUND_FLOOR)}, {_end_text(hi, decimal.ROUND_CEILING)}]"


def _end_text(end, rounding: str) -> str:
    sign, man, exp, bc = end
    if man and abs(exp + bc) > TINY_BITS:
        # |end| is 2^(m-1) to 2^m: far beyond anything a float holds (10^±30103); written as a power of
        # ten on the outer side (one digit), since its 30 digits would take an integer of |m| bits
        m = exp + bc
        small, big = math.floor((m - 1) * math.log10(2)) - 1, math.ceil(m * math.log10(2)) + 1
        toward_zero = (rounding == decimal.ROUND_FLOOR) == (not sign)
        return f"{'-' if sign else ''}1e{small if toward_zero else big}"
    return _decimal(Fraction(*to_rational(end)), rounding)


def _decimal(q: Fraction, rounding: str) -> str:
    ctx = decimal.Context(prec=EXACT_DIGITS, rounding=rounding, Emax=10**6, Emin=-10**6)
    return str(ctx.divide(decimal.Decimal(q.numerator), decimal.Decimal(q.denominator)))


EXACT_DIGITS = 30
