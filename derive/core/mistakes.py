"""Well-defined mistaken variants of a derivation, for feedback that names the step that went wrong.

A :class:`Mistake` replaces the expressions of one step by what a typical slip computes instead
(a dropped ``g′(z)``, ``W`` for ``Wᵀ``, a flipped sign, a missing path of the chain rule...), with
one line saying so.  The checker recomputes a student's quantity through each variant (numbers:
from the student's own earlier answers; formulas: at random points) and quotes the label of a
variant that reproduces the answer.  Nothing is guessed: a label is shown only when its variant
gives the student's number or formula.

Variants are produced per step class by ``_<Class>`` functions, as the printers dispatch: here for
the steps every kind may use (graph nodes, the chain rule, activations, the loss, the update), in
a kind's package for its own (``derive/kinds/network/mistakes.py``, ``derive/kinds/perceptron/mistakes.py``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from derive.core import primitives
from derive.core.steps import Derivation, Node, symbol, vector_symbols


@dataclass(frozen=True)
class Mistake:
    step: str                     # the name of the step whose expressions it replaces
    exprs: tuple[sp.Expr, ...]
    label: str


def _text(e: sp.Expr) -> str:
    """Readable one-line text of an expression: element indices dropped, ``*`` as ``·``."""
    s = sp.sstr(e)
    s = re.sub(r"\[\d+(,\d+)?\]", "", s)
    s = re.sub(r"Piecewise\(\((.+?), (.+?)\), \((.+?), True\)\)", r"(\1 if \2, else \3)", s)
    s = re.sub(r"\b([A-Za-z_][A-Za-z0-9_]*)\*\*2\b", r"(\1)²", s)    # h1**2 -> (h1)², read (h¹)²
    return s.replace("**", "^").replace("*", "·").replace("learning_rate", "η")


def _nodes(derivation: Derivation) -> dict[str, Node]:
    return {s.name: s for s in derivation.steps if isinstance(s, Node)}


def _is_activation(op: str) -> bool:
    act = primitives.ACTIVATIONS.get(op)
    return act is not None and not act.vector and op != "identity"


# ----------------------------------------------------------------------------- scalar graphs

def _loss_node(derivation: Derivation) -> str | None:
    seed = next((s for s in derivation.steps if type(s).__name__ == "Seed"), None)
    return seed.name[len("grad_"):] if seed is not None else None


def _ChainRule(step, derivation):
    nodes = _nodes(derivation)
    consumers = [c for c, _ in step.terms]
    grads = [symbol("grad_" + c) * local for c, local in step.terms]
    loss = _loss_node(derivation)
    out = []
    if len(step.terms) > 1:
        for i, c in enumerate(consumers):
            out.append(Mistake(step.name, (sp.Add(*(g for j, g in enumerate(grads) if j != i)),),
                               f"missing the path through {c}: grad_{step.of} sums over {', '.join(consumers)}"))
    for i, (c, local) in enumerate(step.terms):
        node = nodes.get(c)
        rest = [g for j, g in enumerate(grads) if j != i]
        up = symbol("grad_" + c)
        term = lambda e: (sp.Add(up * e, *rest),)
        if node is not None and _is_activation(node.op) and local.free_symbols:
            out.append(Mistake(step.name, (sp.Add(up, *rest),),
                               f"missing {_NAMES.get(node.op, node.op)}′ of {c}: the factor {_text(local)} is missing"))
            out.append(Mistake(step.name, (sp.Add(up * symbol(c), *rest),),
                               f"used {c} instead of {_NAMES.get(node.op, node.op)}′ = {_text(local)}"))
            for e, label in _derivative_slips(node.op, symbol(c), symbol(step.of), f"∂{c}/∂{step.of}", local):
                out.append(Mistake(step.name, term(e), label))
        if local.is_Add and local.free_symbols:     # a difference: y − ŷ written for ŷ − y
            out.append(Mistake(step.name, term(-local),
                               f"sign flipped in ∂{c}/∂{step.of}: {_text(local)} expected, not {_text(-local)}"))
        if c == loss and local.free_symbols:
            out.append(Mistake(step.name, term(2 * local),
                               f"missing ½ in {c}: ∂{c}/∂{step.of} = {_text(local)}, the ½ cancels the square's 2"))
            out.append(Mistake(step.name, term(local / 2),
                               f"extra ½ in ∂{c}/∂{step.of}: the ½ of {c} cancels the square's 2, {_text(local)} expected"))
        if local.is_Symbol and node is not None:    # a plain factor: the neighbouring input taken instead
            for other in sorted(node.exprs[0].free_symbols - {local, symbol(step.of)}, key=str):
                if _is_param(other.name, derivation) == _is_param(local.name, derivation):
                    out.append(Mistake(step.name, term(other),
                                       f"used {other} where {local} is needed in grad_{step.of} = grad_{c}·{local}"))
        if len(step.terms) == 1 and node is not None:   # δ of the wrong node: a sibling of the same kind
            for sib in _siblings(c, derivation):
                out.append(Mistake(step.name, (symbol("grad_" + sib) * local,),
                                   f"used grad_{sib} where grad_{c} is needed in grad_{step.of} = grad_{c}·{_text(local)}"))
    return out


def _is_param(name: str, derivation: Derivation) -> bool:
    step = derivation.step(name) if name in derivation else None
    return getattr(step, "role", None) == "param"


_NAMES = {"sigmoid": "σ", "tanh": "tanh", "relu": "ReLU"}


def _derivative_slips(activation: str, h: sp.Expr, z: sp.Expr, what: str, right: sp.Expr
                      ) -> list[tuple[sp.Expr, str]]:
    """What students write for the derivative of ``activation`` at one element (``h`` = g(``z``)):
    σ(1 + σ) or 1 + σ for σ′, 1 − tanh for tanh′, another activation's derivative."""
    g = _NAMES.get(activation)
    if g is None:
        return []
    expected = f"{what} = {_text(right)} expected"
    out = []
    if activation == "sigmoid":
        out += [(h * (1 + h), f"σ′ written as σ(1 + σ): {expected}"),
                (1 + h, f"σ′ written as 1 + σ: {expected}"),
                (1 - h, f"σ′ written as 1 − σ (the factor σ is missing): {expected}"),
                (1 - h ** 2, f"used tanh′ = 1 − tanh² for a σ layer: {expected}")]
    if activation == "tanh":
        out += [(1 - h, f"tanh′ written as 1 − tanh (the square is missing): {expected}"),
                (1 + h ** 2, f"tanh′ written as 1 + tanh²: {expected}"),
                (h * (1 - h), f"used σ′ = σ(1 − σ) for a tanh layer: {expected}"),
                (primitives.derivative("sigmoid").xreplace({primitives.X: z}),
                 f"used σ′ for a tanh layer: {expected}")]
    if activation == "relu":
        out += [(primitives.derivative("sigmoid").xreplace({primitives.X: z}), f"used σ′ for a ReLU layer: {expected}"),
                (h * (1 - h), f"used σ′ = σ(1 − σ) for a ReLU layer: {expected}")]
    return out


def _siblings(name: str, derivation: Derivation) -> list[str]:
    """Nodes with the same operation and the same letters as ``name`` (In_o1 → In_o2, In_h1)."""
    nodes = _nodes(derivation)
    stem = re.sub(r"\d+$", "", name)
    op = nodes[name].op
    return [n for n, s in nodes.items() if n != name and s.op == op and re.sub(r"\d+$", "", n)[:1] == stem[:1]
            and ("grad_" + n) in derivation]


def _Node(step, derivation):
    if step.name == _loss_node(derivation) and any(t.as_coeff_Mul()[0] == sp.Rational(1, 2)
                                                   for t in sp.Add.make_args(step.exprs[0])):
        e = step.exprs[0]
        return [Mistake(step.name, (2 * e,), f"missing ½ in the loss {step.name} = {_text(e)}"),
                Mistake(step.name, (e / 2,), f"extra ½ in the loss {step.name} = {_text(e)}")]
    if not _is_activation(step.op) or len(step.args) != 1:
        return []
    arg = step.args[0]
    return [Mistake(step.name, (symbol(arg),), f"{step.op} not applied: {step.name} = {step.op}({arg})")]


def _Update(step, derivation):
    p, lr, _ = step.inputs
    eta = symbol(lr)
    plus, no_eta = [], []
    for e in step.exprs:            # e = θ − η g
        theta = e.xreplace({eta: sp.S.Zero})
        change = e - theta
        plus.append(theta - change)
        no_eta.append(theta + change.xreplace({eta: sp.S.One}))
    return [Mistake(step.name, tuple(plus), f"update sign flipped: {p}_new = {p} − η·grad_{p}"),
            Mistake(step.name, tuple(no_eta), f"learning rate missing: {p}_new = {p} − η·grad_{p}")]


# ----------------------------------------------------------------------------- layered networks


def _Activate(step, derivation):
    if not _is_activation(step.activation):
        return []
    return [Mistake(step.name, tuple(vector_symbols(f"z{step.layer}", step.target.shape[0])),
                    f"activation not applied: h{step.layer} = g(z{step.layer})")]


def _LossValue(step, derivation):
    if step.loss != "half_sse":
        return []
    return [Mistake(step.name, tuple(2 * e for e in step.exprs), "missing ½ in the loss ½‖y − t‖²"),
            Mistake(step.name, tuple(e / 2 for e in step.exprs), "extra ½ in the loss: ½‖y − t‖² expected")]


# ----------------------------------------------------------------------------- perceptrons


# ----------------------------------------------------------------------------- catalogue

def mistakes(derivation: Derivation, makers: dict | None = None) -> list[Mistake]:
    """Every mistaken variant of every step (variants equal to the step itself are dropped).

    The variants of the steps every kind may use are made here (``_<StepClass>``); a kind adds
    those of its own steps through ``makers`` (``Kind.mistakes``: step class name -> function)."""
    out: list[Mistake] = []
    table = {**{k[1:]: v for k, v in globals().items() if k[:1] == "_" and k[1:2].isupper()}, **(makers or {})}
    for step in derivation.steps:
        make = table.get(type(step).__name__)
        if make is None:
            continue
        for m in make(step, derivation):
            if m.exprs != tuple(step.exprs) and not any(o.step == m.step and o.exprs == m.exprs for o in out):
                out.append(m)
    return out


