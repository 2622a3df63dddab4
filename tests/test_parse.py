"""The LaTeX normalisation layer: notations, refusals, and that nothing reaches eval/sympify/parse_expr."""
from __future__ import annotations

import builtins

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import latex2sympy2
from derive.grading.parse import EvalBlocked, LatexError, no_eval, parse_answer, vocabulary
from derive.core.steps import symbol

s = symbol  # element symbols, built independently of the parser
sig = lambda x: 1 / (1 + sp.exp(-x))


def same(a, b) -> bool:
    if hasattr(a, "shape") or hasattr(b, "shape"):
        return getattr(a, "shape", None) == getattr(b, "shape", None) and all(same(x, y) for x, y in zip(a, b))
    d = a - b
    if sp.simplify(sp.expand(d)) == 0:
        return True
    import random
    rng = random.Random(1)
    for _ in range(6):  # piecewise forms: compare at points instead
        point = {x: sp.Rational(rng.randint(-300, 300), 100) for x in d.free_symbols}
        if abs(sp.N(d.xreplace(point), 30)) > 1e-20:
            return False
    return True


GRAPH_CASES = [
    (r"$(o_1 - y_1)\,o_1(1 - o_1)\,h_1$", (s("o1") - s("y1")) * s("o1") * (1 - s("o1")) * s("h1")),
    (r"$(o1 - y1) \cdot o1 \cdot (1 - o1) \cdot h1$", (s("o1") - s("y1")) * s("o1") * (1 - s("o1")) * s("h1")),
    (r"$\frac{\partial E}{\partial o_1}\,\sigma'(\mathrm{In}_{o_1})\,h_1$",
     s("grad_o1") * sig(s("In_o1")) * (1 - sig(s("In_o1"))) * s("h1")),
    (r"$\frac{\partial \mathrm{Error}}{\partial w_5}$", s("grad_w5")),
    (r"$\sigma(w_5 h_1 + w_7 h_2)$", sig(s("w5") * s("h1") + s("w7") * s("h2"))),
    (r"$\frac{1}{1+e^{-(w_1 x_1 + w_3 x_2)}}$", sig(s("w1") * s("x1") + s("w3") * s("x2"))),
    (r"$In_{h1} + \text{In}_{h_2}$", s("In_h1") + s("In_h2")),
    (r"$w_1 - \eta \frac{\partial L}{\partial w_1}$", s("w1") - s("learning_rate") * s("grad_w1")),
    (r"$\log(o_1)$", sp.log(s("o1"))),
    (r"$\log_{2} o_1$", sp.log(s("o1")) / sp.log(2)),
    (r"$\sqrt{o_1} + |w_6|$", sp.sqrt(s("o1")) + sp.Abs(s("w6"))),
    (r"$\left(o_1 - y_1\right)^2 / 2$", (s("o1") - s("y1")) ** 2 / 2),
    (r"$\tanh'(w_1)$", 1 - sp.tanh(s("w1")) ** 2),
    (r"$\sigma^{\prime}(w_1)$", sig(s("w1")) * (1 - sig(s("w1")))),
    (r"$\operatorname{ReLU}(w_2) + \max(w_1, 0)$", sp.Max(s("w2"), 0) + sp.Max(s("w1"), 0)),
    (r"$0.5 w_1 + 1.25$", sp.Rational(1, 2) * s("w1") + sp.Rational(5, 4)),
    (r"$o_1 − y_1$", s("o1") - s("y1")),  # a Unicode minus
]


@pytest.mark.parametrize("text, expected", GRAPH_CASES)
def test_graph_notation(net222, text, expected):
    assert same(parse_answer(text, net222.vocab), expected)


def M(name, rows, cols=1):
    return sp.Matrix(rows, cols, lambda i, j: s(name, (i, j) if cols > 1 else (i,)))


NETWORK_CASES = [
    (r"$W^{(3)T}\delta^{(3)} \odot \sigma'(z^{(2)})$",
     lambda: (M("W3", 3, 3).T * M("delta3", 3)).multiply_elementwise(M("z2", 3).applyfunc(lambda z: sig(z) * (1 - sig(z))))),
    (r"$(W^{(3)})^{\top} \delta^{(3)}$", lambda: M("W3", 3, 3).T * M("delta3", 3)),
    (r"$\mathbf{W}_3^\mathsf{T} \boldsymbol{\delta}_3$", lambda: M("W3", 3, 3).T * M("delta3", 3)),
    (r"$\delta^{(3)} h^{(2)\top}$", lambda: M("delta3", 3) * M("h2", 3).T),
    (r"$(\hat{y} - t) \odot \hat{y} \odot (1 - \hat{y})$",
     lambda: sp.Matrix(3, 1, lambda i, j: (s("h3", (i,)) - s("t", (i,))) * s("h3", (i,)) * (1 - s("h3", (i,))))),
    (r"$W^{(2)}_{12}$", lambda: s("W2", (0, 1))),
    (r"$W^{(2)}_{1,2} x_3$", lambda: s("W2", (0, 1)) * s("x", (2,))),
    (r"$\frac{\partial L}{\partial z^{(2)}}$", lambda: M("delta2", 3)),
    (r"$\frac{\partial L}{\partial W^{(2)}_{21}}$", lambda: s("grad_W2", (1, 0))),
    (r"$\mathbf{W}^{(1)} \mathbf{x} + \mathbf{b}^{(1)}$", lambda: M("W1", 3, 3) * M("x", 3) + M("b1", 3)),
    (r"$a^{(1)}_2$", lambda: s("h1", (1,))),
]


@pytest.mark.parametrize("text, build", NETWORK_CASES)
def test_network_notation(mlp, text, build):
    assert same(parse_answer(text, mlp.vocab), build())


@pytest.mark.parametrize("text, words", [
    (r"$\sigma(x)$", "unknown name"),
    (r"$o_1'$", "prime"),
    (r"$1,5 + o_1$", "comma"),
    (r"$o_1 = 3$", "equation"),
    (r"$1e5$", "scientific notation"),
    (r"$(o_1$", "unbalanced"),
    (r"$\det(o_1)$", "not understood"),
    (r"$\sum_{i=1}^{3} o_1$", "not understood"),
    (r"$\int o_1$", "not understood"),
    (r"$o_1!$", "unexpected character"),
    (r"$\sigma o_1$", "parentheses"),
    (r"$\frac{\partial o_1}{\partial w_5}$", "only derivatives of the loss"),
    (r"$w_1^{w_2}$", "variable exponents"),
    (r"$2^{100}$", "exponent too large"),
    (r"o_1", "between $"),
    (r"$$", "empty"),
    (r"$o_1 $ + $o_2$", "one expression"),
])
def test_refusals_name_the_problem(net222, text, words):
    text = text if text != "o_1" else "o_1 $"
    with pytest.raises(LatexError, match=words.replace("$", r"\$")):
        parse_answer(text, net222.vocab)


def test_ambiguous_letters(net222):
    """'In' is declared only as part of In_h1; 'xy' would be x·y when both are declared."""
    from derive.grading.grade import Problem
    from derive.kinds import loads
    p = Problem.build(loads('[graph]\nvalues = { x = "1", y = "2", xy = "3" }\nnodes = ["f = x*y + xy"]\n', name="amb"))
    with pytest.raises(LatexError, match="ambiguous"):
        parse_answer("$xy$", p.vocab)
    assert same(parse_answer(r"$\mathrm{xy} + x \cdot y$", p.vocab), s("xy") + s("x") * s("y"))


def test_shapes_are_checked(mlp):
    with pytest.raises(LatexError, match="element-wise product write \\\\odot"):
        parse_answer(r"$\delta^{(3)} \delta^{(3)}$", mlp.vocab)
    with pytest.raises(LatexError, match="equal shapes"):
        parse_answer(r"$\delta^{(3)} \odot W^{(3)}$", mlp.vocab)


def test_log_policy():
    import worked_examples
    from derive.kinds import derive
    from derive.kinds import load
    d = derive(load(worked_examples.path("001_4_net_222")))
    assert same(parse_answer(r"$\log o_1$", vocabulary(d, "10")), sp.log(s("o1")) / sp.log(10))
    assert same(parse_answer(r"$\log o_1$", vocabulary(d)), sp.log(s("o1")))
    assert same(parse_answer(r"$\ln o_1$", vocabulary(d, "10")), sp.log(s("o1")))


# ----------------------------------------------------------------------------- safety

def test_no_eval_blocks_the_library_paths():
    import sympy.parsing.sympy_parser as spp
    with no_eval():
        with pytest.raises(EvalBlocked):
            eval("1 + 1")
        with pytest.raises(EvalBlocked):
            sp.sympify("x + 1")
        with pytest.raises(EvalBlocked):  # what latex2sympy2's \variable path would call
            latex2sympy2.parse_expr("__import__('os')")
    assert builtins.eval("1 + 1") == 2 and spp.parse_expr("x").is_Symbol  # restored afterwards


HOSTILE = [r"$\variable{a}$", r"$a := 5$", r"$x \in \mathbb{R}^{2}$", r"$\mathrm{__import__}(os)$",
           r"$\text{os.system('ls')}$", r"$\operatorname{eig}(o_1)$", r"$\operatorname{rank}(o_1)$",
           r"$\begin{vmatrix} 1 & 2 \\ 3 & 4 \end{vmatrix}$", r"$\lim_{x \to 0} o_1$", r"$\binom{10}{3}$",
           r"${o_1}_{2}$", r"$o_1|_{o_1=2}$", r"$\mathit{eval}(1)$", r"$f(o_1)$", r"$I$", r"$i$"]


def _record_calls(monkeypatch):
    import sympy.parsing.sympy_parser as spp
    calls = []

    def spy(name, real):
        def f(*a, **k):
            calls.append(name)
            return real(*a, **k)
        return f
    monkeypatch.setattr(spp, "parse_expr", spy("parse_expr", spp.parse_expr))
    monkeypatch.setattr(latex2sympy2, "parse_expr", spy("latex2sympy2.parse_expr", latex2sympy2.parse_expr))
    return calls


@pytest.mark.parametrize("text", HOSTILE + [c[0] for c in GRAPH_CASES])
def test_student_text_never_reaches_a_code_evaluator(net222, monkeypatch, text):
    """Spies outside no_eval record any call that gets past it; none may, and globals stay as they were."""
    calls = _record_calls(monkeypatch)
    before = {k: repr(getattr(latex2sympy2, k)) for k in ("variances", "var", "VARIABLE_VALUES", "is_real", "frac_type")}
    try:
        parse_answer(text, net222.vocab)
    except LatexError:
        pass
    assert calls == []
    assert {k: repr(getattr(latex2sympy2, k)) for k in before} == before


ALPHABET = list("abcdefhowxyzEILT0123456789+-*/^_(){}[]|,'=!&.: ") + [
    "\\frac", "\\sigma", "\\partial", "\\cdot", "\\odot", "\\left(", "\\right)", "\\hat{y}", "\\mathrm{In}",
    "\\det", "\\variable{", "\\begin{bmatrix}", "\\\\", "\\sqrt", "\\log", "\\exp", "^T", "^{(1)}", "o_1", "w_5"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ALPHABET), max_size=25))
def test_fuzz_only_results_or_latex_errors(net222, parts):
    text = "$" + "".join(parts) + "$"
    try:
        v = parse_answer(text, net222.vocab)
    except LatexError:
        return
    free = v.free_symbols if not hasattr(v, "shape") else set().union(*(e.free_symbols for e in v))
    declared = {x for q in net222.vocab.values.values() for x in (q if hasattr(q, "shape") else [q])}
    assert free <= declared
