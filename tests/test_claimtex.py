"""Claims in print: precedence checked by reading the LaTeX back with latex2sympy2 (an independent
parser) and comparing with the whitelisting parser's own SymPy value of the same text."""
from __future__ import annotations

import random

import pytest
import sympy as sp
from latex2sympy2 import latex2sympy

import worked_examples
from derive.kinds import derive
from derive.kinds.network.derivation import derive_elementwise
from derive.printing.claimtex import claim_names, formula, T
from derive.kinds import names
from derive.core.expressions import parse_expression
from derive.kinds import load

SYMBOLS = ("a", "b", "c")


def _random_expression(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(SYMBOLS + ("2", "0.5", "3"))
    op = rng.choice(["+", "-", "*", "/", "**", "neg", "exp"])
    left, right = _random_expression(rng, depth - 1), _random_expression(rng, depth - 1)
    if op == "neg":
        return f"-({left})"
    if op == "exp":
        return f"exp({left})"
    if op == "**":
        return f"({left})**{rng.choice(['2', '3'])}"
    return f"({left}) {op} ({right})"


@pytest.mark.parametrize("seed", range(30))
def test_printed_scalar_formulas_read_back_to_the_same_value(seed):
    text = _random_expression(random.Random(seed), 4)
    syms = {s: sp.Symbol(s) for s in SYMBOLS}
    expected = parse_expression(text, names=syms, functions={"exp": sp.exp})
    tex = formula(text, {s: T(s) for s in SYMBOLS}, {})
    got = latex2sympy(tex).subs({sp.Symbol(s): syms[s] for s in SYMBOLS})
    assert sp.simplify(got - expected) == 0, (text, tex)


@pytest.fixture(scope="module")
def xjtu():
    spec = load(worked_examples.path("000_4_backprop_formulas"))
    ds = [derive(spec), derive_elementwise(spec.problem)]
    n = names(ds, "xjtu")
    quantities = {s.name: s.target for d in ds for s in d.steps}
    return claim_names(n, spec, quantities), n.elements


def test_matrix_products_and_hadamard_products_keep_their_grouping(xjtu):
    table, elements = xjtu
    assert formula("(W3.T @ delta3) * gprime2", table, elements) == (
        r"\left(\mathbf{W}^{3\top} \boldsymbol{\delta}^{3}\right) \odot g^{2\prime}(\mathbf{z}^{2})")
    assert formula("W3.T @ (delta3 * grad_y)", table, elements) == (
        r"\mathbf{W}^{3\top} \left(\boldsymbol{\delta}^{3} \odot \nabla_{\mathbf{y}} \mathcal{L}\right)")
    assert formula("dL_dW3", table, elements) == r"\frac{\partial \mathcal{L}}{\partial \mathbf{W}^{3}}"
    assert formula("outer(delta2, h1)", table, elements) == r"\boldsymbol{\delta}^{2} {\mathbf{h}^{1}}^{\top}"
    assert formula("W2 - learning_rate * dL_dW2", table, elements) == (
        r"\mathbf{W}^{2} - \eta \frac{\partial \mathcal{L}}{\partial \mathbf{W}^{2}}")
    assert formula("t[0] / y[1]", table, elements) == r"\frac{t_{1}}{y_{2}}"
    assert formula("0.1 * a + 1/3", table, elements) == r"0.1 a + \frac{1}{3}"
