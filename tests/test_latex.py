"""The LaTeX of representative steps, pinned as exact strings (each checked by eye against the
slide it mirrors), and the printer's dispatch on the step class."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

import worked_examples
from derive.kinds import derive
from derive.kinds.network.derivation import derive_elementwise
from derive.core.evaluate import evaluate, is_numeric
from derive.printing.latex import HandoutPrinter
from derive.kinds import names
from derive.printing.render import block_tex
from derive.kinds.network.spec import Network
from derive.kinds import load
from derive.printing.latex import Math
from derive.core.steps import Affine, Step
from derive.printing.worked import path_chain


def printer(name: str, profile: str, decimals: int = 4):
    spec = load(worked_examples.path(name))
    d = derive(spec)
    ds = [d] + ([derive_elementwise(spec.problem)] if isinstance(spec.problem, Network) else [])
    values = {}
    if is_numeric(d):
        for x in ds:
            values.update(evaluate(x))
    return HandoutPrinter(names(ds, profile, spec.notation), ds, values or None, decimals), ds[0]


@pytest.fixture(scope="module")
def mlp():
    return printer("000_3_mlp_3333", "xjtu")


def test_affine_step_of_the_3333_net(mlp):
    """Slide 000, forward pass: z¹ = W¹x + b¹ with the matrices written out, = [1.35 1.27 1.80]."""
    p, d = mlp
    assert block_tex(p.doprint(d.step("z1"))) == (
        r"Layer 1, pre-activation: the affine map, reading $\mathbf{W}^{1}$, $\mathbf{x}$ and "
        r"$\mathbf{b}^{1}$." "\n"
        r"\begin{align*}" "\n"
        r"\mathbf{z}^{1} & = \mathbf{W}^{1} \mathbf{x} + \mathbf{b}^{1} = \begin{bmatrix} 0.1 & 0.3 & 0.4 \\ "
        r"0.2 & 0.2 & 0.3 \\ 0.3 & 0.7 & 0.9 \end{bmatrix} \begin{bmatrix} 0.1 \\ 0.2 \\ 0.7 \end{bmatrix} + "
        r"\begin{bmatrix} 1 \\ 1 \\ 1 \end{bmatrix} = \begin{bmatrix} 1.35 \\ 1.27 \\ 1.8 \end{bmatrix} \\" "\n"
        r"z^{1}_{1} & = w^{1}_{11} x_{1} + w^{1}_{12} x_{2} + w^{1}_{13} x_{3} + b^{1}_{1} = 0.1 \cdot 0.1 + "
        r"0.3 \cdot 0.2 + 0.4 \cdot 0.7 + 1 = 1.35 \\" "\n"
        r"z^{1}_{2} & = w^{1}_{21} x_{1} + w^{1}_{22} x_{2} + w^{1}_{23} x_{3} + b^{1}_{2} = 0.2 \cdot 0.1 + "
        r"0.2 \cdot 0.2 + 0.3 \cdot 0.7 + 1 = 1.27 \\" "\n"
        r"z^{1}_{3} & = w^{1}_{31} x_{1} + w^{1}_{32} x_{2} + w^{1}_{33} x_{3} + b^{1}_{3} = 0.3 \cdot 0.1 + "
        r"0.7 \cdot 0.2 + 0.9 \cdot 0.7 + 1 = 1.8" "\n"
        r"\end{align*}")


def test_delta_recursion_of_the_3333_net(mlp):
    """Slide 000: δ² = (W^{3T} δ³) ⊙ g²'(z²), with the vectors written out."""
    p, d = mlp
    assert block_tex(p.doprint(d.step("delta2"))) == (
        r"Layer 2, error term: the \ensuremath{\delta} recursion, the error sent back "
        r"times the local derivative." "\n"
        r"\begin{align*}" "\n"
        r"\boldsymbol{\delta}^{2} & = \left(\mathbf{W}^{3\top} \boldsymbol{\delta}^{3}\right) \odot "
        r"g^{2\prime}(\mathbf{z}^{2}) = \frac{\partial \mathcal{L}}{\partial \mathbf{h}^{2}} \odot "
        r"g^{2\prime}(\mathbf{z}^{2}) = \begin{bmatrix} 0.0701 \\ 0.0607 \\ 0.0530 \end{bmatrix} \odot "
        r"\begin{bmatrix} 0.0574 \\ 0.0560 \\ 0.0176 \end{bmatrix} \approx \begin{bmatrix} 0.0040 \\ 0.0034 \\ "
        r"0.0009 \end{bmatrix}" "\n"
        r"\end{align*}")


def test_relu_local_derivative_is_an_indicator(mlp):
    p, d = mlp
    assert block_tex(p.doprint(d.step("gprime1"))).split("\n")[2] == (
        r"g^{1\prime}(\mathbf{z}^{1}) & = \begin{bmatrix} \mathbf{1}\left[h^{1}_{1} > 0\right] \\ "
        r"\mathbf{1}\left[h^{1}_{2} > 0\right] \\ \mathbf{1}\left[h^{1}_{3} > 0\right] \end{bmatrix} = "
        r"\begin{bmatrix} \mathbf{1}\left[1.35 > 0\right] \\ \mathbf{1}\left[1.27 > 0\right] \\ "
        r"\mathbf{1}\left[1.8 > 0\right] \end{bmatrix} = \begin{bmatrix} 1 \\ 1 \\ 1 \end{bmatrix}")


def test_slide_001_chain_for_w5():
    """Slide 001: δ5 = ∂E/∂o1 · ∂o1/∂In_o1 · ∂In_o1/∂w5 = 0.25 · 0.48 · (1 − 0.48) · 0.56 = 0.03, at 2 decimals."""
    p, d = printer("001_4_net_222", "nankai", decimals=2)
    assert block_tex(p.doprint(path_chain(d, "w5"))).split("\n")[2:4] == [
        r"\delta_{5} & = \frac{\partial \mathrm{Error}}{\partial w_{5}} = \frac{\partial \mathrm{Error}}"
        r"{\partial o_{1}} \cdot \frac{\partial o_{1}}{\partial \mathrm{In}_{o_{1}}} \cdot \frac{\partial "
        r"\mathrm{In}_{o_{1}}}{\partial w_{5}} = \left(o_{1} - y_{1}\right) \cdot o_{1} \left(1 - o_{1}\right) "
        r"\cdot h_{1} \\",
        r"& = \left(0.48 - 0.23\right) \cdot 0.48 \cdot \left(1 - 0.48\right) \cdot 0.56 \approx 0.03"]


def test_graph_node_with_an_activation():
    p, d = printer("001_4_net_222", "nankai", decimals=2)
    assert p.doprint(d.step("h1")).chains[0].rhs == (
        ("=", r"\sigma\left(\mathrm{In}_{h_{1}}\right)"), ("=", r"\sigma\left(0.25\right)"), (r"\approx", "0.56"))


def test_uibe_signs():
    """Deck 003: δ = −∂E/∂net, so δ^y = (W δ^o) ⊙ f'(net^y) (3.15b) and ∂E/∂y = −W δ^o (3.14b)."""
    p, d = printer("003_4_bp_formulas", "uibe")
    assert p.doprint(d.step("delta1")).chains[0].rhs == (
        ("=", r"\left(\mathbf{W} \boldsymbol{\delta}^{o}\right) \odot f'(\mathbf{net}^{y})"),
        ("=", r"-\frac{\partial E}{\partial \mathbf{y}} \odot f'(\mathbf{net}^{y})"))
    rows = p.doprint(d.step("grad_h1")).chains
    assert rows[0].rhs == (("=", r"-\mathbf{W} \boldsymbol{\delta}^{o}"),)
    assert (rows[1].lhs, str(rows[1].rhs[0][1])) == (r"\frac{\partial E}{\partial y_{1}}",
                                                       r"- w_{11} \delta^{o}_{1} - w_{12} \delta^{o}_{2}")


def test_softmax_cross_entropy_in_deck_002_notation():
    """Deck 002: ∂L/∂z⁽³⁾ = (∂ŷ/∂z⁽³⁾) ∂L/∂ŷ = … = ŷ − y, each line one step."""
    p, d = printer("002_2_net_232_softmax", "deck002")
    head, first, _ = p.doprint(d.step("delta2")).chains
    assert (head.lhs, head.rhs) == (r"\frac{\partial L}{\partial \mathbf{z}^{(3)}}", (
        ("=", r"\frac{\partial \hat{\mathbf{y}}}{\partial \mathbf{z}^{(3)}} \frac{\partial L}{\partial \hat{\mathbf{y}}}"),
        ("=", r"\hat{\mathbf{y}} - \mathbf{y}")))
    assert [str(f) for _, f in first.rhs] == [
        r"\frac{\partial \hat{y}_{1}}{\partial z^{(3)}_{1}} \frac{\partial L}{\partial \hat{y}_{1}} + "
        r"\frac{\partial \hat{y}_{2}}{\partial z^{(3)}_{1}} \frac{\partial L}{\partial \hat{y}_{2}}",
        r"\hat{y}_{1} \left(1 - \hat{y}_{1}\right) \cdot \left(- \frac{y_{1}}{\hat{y}_{1}}\right) + "
        r"\left(- \hat{y}_{1} \hat{y}_{2}\right) \cdot \left(- \frac{y_{2}}{\hat{y}_{2}}\right)",
        r"\hat{y}_{1} y_{2} - y_{1} \left(1 - \hat{y}_{1}\right)",
        r"\hat{y}_{1} y_{1} + \hat{y}_{1} y_{2} - y_{1}",
        r"\hat{y}_{1} \left(y_{1} + y_{2}\right) - y_{1}",
        r"\hat{y}_{1} - y_{1}"]


def test_chain_rule_on_a_scalar_graph():
    """Deck 003: ∂f/∂q = z = −4, and ∂f/∂x = ∂f/∂q ∂q/∂x."""
    p, d = printer("003_3_graph_xyz", "xjtu")
    assert p.doprint(d.step("grad_q")).chains[0].rhs == (("=", "z"), ("=", "-4"))
    x = p.doprint(d.step("grad_x")).chains[0]
    assert [str(f) for _, f in x.rhs] == [r"\frac{\partial f}{\partial q} \frac{\partial q}{\partial x}",
                                         r"\frac{\partial f}{\partial q}", "-4"]


# ----------------------------------------------------------------------------- dispatch

@dataclass(frozen=True)
class ScaledAffine(Affine):
    """A new step class with no printer of its own."""


def test_a_subclass_is_printed_by_its_parents_method(mlp):
    p, d = mlp
    step = d.step("z1")
    scaled = ScaledAffine(step.target, step.exprs, step.inputs, layer=1)
    assert p.doprint(scaled) == p.doprint(step)


def test_an_unknown_record_is_refused(mlp):
    p, _ = mlp

    @dataclass(frozen=True)
    class Mystery:
        pass
    with pytest.raises(TypeError, match="no LaTeX printer for Mystery"):
        p.doprint(Mystery())


def test_substitution_and_evaluation_are_records(mlp):
    """Slide 000: z²₁ = 0.2·1.35 + 0.3·1.27 + 0.6·1.80 + 1 = 2.731, as two records with rules and inputs."""
    import sympy as sp
    from derive.core.steps import symbol
    from derive.printing.worked import substitute
    p, d = mlp
    sub, ev = substitute(symbol("z2", (0,)), d.step("z2").expr((0,)), p.values)
    assert (sub.rule, ev.rule) == ("substitution", "evaluation")
    assert sub.inputs == ("W2[0,0]", "W2[0,1]", "W2[0,2]", "b2[0]", "h1[0]", "h1[1]", "h1[2]")
    assert ev.value.exact == sp.Rational(2731, 1000)
    assert str(p.doprint(sub).chains[0].rhs[1][1]) == r"0.2 \cdot 1.35 + 0.3 \cdot 1.27 + 0.6 \cdot 1.8 + 1"
    assert p.doprint(ev).chains[0].rhs == (("=", "2.731"),)
    assert substitute(symbol("z2", (0,)), d.step("z2").expr((0,)), {}) is None


@dataclass(frozen=True)
class Doubled(Step):
    """A step class no printer knows: twice a node."""

    rule = "doubled"


def test_a_new_step_class_prints_generically_and_lands_in_the_handout():
    """A step class added later needs no printer to appear, worked out, in a handout."""
    from derive.handout.assemble import _sections
    from derive.core.steps import Derivation, Quantity, symbol
    from derive.verify.stated import verify_spec
    spec = load(worked_examples.path("003_3_graph_xyz"))
    base = derive(spec)
    extra = Doubled(Quantity("f2"), (2 * symbol("f"),), ("f",))
    d = Derivation(base.steps + (extra,), base.kind)
    n = names([d], "xjtu")
    p = HandoutPrinter(n, [d], evaluate(d))
    block = p.doprint(extra)
    assert block.caption == ("Doubled, reading ", Math("f"), ".")
    assert [(r, str(f)) for r, f in block.chains[0].rhs] == [("=", "2 f"), ("=", r"2 \cdot \left(-12\right)"), ("=", "-24")]
    from derive import kinds
    sections = _sections(spec, [d], p, verify_spec(spec), kinds.printing(d.kind))
    assert sections[-2].title == "Further steps" and sections[-2].items == (block,)
