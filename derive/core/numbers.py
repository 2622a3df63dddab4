"""Printed numbers -> exact Rationals, keeping the printed precision.

``"1.80"`` is 9/5 stated to 2 decimals; ``"0.34 - 1"`` (as a slide prints it) is -33/50 stated
to 2 decimals.  Nothing here calls eval or sympify: decimals are matched by a regular expression
and sums of them are split by hand.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from derive.core.errors import SpecError

MAX_NUMBER_CHARS = 64
MAX_EXPONENT = 100  # |e| in 1.5e-3; keeps values inside float64 range for kernels

_DECIMAL = re.compile(r"(?P<sign>[+-]?)(?P<int>\d*)(?:\.(?P<frac>\d*))?(?:[eE](?P<exp>[+-]?\d{1,4}))?")
_TERM = re.compile(r"(?<![eE])\s*([+-])\s*")


class Literal(str):
    """The text of a TOML/JSON float exactly as written (``parse_float`` hook), so 1.80 keeps its zero."""


@dataclass(frozen=True)
class Stated:
    """A printed number: its text, exact value and number of decimals shown."""

    text: str
    value: sp.Rational
    decimals: int

    @property
    def half_ulp(self) -> sp.Rational:
        """Half a unit in the last printed place: the rounding tolerance."""
        return sp.Rational(1, 2) * sp.Rational(10) ** (-self.decimals)


def _normalise(text: str) -> str:
    return text.replace("\u2212", "-").replace("\u2013", "-").strip()


def parse_decimal(text: str, path: str = "") -> Stated:
    """Parse one decimal such as ``-0.0470`` or ``1.5e-3`` exactly."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise SpecError(path, f"expected a number written as a string, got {type(text).__name__}")
    raw = str(text)
    if len(raw) > MAX_NUMBER_CHARS:
        raise SpecError(path, f"number longer than {MAX_NUMBER_CHARS} characters")
    s = _normalise(raw)
    m = _DECIMAL.fullmatch(s)
    if not m or not (m.group("int") or m.group("frac")):
        raise SpecError(path, f"expected a decimal number such as '0.25', got {raw!r}")
    exp = int(m.group("exp") or 0)
    if abs(exp) > MAX_EXPONENT:
        raise SpecError(path, f"exponent {exp} out of range (|e| <= {MAX_EXPONENT})")
    digits = (m.group("int") or "") + (m.group("frac") or "")
    frac = len(m.group("frac") or "")
    value = sp.Integer(int(digits or "0")) * sp.Rational(10) ** (exp - frac)
    if m.group("sign") == "-":
        value = -value
    return Stated(raw, value, frac - exp)


def parse_stated(text: str, path: str = "") -> Stated:
    """A printed number, or a printed sum such as ``0.34 - 1``; decimals are the most shown by any term."""
    if isinstance(text, (int, Literal)) and not isinstance(text, bool):
        return parse_decimal(str(text), path)
    if not isinstance(text, str):
        raise SpecError(path, f"expected a number written as a string, got {type(text).__name__}")
    if len(text) > MAX_NUMBER_CHARS:
        raise SpecError(path, f"number longer than {MAX_NUMBER_CHARS} characters")
    s = _normalise(text)
    parts = _TERM.split(s)
    # parts = [first, op, term, op, term, ...]; a leading sign makes parts[0] empty
    if parts[0] == "" and len(parts) > 1:
        parts = [parts[1] + parts[2]] + parts[3:]
    terms = [parse_decimal(parts[0], path)]
    signs = [1]
    for op, term in zip(parts[1::2], parts[2::2]):
        terms.append(parse_decimal(term, path))
        signs.append(1 if op == "+" else -1)
    if len(terms) == 1:
        return Stated(text, terms[0].value, terms[0].decimals)
    value = sum((sg * t.value for sg, t in zip(signs, terms)), sp.Integer(0))
    return Stated(text, value, max(t.decimals for t in terms))
