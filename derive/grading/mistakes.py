"""Well-defined mistaken variants of a derivation, for feedback that names the step that went wrong.

A :class:`Mistake` replaces the expressions of one step by what a typical slip computes instead
(a dropped ``g′(z)``, ``W`` for ``Wᵀ``, a flipped sign, a missing path of the chain rule...), with
one line saying so.  The checker recomputes a student's quantity through each variant (numbers:
from the student's own earlier answers; formulas: at random points) and quotes the label of a
variant that reproduces the answer.  Nothing is guessed: a label is shown only when its variant
gives the student's number or formula.

Variants are produced per step class by ``_<Class>`` functions, as the printers dispatch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from derive.core import primitives
from derive.core.steps import Derivation, Node, symbol


@dataclass(frozen=True)
class Mistake:
    step: str                     # the name of the step whose expressions it replaces
    exprs: tuple[sp.Expr, ...]
    label: str


def _text(e: sp.Expr) -> str:
    """Readable one-line text of an expression: element indices dropped, ``*`` as ``·``."""
    s = sp.sstr(e)
    s = re.sub(r"\[\d+(,\d+)?\]", "", s)
    return s.replace("**", "^").replace("*", "·").replace("learning_rate", "η")


def _nodes(derivation: Derivation) -> dict[str, Node]:
    return {s.name: s for s in derivation.steps if isinstance(s, Node)}


def _is_activation(op: str) -> bool:
    act = primitives.ACTIVATIONS.get(op)
    return act is not None and not act.vector and op != "identity"


# ----------------------------------------------------------------------------- scalar graphs

def _ChainRule(step, derivation):
    nodes = _nodes(derivation)
    consumers = [c for c, _ in step.terms]
    grads = [symbol("grad_" + c) * local for c, local in step.terms]
    out = []
    if len(step.terms) > 1:
        for i, c in enumerate(consumers):
            out.append(Mistake(step.name, (sp.Add(*(g for j, g in enumerate(grads) if j != i)),),
                               f"missing the path through {c}: ∂L/∂{step.of} sums over {', '.join(consumers)}"))
    for i, (c, local) in enumerate(step.terms):
        node = nodes.get(c)
        rest = [g for j, g in enumerate(grads) if j != i]
        if node is not None and _is_activation(node.op) and local.free_symbols:
            out.append(Mistake(step.name, (sp.Add(symbol("grad_" + c), *rest),),
                               f"missing {node.op}′ of {c}: the factor {_text(local)} is missing"))
            out.append(Mistake(step.name, (sp.Add(symbol("grad_" + c) * symbol(c), *rest),),
                               f"used {c} instead of {node.op}′ = {_text(local)}"))
        if local.free_symbols:
            out.append(Mistake(step.name, (sp.Add(-symbol("grad_" + c) * local, *rest),),
                               f"sign flipped in ∂{c}/∂{step.of}: {_text(local)} expected"))
    return out


def _Node(step, derivation):
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
    return [Mistake(step.name, tuple(plus), f"update sign flipped: {p}_new = {p} − η·∂L/∂{p}"),
            Mistake(step.name, tuple(no_eta), f"learning rate missing: {p}_new = {p} − η·∂L/∂{p}")]


# ----------------------------------------------------------------------------- layered networks

def _vec(name: str, n: int) -> list[sp.Symbol]:
    return [symbol(name, (i,)) for i in range(n)]


def _OutputGradient(step, derivation):
    return [Mistake(step.name, tuple(-e for e in step.exprs), f"sign flipped: ∇_y L = {_text(step.exprs[0])} expected")]


def _SoftmaxCrossEntropy(step, derivation):
    return [Mistake(step.name, tuple(-e for e in step.exprs), f"sign flipped: δ{step.layer} = {_text(step.exprs[0])} expected")]


def _LocalDerivative(step, derivation):
    act = primitives.ACTIVATIONS[step.activation]
    if act.vector or step.form != "output" or step.activation == "identity":
        return []
    l, n = step.layer, step.target.shape[0]
    h, z = _vec(f"h{l}", n), _vec(f"z{l}", n)
    out = [Mistake(step.name, tuple(h), f"used g(z{l}) = h{l} instead of g′(z{l}) = {_text(step.exprs[0])}")]
    from_z = tuple(e.xreplace(dict(zip(h, z))) for e in step.exprs)
    if from_z != step.exprs:
        out.append(Mistake(step.name, from_z, f"g′ computed from z{l} instead of h{l}: {_text(step.exprs[0])} expected"))
    return out


def _delta(step, derivation):
    if step.jacobian:
        return []
    upstream = step.inputs[0]
    n = step.target.shape[0]
    return [Mistake(step.name, tuple(_vec(upstream, n)),
                    f"missing g′(z{step.layer}) in δ{step.layer} = {upstream} ⊙ g′(z{step.layer})")]


_DeltaOutput = _DeltaHidden = _delta


def _BackError(step, derivation):
    W = derivation.quantity(f"W{step.layer + 1}")
    if W.shape[0] != W.shape[1]:
        return []
    n = W.shape[0]
    delta = _vec(f"delta{step.layer + 1}", n)
    exprs = tuple(sp.Add(*[W.symbol((j, i)) * delta[i] for i in range(n)]) for j in range(n))
    return [Mistake(step.name, exprs, f"used W{step.layer + 1} instead of W{step.layer + 1}ᵀ in "
                                      f"∂L/∂h{step.layer} = W{step.layer + 1}ᵀ δ{step.layer + 1}")]


def _WeightGradient(step, derivation):
    l = step.layer
    rows, cols = step.target.shape
    delta = _vec(f"delta{l}", rows)
    prev = "x" if l == 1 else f"h{l - 1}"
    h = _vec(prev, cols)
    out = []
    if l > 1:
        z = _vec(f"z{l - 1}", cols)
        out.append(Mistake(step.name, tuple(delta[i] * z[j] for i in range(rows) for j in range(cols)),
                           f"used z{l - 1} instead of h{l - 1} in ∂L/∂W{l} = δ{l} h{l - 1}ᵀ"))
    if rows == cols:
        out.append(Mistake(step.name, tuple(delta[j] * h[i] for i in range(rows) for j in range(cols)),
                           f"outer product reversed: ∂L/∂W{l} = δ{l} {prev}ᵀ"))
    return out


def _Affine(step, derivation):
    l = step.layer
    out = []
    if f"b{l}" in step.inputs:
        b = _vec(f"b{l}", step.target.shape[0])
        out.append(Mistake(step.name, tuple(e - bi for e, bi in zip(step.exprs, b)),
                           f"missing bias b{l} in z{l} = W{l} h{l - 1} + b{l}"))
    return out


def _Activate(step, derivation):
    if not _is_activation(step.activation):
        return []
    return [Mistake(step.name, tuple(_vec(f"z{step.layer}", step.target.shape[0])),
                    f"activation not applied: h{step.layer} = g(z{step.layer})")]


def _LossValue(step, derivation):
    if step.loss != "half_sse":
        return []
    return [Mistake(step.name, tuple(2 * e for e in step.exprs), "missing ½ in the loss ½‖y − t‖²")]


# ----------------------------------------------------------------------------- perceptrons

def _PerceptronUpdate(step, derivation):
    W, lr, d, o, X = step.inputs
    eta, dd, oo = symbol(lr), symbol(d), symbol(o)
    w, x = derivation.quantity(W).symbols(), derivation.quantity(X).symbols()
    return [Mistake(step.name, tuple(a + eta * (oo - dd) * b for a, b in zip(w, x)),
                    f"sign flipped: {step.name} = {W} + η ({d} − {o}) {X}"),
            Mistake(step.name, tuple(a + eta * dd * b for a, b in zip(w, x)),
                    f"used the desired output {d} instead of the error {d} − {o}"),
            Mistake(step.name, tuple(a + (dd - oo) * b for a, b in zip(w, x)),
                    f"learning rate missing: {step.name} = {W} + η ({d} − {o}) {X}")]


def _PerceptronOutput(step, derivation):
    net = step.inputs[0]
    return [Mistake(step.name, tuple(derivation.quantity(net).symbols()),
                    f"{step.activation} not applied: {step.name} = {step.activation}({net})")]


# ----------------------------------------------------------------------------- catalogue

def mistakes(derivation: Derivation) -> list[Mistake]:
    """Every mistaken variant of every step (variants equal to the step itself are dropped)."""
    out: list[Mistake] = []
    table = globals()
    for step in derivation.steps:
        make = table.get("_" + type(step).__name__)
        if make is None:
            continue
        for m in make(step, derivation):
            if m.exprs != tuple(step.exprs) and not any(o.step == m.step and o.exprs == m.exprs for o in out):
                out.append(m)
    return out
