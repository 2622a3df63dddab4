"""Every spelling of a transpose and of a power of a function that the checker accepts: spelling ×
place × quantity, each parsed and compared with the expected SymPy form built here, independently
of the parser.  The spellings that stay refused are listed in docs/checking.md, and tested last."""
from __future__ import annotations

import pytest
import sympy as sp

from derive.grading.parse import LatexError, parse_answer
from derive.core.steps import symbol as s

sig = lambda x: 1 / (1 + sp.exp(-x))


def M(name, rows, cols=1):
    return sp.Matrix(rows, cols, lambda i, j: s(name, (i, j) if cols > 1 else (i,)))


def same(a, b) -> bool:
    if getattr(a, "shape", None) != getattr(b, "shape", None):
        return False
    return all(sp.simplify(x - y) == 0 for x, y in zip(a, b)) if hasattr(a, "shape") else sp.simplify(a - b) == 0


# the superscript after ^ ; an entry in braces is also written without its outer braces inside a
# layer superscript (W^{(3)\mathsf T})
TRANSPOSES = [
    "T", "{T}", r"\top", r"{\top}", r"\intercal", r"{\intercal}", r"{\mathsf T}", r"{\mathsf{T}}",
    r"\mathsf{T}", r"\mathsf T", r"{\rm T}", r"{\mathrm T}", r"{\mathrm{T}}", r"\mathrm{T}",
    r"{\operatorname{T}}", r"{\text{T}}", r"{\textsf{T}}",
]


def _inside(spelling: str) -> str:
    return spelling[1:-1] if spelling.startswith("{") else spelling


# (place, quantity): the answer with X standing for the transpose, and its expected value
PLACES = {
    "parenthesised": (r"(W^{(3)})^X \delta^{(3)}", lambda: M("W3", 3, 3).T * M("delta3", 3)),
    "left-right": (r"\left(W^{(3)}\right)^X \delta^{(3)}", lambda: M("W3", 3, 3).T * M("delta3", 3)),
    "braced group": (r"{W^{(3)}}^X \delta^{(3)}", lambda: M("W3", 3, 3).T * M("delta3", 3)),
    "in the layer superscript": (r"W^{(3)Y} \delta^{(3)}", lambda: M("W3", 3, 3).T * M("delta3", 3)),
    "bold with subscript": (r"\mathbf{W}_3^X \boldsymbol{\delta}_3", lambda: M("W3", 3, 3).T * M("delta3", 3)),
    "outer product": (r"\delta^{(3)} {h^{(2)}}^X", lambda: M("delta3", 3) * M("h2", 3).T),
    "outer product, layer": (r"\delta^{(3)} h^{(2)Y}", lambda: M("delta3", 3) * M("h2", 3).T),
}


@pytest.mark.parametrize("spelling", TRANSPOSES)
@pytest.mark.parametrize("place", list(PLACES))
def test_every_transpose_spelling_in_every_place(mlp, spelling, place):
    template, build = PLACES[place]
    text = "$" + template.replace("X", spelling).replace("Y", _inside(spelling)) + "$"
    assert same(parse_answer(text, mlp.vocab), build()), text


POWERS = [
    (r"1 - \tanh^2(z^{(2)})", lambda: M("z2", 3).applyfunc(lambda z: 1 - sp.tanh(z) ** 2)),
    (r"1 - \tanh^{2}(z^{(2)})", lambda: M("z2", 3).applyfunc(lambda z: 1 - sp.tanh(z) ** 2)),
    (r"\operatorname{sech}^2(z^{(2)})", lambda: M("z2", 3).applyfunc(lambda z: 1 / sp.cosh(z) ** 2)),
    (r"\mathrm{sech}^{2}\left(z^{(2)}\right)", lambda: M("z2", 3).applyfunc(lambda z: 1 / sp.cosh(z) ** 2)),
    (r"\sigma(z^{(2)}) - \sigma^2(z^{(2)})", lambda: M("z2", 3).applyfunc(lambda z: sig(z) * (1 - sig(z)))),
    (r"\operatorname{ReLU}^2(z^{(2)})", lambda: M("z2", 3).applyfunc(lambda z: sp.Max(z, 0) ** 2)),
    (r"\sigma^3(z^{(2)})", lambda: M("z2", 3).applyfunc(lambda z: sig(z) ** 3)),
]


@pytest.mark.parametrize("text, build", POWERS)
def test_powers_of_functions(mlp, text, build):
    got = parse_answer("$" + text + "$", mlp.vocab)
    want = build()
    assert got.shape == want.shape
    for a, b in zip(got, want):      # compare at points: sech and tanh forms differ in shape only
        for v in (sp.Rational(-13, 10), sp.Rational(1, 3), sp.Rational(27, 10)):
            point = {x: v for x in (a - b).free_symbols}
            assert abs(sp.N((a - b).xreplace(point), 40)) < 1e-30, text


def test_tanh_prime_as_sech_squared_is_graded_correct():
    """A whole answer, graded: tanh'(z) written as sech²(z) on a tanh network is `correct`."""
    from derive.grading.grade import Problem, grade_latex
    from derive.kinds import loads
    spec = loads("""
[network]
input = ["0.5", "-0.2"]
target = ["0.1"]
loss = "half_sse"
learning_rate = "0.5"

[[network.layer]]
weights = [["0.3", "-0.4"], ["0.2", "0.6"]]
bias = ["0.1", "0"]
activation = "tanh"

[[network.layer]]
weights = [["0.5", "-0.7"]]
bias = ["0.2"]
activation = "sigmoid"
""", name="tanh_net")
    p = Problem.build(spec)
    r = grade_latex(p, "gprime1", None, r"$\operatorname{sech}^2(z^{(1)})$")
    assert r["verdict"] == "correct", r
    r = grade_latex(p, "gprime1", None, r"$1 - \tanh^2(z^{(1)})$")
    assert r["verdict"] == "correct", r
    r = grade_latex(p, "gprime1", None, r"$1 - \tanh(z^{(1)})$")
    assert r["verdict"] == "wrong", r


@pytest.mark.parametrize("text, words", [
    (r"$\sigma^{-1}(z^{(2)})$", "whole power"),         # an inverse function, not a power
    (r"$\tanh^{n}(z^{(2)})$", "whole power"),
    (r"$(W^{(3)})^{t} \delta^{(3)}$", "transpose is written"),  # a lower-case t is the target vector
])
def test_refused_spellings(mlp, text, words):
    with pytest.raises(LatexError) as e:
        parse_answer(text, mlp.vocab)
    assert words in str(e.value)
