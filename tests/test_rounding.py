"""Display rounding against Python's decimal module (an independent implementation)."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
import sympy as sp
from hypothesis import given, strategies as st
from mpmath import iv

from derive.core.evaluate import Num, Undecided, precision, rational, value_of
from derive.core.rounding import fixed, show


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


# ----------------------------------------------------------------------------- one rule everywhere

@given(st.fractions(min_value=-1000, max_value=1000, max_denominator=10 ** 6), st.integers(0, 6))
def test_answer_keys_round_like_the_decimal_module(q, d):
    """The answer key's text (``fixed``) is q rounded half away from zero, with exactly d places."""
    text = fixed(rational(sp.Rational(q.numerator, q.denominator)), d)
    assert Fraction(text) == Fraction(_decimal(q, d))
    assert len(text.split(".")[1] if "." in text else "") == d
    assert not text.startswith("-") or Fraction(text) < 0     # never "-0.00"


@pytest.mark.parametrize("q, d, text", [(Fraction(1, 8), 2, "0.13"), (Fraction(-1, 8), 2, "-0.13"),
                                        (Fraction(5, 2), 0, "3"), (Fraction(1, 2), 4, "0.5000")])
def test_handout_answer_key_and_variant_sheet_agree(q, d, text):
    """1/8 at two decimals: the handout, the answer key and a variant's drawn value all say 0.13."""
    from derive.grading.grade import rounded
    from derive.grading.variants import _fmt
    value = rational(sp.Rational(q.numerator, q.denominator))
    assert rounded(value, d) == text
    assert Fraction(show(value, d).text) == Fraction(text)
    assert _fmt(Fraction(text), d) == text


def test_an_irrational_key_rounds_by_its_enclosure():
    with precision(160):
        v = value_of(1 / (1 + sp.exp(-sp.Rational(2731, 1000))), {})
    assert fixed(v, 4) == "0.9388" == show(v, 4).text
def test_an_enclosure_around_zero_shows_zero():
    """Found by tests/test_properties_network.py: a value that is exactly 0 but known only by an
    enclosure straddling 0 (0.01·1 − 0.01·1, the 1s from conditions on log 2 − log 2) was
    Undecided at every precision, and the handout crashed.  Both ends round to 0: it shows 0."""
    with precision(160):
        straddle = Num(iv.log(iv.mpf(2)) - iv.log(iv.mpf(2)))
    assert straddle.enclosure.a < 0 < straddle.enclosure.b
    assert show(straddle, 4) == type(show(straddle, 4))("0.0000", False)
    with pytest.raises(Undecided):            # a sign that matters at 4 places is still asked again
        show(Num(iv.mpf([-0.0001, 0.00001])), 4)


def test_the_handout_of_a_zero_known_only_by_its_enclosure(tmp_path):
    from derive import cli
    spec = tmp_path / "hinge.toml"
    spec.write_text('[network]\ninput = ["0"]\ntarget = ["0.01", "0.01"]\nloss = "hinge"\n'
                    '[[network.layer]]\nweights = [["0"], ["0"]]\nactivation = "softplus"\n')
    assert cli.main(["handout", str(spec), "--format", "md", "-o", str(tmp_path / "h.md")]) == 0
    assert "0.0000" in (tmp_path / "h.md").read_text()


TIE = ('[network]\ninput = ["1"]\ntarget = ["0.3"]\nloss = "half_sse"\n'
       '[[network.layer]]\nweights = [["-0.5"]]\nactivation = "tanh"\n'      # h1 = tanh(−1/2): not rational
       '[[network.layer]]\nweights = [["1"]]\nactivation = "relu"\n'        # h2 = relu(h1) = 0, by its enclosure
       '[[network.layer]]\nweights = [["0.003"]]\nactivation = "sigmoid"\n')  # y = σ(0) = 1/2


def test_a_zero_width_enclosure_counts_as_exact():
    """Found by tests/test_properties_network.py: ∂L/∂h2 = 0.003 · (1/2 − 0.3) · 1/4 = 0.00015 is a
    tie at 4 decimals; from the point enclosures of h2 = 0 and y = 1/2 it was computed as a
    non-dyadic interval around the tie, Undecided at every precision, and the handout crashed."""
    from derive.kinds import derive
    from derive.core.evaluate import evaluate
    from derive.kinds import loads
    from derive.core.steps import symbol
    values = evaluate(derive(loads(TIE)))
    assert values[symbol("h3", (0,))].exact == sp.Rational(1, 2)
    assert values[symbol("grad_h2", (0,))].exact == sp.Rational(3, 1000) * sp.Rational(1, 5) / 4
    assert show(values[symbol("grad_h2", (0,))], 4) == type(show(rational(sp.Integer(1)), 4))("0.0002", False)


def test_the_handout_of_a_tie_known_by_point_enclosures(tmp_path):
    from derive import cli
    (tmp_path / "tie.toml").write_text(TIE)
    assert cli.main(["handout", str(tmp_path / "tie.toml"), "--format", "md", "-o", str(tmp_path / "t.md")]) == 0
