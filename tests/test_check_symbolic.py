"""Symbolic grading: right and wrong formulas in several notations, each decided (a generous hang
guard only; the time per formula is measured by benchmarks/bench_symbolic.py)."""
from __future__ import annotations

import pytest

from derive.grading.answers import CORRECT, INVALID, WRONG
from derive.grading.grade import grade_latex
from hang_guard import hang_guard

RIGHT_222 = [
    ("grad_w5", r"$(o_1 - y_1)\,o_1(1 - o_1)\,h_1$"),
    ("grad_w5", r"$h_1 o_1 (1-o_1)(o_1-y_1)$"),
    ("grad_w5", r"$\frac{\partial E}{\partial \mathrm{In}_{o_1}}\, h_1$"),
    ("grad_w5", r"$(o_1 - y_1)\,\sigma'(w_5 h_1 + w_7 h_2)\,h_1$"),
    ("grad_w5", r"$\left(\frac{1}{1+e^{-(w_5 h_1 + w_7 h_2)}} - y_1\right) o_1 (1 - o_1) h_1$"),
    ("grad_In_o1", r"$\frac{\partial E}{\partial o_1} \cdot o_1 \cdot (1 - o_1)$"),
    ("grad_h1", r"$\frac{\partial E}{\partial In_{o1}} w_5 + \frac{\partial E}{\partial In_{o2}} w_6$"),
    ("w5_new", r"$w_5 - \eta\,(o_1 - y_1) o_1 (1 - o_1) h_1$"),
    ("In_h1", r"$0.5 w_1 + 0.3 w_3$"),  # the problem's numbers for x1, x2
    ("grad_w1", r"$\frac{\partial E}{\partial h_1} h_1 (1 - h_1) x_1$"),
]


@pytest.mark.parametrize("quantity, text", RIGHT_222)
def test_right_formulas(net222, quantity, text):
    with hang_guard():
        r = grade_latex(net222, quantity, None, text)
    assert r["verdict"] == CORRECT, r


WRONG_222 = [
    ("grad_w5", r"$(y_1 - o_1)\,o_1(1 - o_1)\,h_1$", "sign flipped"),
    ("grad_w5", r"$(o_1 - y_1)\,h_1$", "missing σ′ of o₁"),
    ("grad_w5", r"$(o_1 - y_1)\,o_1(1 - o_1)\,h_2$", "used h₂ where h₁ is needed"),
    ("grad_h1", r"$\frac{\partial E}{\partial In_{o1}} w_5$", "missing the path through Inₒ₂"),
    ("w5_new", r"$w_5 + \eta \frac{\partial E}{\partial w_5}$", "update sign flipped"),
    ("In_h1", r"$0.5 w_1 + 0.4 w_3$", "not equivalent"),
]


@pytest.mark.parametrize("quantity, text, words", WRONG_222)
def test_wrong_formulas_name_the_mistake(net222, quantity, text, words):
    r = grade_latex(net222, quantity, None, text)
    assert r["verdict"] == WRONG and words in r["feedback"], r


RIGHT_MLP = [
    ("delta2", None, r"$W^{(3)T}\delta^{(3)} \odot h^{(2)} \odot (1 - h^{(2)})$"),
    ("delta2", None, r"$\left(\mathbf{W}_3^\top \boldsymbol\delta_3\right) \odot \sigma'(\mathbf{z}_2)$"),
    ("delta3", None, r"$(\hat{y} - t) \odot \hat{y} \odot (1 - \hat{y})$"),
    ("grad_W3", None, r"$\delta^{(3)} h^{(2)T}$"),
    ("grad_W3", (0, 1), r"$\delta^{(3)}_1 h^{(2)}_2$"),
    ("grad_h2", None, r"$(W^{(3)})^{\top} \frac{\partial L}{\partial z^{(3)}}$"),
    ("z1", None, r"$\mathbf{W}^{(1)} \mathbf{x} + \mathbf{b}^{(1)}$"),
    ("delta3", None, r"$\begin{bmatrix} (\hat{y}_1 - t_1)\hat{y}_1(1-\hat{y}_1) \\ (\hat{y}_2 - t_2)\hat{y}_2(1-\hat{y}_2)"
                     r" \\ (\hat{y}_3 - t_3)\hat{y}_3(1-\hat{y}_3) \end{bmatrix}$"),
    ("grad_b3", None, r"$\begin{pmatrix} \delta^{(3)}_1 & \delta^{(3)}_2 & \delta^{(3)}_3 \end{pmatrix}^T$"),
    ("grad_W3", None, r"$\begin{bmatrix} \delta^{(3)}_1 \\ \delta^{(3)}_2 \\ \delta^{(3)}_3 \end{bmatrix}"
                      r" \begin{bmatrix} h^{(2)}_1 & h^{(2)}_2 & h^{(2)}_3 \end{bmatrix}$"),
]


@pytest.mark.parametrize("quantity, index, text", RIGHT_MLP)
def test_right_matrix_formulas(mlp, quantity, index, text):
    with hang_guard():
        r = grade_latex(mlp, quantity, index, text)
    assert r["verdict"] == CORRECT, r


WRONG_MLP = [
    ("grad_h2", r"$W^{(3)} \delta^{(3)}$", "used W³ where W³ᵀ is needed"),
    ("delta2", r"$W^{(3)T}\delta^{(3)}$", "missing g′(z²)"),
    ("grad_W3", r"$h^{(2)} \delta^{(3)T}$", "outer product reversed"),
    ("delta3", r"$(t - \hat{y}) \odot \hat{y} \odot (1 - \hat{y})$", "sign flipped"),
    ("delta3", r"$\hat{y} - t$", "missing g′(z³)"),
    ("delta3", r"$\hat{y}_1 - t_1$", "a scalar"),
    ("grad_b3", r"$\begin{bmatrix} \delta^{(3)}_1 \\ -\delta^{(3)}_2 \\ \delta^{(3)}_3 \end{bmatrix}$", "not equivalent"),
    ("grad_W3", r"$\begin{bmatrix} 1 & 2 \end{bmatrix}$", "shape 1x2"),
]


@pytest.mark.parametrize("quantity, text, words", WRONG_MLP)
def test_wrong_matrix_formulas(mlp, quantity, text, words):
    r = grade_latex(mlp, quantity, None, text)
    assert r["verdict"] == WRONG and words in r["feedback"], r


def test_unreadable_is_invalid(net222):
    r = grade_latex(net222, "grad_w5", None, r"$(o_1 - y_1) \foo h_1$")
    assert r["verdict"] == INVALID and "not understood" in r["feedback"]


BIG_POWER = r"$(w_1 + w_2 + w_3 + w_4 + w_5 + w_6 + w_7 + w_8)^{64}$"


def test_big_power_is_decided_not_expanded(net222):
    with hang_guard():     # expanding the power would not end in any reasonable time
        r = grade_latex(net222, "grad_w5", None, BIG_POWER)
    assert r["verdict"] == WRONG


@pytest.mark.parametrize("text, words", [
    (r"$\begin{bmatrix} 1 & \\ 3 & 4 \end{bmatrix}$", "empty matrix element"),
    (r"$\begin{bmatrix} 1 & 2 \\ 3 \end{bmatrix}$", "same number of elements"),
    (r"$\begin{vmatrix} 1 & 2 \\ 3 & 4 \end{vmatrix}$", "not understood"),
    (r"$\begin{bmatrix} 1 & 2 \end{pmatrix}$", "ended by"),
    (r"$\begin{bmatrix} 1 & 2$", "missing \\end{bmatrix}"),
    (r"$\begin{bmatrix} \begin{bmatrix} 1 \end{bmatrix} \end{bmatrix}$", "inside a matrix"),
    (r"$1 & 2$", "not understood"),
])
def test_malformed_matrices_are_invalid_with_a_reason(mlp, text, words):
    r = grade_latex(mlp, "grad_b3", None, text)
    assert r["verdict"] == INVALID and words in r["feedback"], r
