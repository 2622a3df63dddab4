"""The handout of a network with wide layers: each step once, in vector form, with a few elements.

A wide network (``derive/wide.py``) has too many elements to print one line each; its handout
shows each layer-level formula (``z^{(1)} = W^{(1)} x + b^{(1)}``), its element in index form, and
the first ``SHOWN`` elements of the quantity with their values (exact, or rounded by the one rule of
:mod:`derive.core.rounding`), with a note of how many there are.  ``nnderive solve --json`` gives every
element.
"""
from __future__ import annotations

from derive.core import primitives
from derive.core.evaluate import PRECISIONS, Undecided
from derive.printing.sections import Handout
from derive.printing.sections import Section
from derive.printing.latex import Block, Chain, Math, caption
from derive.core.rounding import show
from derive.core.steps import symbol
from derive.kinds.network.wide import WideDerivation, evaluate

SHOWN = 3      # elements shown of each vector (of a matrix: its first rows' first elements)


def tex_name(name: str) -> str:
    """The LaTeX of a quantity of a wide derivation (the standard notation's symbols)."""
    new = name.endswith("_new")
    base = name[:-4] if new else name
    sub = r"_{\text{new}}" if new else ""
    if base == "learning_rate":
        return r"\eta"
    if base == "loss":
        return "L" + sub
    if base in ("x", "t"):
        return base
    if base == "grad_y":
        return r"\nabla_{y} L"
    for prefix, tex in (("grad_W", "W"), ("grad_b", "b"), ("grad_h", "h")):
        if base.startswith(prefix) and base[len(prefix):].isdigit():
            return rf"\frac{{\partial L}}{{\partial {tex}^{{({base[len(prefix):]})}}}}"
    for prefix, tex in (("gprime", "g'"), ("delta", r"\delta"), ("W", "W"), ("b", "b"), ("z", "z"), ("h", "h")):
        if base.startswith(prefix) and base[len(prefix):].isdigit():
            return f"{tex}^{{({base[len(prefix):]})}}{sub}"
    return rf"\mathrm{{{base}}}"


def _element(name: str, index: tuple[int, ...]) -> str:
    tex = tex_name(name)
    if not index:
        return tex
    sub = ",".join(str(i + 1) for i in index)
    return rf"\left({tex}\right)_{{{sub}}}" if tex.startswith(r"\frac") or "_{" in tex else f"{tex}_{{{sub}}}"


def form_tex(d: WideDerivation, step) -> str | None:
    """The right-hand side of a step in vector form (None for a given quantity)."""
    net, n = d.net, tex_name
    ins = step.inputs
    if step.rule == "given":
        return None
    if step.rule in ("affine", "recompute") and step.name.startswith("z"):
        return f"{n(ins[0])} {n(ins[1])}" + (f" + {n(ins[2])}" if len(ins) > 2 else "")
    if step.rule in ("activation", "recompute") and step.name.startswith("h"):
        act = net.layers[step.layer - 1].activation.name
        return rf"{primitives.ACTIVATIONS[act].latex}\left({n(ins[0])}\right)"
    if step.rule in ("loss", "recompute"):
        return rf"{primitives.LOSSES[net.loss].latex} \quad \text{{with }} y = {n(ins[0])}"
    if step.rule == "output_gradient":
        return r"\left(\frac{\partial L}{\partial y_k}\right)_{k}, \quad \frac{\partial L}{\partial y_k} = " \
               + _gradient_tex(net.loss, net.sizes[-1])
    if step.rule == "local_derivative":
        act = net.layers[step.layer - 1].activation.name
        return rf"{primitives.ACTIVATIONS[act].latex}'\left(z^{{({step.layer})}}\right)"
    if step.rule in ("delta_output", "delta_hidden"):
        return rf"{n(ins[0])} \odot {n(ins[1])}"
    if step.rule == "weight_gradient":
        return rf"{n(ins[0])} \, {n(ins[1])}^{{T}}"
    if step.rule == "bias_gradient":
        return n(ins[0])
    if step.rule == "back_error":
        return rf"{n(ins[0])}^{{T}} {n(ins[1])}"
    if step.rule == "update":
        return rf"{n(ins[0])} - \eta \, {n(ins[2])}"
    raise ValueError(f"no vector form for {step.rule}")


def _gradient_tex(loss: str, n: int) -> str:
    """∂L/∂y_k of a loss that is a sum of one term per output, derived once (``wide._loss_terms``)."""
    import sympy as sp
    from derive.core.steps import symbol as element
    from derive.kinds.network.wide import _loss_terms
    coeff, first = _loss_terms(loss, n, "y")
    y0, t0 = element("y", (0,)), element("t", (0,))
    grad = sp.diff(coeff * first, y0)
    return sp.latex(grad.xreplace({y0: sp.Symbol("y_k", real=True), t0: sp.Symbol("t_k", real=True)}))


SECTIONS = (("Given values", {"given"}), ("Forward pass", {"affine", "activation", "loss"}),
            ("Backward pass", {"output_gradient", "local_derivative", "delta_output", "delta_hidden",
                               "weight_gradient", "bias_gradient", "back_error"}),
            ("Gradient-descent step", {"update"}), ("Forward pass with the new parameters", {"recompute"}))


def _indices(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    if not shape:
        return [()]
    if len(shape) == 1:
        return [(i,) for i in range(min(SHOWN, shape[0]))]
    return [(i, j) for i in range(min(SHOWN - 1, shape[0])) for j in range(min(SHOWN - 1, shape[1]))]


def _block(d: WideDerivation, step, values, decimals: int) -> Block:
    chains = []
    form = form_tex(d, step)
    shape = step.target.shape
    if form is not None:
        chains.append(Chain(tex_name(step.name), (("=", form),)))
    for index in _indices(shape):
        value = values[symbol(step.name, index)]
        shown = show(value, decimals)
        chains.append(Chain(_element(step.name, index), (("=" if shown.exact else r"\approx", shown.text),)))
    size = "×".join(map(str, shape))
    note = (f" ({size} elements; the first {len(_indices(shape))} shown, every one in 'nnderive solve --json')"
            if shape else "")
    return Block(caption(f"{step.rule.replace('_', ' ').capitalize()}{note}."), tuple(chains))


def build(spec, d: WideDerivation, decimals: int = 4) -> Handout:
    """The handout of a wide network (see the module docstring)."""
    for bits in PRECISIONS:
        try:
            values = evaluate(d, bits)
            sections = []
            for title, rules in SECTIONS:
                items = tuple(_block(d, s, values, decimals) for s in d.steps if s.rule in rules)
                if items:
                    sections.append(Section(title, items))
            break
        except Undecided:
            if bits == PRECISIONS[-1]:
                raise
    sizes = "-".join(map(str, d.net.sizes))
    meta = (caption(f"A {sizes} network with wide layers: each step is derived once for the whole layer, in "
                    "vector form (index form), and evaluated over whole vectors and matrices; "
                    f"the first elements of each quantity are shown. Numbers are exact where the arithmetic "
                    f"is rational and otherwise rounded to {decimals} decimals ('≈') from certified enclosures."),
            caption("Notation: ", Math(r"\odot"), " is the element-wise product; indices count from 1."))
    if spec.source:
        meta = (caption(f"Source: {spec.source}."),) + meta
    return Handout(spec.name, spec.title, meta, tuple(sections))
