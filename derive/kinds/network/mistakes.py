"""The `[network]` kind's known slips, per step class of its matrix-form derivation (the shared
ones, for steps every kind uses, are in derive/core/mistakes.py)."""
from __future__ import annotations

import sympy as sp

from derive.core import primitives
from derive.core.mistakes import Mistake, _derivative_slips, _text
from derive.core.steps import Derivation, vector_symbols


def _layers(derivation: Derivation) -> int:
    return max((getattr(s, "layer", 0) for s in derivation.steps), default=0)


def _sizes(derivation: Derivation, name: str) -> int | None:
    return derivation.quantity(name).shape[0] if name in derivation else None


def _OutputGradient(step, derivation):
    e0 = _text(step.exprs[0])
    out = [Mistake(step.name, tuple(-e for e in step.exprs),
                   f"sign flipped: ∇_y L = {e0} expected (ŷ − y and y − ŷ swapped)")]
    if step.loss == "half_sse":
        out.append(Mistake(step.name, tuple(2 * e for e in step.exprs),
                           f"missing ½ of the loss ½‖y − t‖²: ∇_y L = {e0}, the ½ cancels the square's 2"))
        out.append(Mistake(step.name, tuple(e / 2 for e in step.exprs),
                           f"extra ½ in ∇_y L: the ½ of the loss cancels the square's 2, {e0} expected"))
    return out


def _SoftmaxCrossEntropy(step, derivation):
    return [Mistake(step.name, tuple(-e for e in step.exprs),
                    f"sign flipped: delta{step.layer} = {_text(step.exprs[0])} expected (ŷ − y and y − ŷ swapped)")]


def _LocalDerivative(step, derivation):
    act = primitives.ACTIVATIONS[step.activation]
    if act.vector or step.activation == "identity":
        return []
    l, n = step.layer, step.target.shape[0]
    h, z = vector_symbols(f"h{l}", n), vector_symbols(f"z{l}", n)
    out = []
    if step.form == "output":
        out.append(Mistake(step.name, tuple(h), f"used g(z{l}) = h{l} instead of g′(z{l}) = {_text(step.exprs[0])}"))
        from_z = tuple(e.xreplace(dict(zip(h, z))) for e in step.exprs)
        if from_z != step.exprs:
            out.append(Mistake(step.name, from_z, f"g′ computed from z{l} instead of h{l}: {_text(step.exprs[0])} expected"))
    slips = [_derivative_slips(step.activation, hi, zi, f"g′(z{l})", e) for hi, zi, e in zip(h, z, step.exprs)]
    for k in range(len(slips[0]) if slips else 0):
        out.append(Mistake(step.name, tuple(s[k][0] for s in slips), slips[0][k][1]))
    return out


def _delta(step, derivation):
    if step.jacobian:
        return []
    upstream = step.inputs[0]
    l, n = step.layer, step.target.shape[0]
    out = [Mistake(step.name, tuple(vector_symbols(upstream, n)),
                   f"missing g′(z{l}) in delta{l} = {upstream} ⊙ g′(z{l})")]
    for k in (l + 1, l - 1):     # the local derivative of a neighbouring layer
        if _sizes(derivation, f"gprime{k}") == n and derivation.quantity(f"gprime{k}").shape == (n,):
            out.append(Mistake(step.name, tuple(u * gk for u, gk in zip(vector_symbols(upstream, n), vector_symbols(f"gprime{k}", n))),
                               f"used gprime{k} where gprime{l} is needed in delta{l} = {upstream} ⊙ gprime{l}"))
    return out


_DeltaOutput = _DeltaHidden = _delta


def _BackError(step, derivation):
    l = step.layer
    W = derivation.quantity(f"W{l + 1}")
    rows, n = W.shape             # ∂L/∂h^l = W^{l+1 T} δ^{l+1}: n = size of h^l
    delta = vector_symbols(f"delta{l + 1}", rows)
    what = f"in grad_h{l} = W{l + 1}ᵀ delta{l + 1}"
    out = []
    if rows == n:
        exprs = tuple(sp.Add(*[W.symbol((j, i)) * delta[i] for i in range(n)]) for j in range(n))
        out.append(Mistake(step.name, exprs, f"used W{l + 1} where W{l + 1}ᵀ is needed {what}"))
    for k in (l, l + 2):          # the weights of a neighbouring layer
        if f"W{k}" in derivation and derivation.quantity(f"W{k}").shape == W.shape:
            Wk = derivation.quantity(f"W{k}")
            exprs = tuple(sp.Add(*[Wk.symbol((i, j)) * delta[i] for i in range(rows)]) for j in range(n))
            out.append(Mistake(step.name, exprs, f"used W{k} where W{l + 1} is needed {what}"))
    if f"delta{l + 2}" in derivation and _sizes(derivation, f"delta{l + 2}") == rows:
        d2 = vector_symbols(f"delta{l + 2}", rows)
        exprs = tuple(sp.Add(*[W.symbol((i, j)) * d2[i] for i in range(rows)]) for j in range(n))
        out.append(Mistake(step.name, exprs, f"used delta{l + 2} where delta{l + 1} is needed {what}"))
    return out


def _WeightGradient(step, derivation):
    l = step.layer
    rows, cols = step.target.shape
    delta = vector_symbols(f"delta{l}", rows)
    prev = "x" if l == 1 else f"h{l - 1}"
    h = vector_symbols(prev, cols)
    what = f"in grad_W{l} = delta{l} {prev}ᵀ"
    out = []
    if l > 1:
        z = vector_symbols(f"z{l - 1}", cols)
        out.append(Mistake(step.name, tuple(delta[i] * z[j] for i in range(rows) for j in range(cols)),
                           f"used z{l - 1} where {prev} is needed {what}"))
    if rows == cols:
        out.append(Mistake(step.name, tuple(delta[j] * h[i] for i in range(rows) for j in range(cols)),
                           f"outer product reversed {what}"))
    if _sizes(derivation, f"h{l}") == cols:         # h^l in place of h^{l−1}
        hl = vector_symbols(f"h{l}", cols)
        out.append(Mistake(step.name, tuple(delta[i] * hl[j] for i in range(rows) for j in range(cols)),
                           f"used h{l} where {prev} is needed {what}"))
    for k in (l + 1, l - 1):                        # δ of another layer
        if k >= 1 and _sizes(derivation, f"delta{k}") == rows:
            dk = vector_symbols(f"delta{k}", rows)
            out.append(Mistake(step.name, tuple(dk[i] * h[j] for i in range(rows) for j in range(cols)),
                               f"used delta{k} where delta{l} is needed {what}"))
    return out


def _BiasGradient(step, derivation):
    l, n = step.layer, step.target.shape[0]
    out = []
    for k in (l + 1, l - 1):
        if k >= 1 and _sizes(derivation, f"delta{k}") == n:
            out.append(Mistake(step.name, tuple(vector_symbols(f"delta{k}", n)),
                               f"used delta{k} where delta{l} is needed in grad_b{l} = delta{l}"))
    return out


def _Affine(step, derivation):
    l = step.layer
    out = []
    if f"b{l}" in step.inputs:
        b = vector_symbols(f"b{l}", step.target.shape[0])
        out.append(Mistake(step.name, tuple(e - bi for e, bi in zip(step.exprs, b)),
                           f"missing bias b{l} in z{l} = W{l} {'x' if l == 1 else f'h{l - 1}'} + b{l}"))
    return out


MAKERS = {"OutputGradient": _OutputGradient, "SoftmaxCrossEntropy": _SoftmaxCrossEntropy, "LocalDerivative": _LocalDerivative, "DeltaOutput": _DeltaOutput, "DeltaHidden": _DeltaHidden, "BackError": _BackError, "WeightGradient": _WeightGradient, "BiasGradient": _BiasGradient, "Affine": _Affine}
