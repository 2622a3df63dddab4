"""Display rounding against Python's decimal module (an independent implementation)."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
import sympy as sp
from hypothesis import given, strategies as st
from mpmath import iv

from derive.evaluate import Num, Undecided, precision, rational, value_of
from derive.rounding import show


def _decimal(q: Fraction, d: int) -> str:
    """q rounded to d places, halves away from zero (28 significant digits decide every case here)."""
    quotient = Decimal(q.numerator) / Decimal(q.denominator)
    return str(quotient.quantize(Decimal(1).scaleb(-d), rounding=ROUND_HALF_UP))


@given(st.fractions(min_value=-1000, max_value=1000, max_denominator=10 ** 6), st.integers(0, 6))
def test_rationals_round_half_away_from_zero(q, d):
    shown = show(rational(sp.Rational(q.numerator, q.denominator)), d)
    if any((q * 10 ** k).denominator == 1 for k in range(d + 1)):
        assert shown.exact and Fraction(shown.text) == q
    else:
        assert not shown.exact
        expected = _decimal(q, d)
        assert Fraction(shown.text) == Fraction(expected)
        assert len(shown.text.split(".")[1] if "." in shown.text else "") == d


def test_examples():
    assert show(rational(sp.Rational(27, 20)), 4).text == "1.35"
    assert show(rational(sp.Rational(1, 3)), 4).text == "0.3333"
    assert show(rational(sp.Rational(-5, 100000)), 4).text == "-0.0001"
    assert show(rational(sp.Rational(5, 100000)), 4).text == "0.0001"
    assert show(rational(sp.Integer(3)), 0).text == "3"


def test_irrational_values_round_by_their_enclosure():
    with precision(160):
        v = value_of(1 / (1 + sp.exp(-sp.Rational(2731, 1000))), {})
    assert show(v, 4).text == "0.9388" and not show(v, 4).exact
    assert show(v, 10).text == f"{float(v):.10f}"


def test_an_enclosure_too_wide_to_round_is_undecided():
    wide = Num(iv.mpf([0.12344, 0.12346]))
    with pytest.raises(Undecided):
        show(wide, 4)


def test_an_enclosure_of_width_zero_is_exact():
    with precision(160):
        zero = Num(iv.exp(iv.mpf(1)) * 0)        # an irrational times an exact 0
    assert show(zero, 4).text == "0" and show(zero, 4).exact
