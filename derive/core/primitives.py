"""THE registry of primitives: activations, the softmax output map, losses, elementary functions.

One entry per primitive.  Each gives its SymPy definition; derivatives come from ``sympy.diff``
of that definition.  An activation may also give its derivative written with its *output*
``y = g(x)`` (``σ' = y(1 − y)``), the form textbooks and slides use to compute ``g'(z)`` from
``h``; the tests prove every such form equal to ``diff``.  Nothing else in the package names
a primitive: the graph, the printers and the code generator look entries up here.

Conventions at kinks (documented in docs/guide.md): ReLU'(0) = 0, leaky ReLU'(0) = α,
ELU'(0) = α, |x|'(0) = 0, max(0, u)'(0) = 0 (PyTorch's and JAX's choices); ``sign(0) = +1`` and
``step(0) = 1`` (the perceptron convention); sign and step have derivative 0 everywhere.

An activation may also give a *stable* form: the same function written for floating point, so
that no evaluation overflows into ``inf/inf`` or ``0·inf`` and no tail is lost to cancellation
(σ(x) by the branch where e^{∓x} ≤ 1, softplus by ``log1p``, softmax shifted by its maximum).
The kernel generator prints these forms; the tests prove each equal to the definition.
``log1pexp`` and ``logsumexp`` are the stable elementary forms those use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

Expr = sp.Expr


def positive_part(u: Expr) -> Expr:
    """max(0, u) with derivative 0 at the kink (SymPy's Max would give Heaviside(0) = 1/2)."""
    return sp.Piecewise((u, u > 0), (0, True))


@dataclass(frozen=True)
class Activation:
    """An activation g: a scalar map, or (``vector=True``) a map of the whole layer such as softmax."""

    name: str
    latex: str
    define: Callable[..., Expr]            # (x, **params) -> g(x); vector: (xs) -> [g_i]
    params: tuple[tuple[str, str], ...] = ()  # (name, default written as a decimal)
    from_output: Callable[..., Expr] | None = None  # (y, **params) -> g'(x) with y = g(x)
    jacobian_from_output: Callable[[Sequence[Expr]], list[list[Expr]]] | None = None
    vector: bool = False
    summary: str = ""
    stable: Callable[..., Expr] | None = None  # like ``define``, written for floating point (None: define is)
    words: str = ""                        # its name in a handout's prose ("sigmoid", "leaky ReLU")


@dataclass(frozen=True)
class Loss:
    """A loss L(y, t) of one sample; ``y`` the network output, ``t`` the target."""

    name: str
    latex: str
    define: Callable[[Sequence[Expr], Sequence[Expr]], Expr]
    # The gradient ∂L/∂y simplified under the assumption Σ t = 1, when the loss has one; the
    # derivation uses it only after proving it equal to diff(define) under that assumption.
    grad_sum_one: Callable[[Sequence[Expr], Sequence[Expr]], list[Expr]] | None = None
    on_logits: bool = False
    summary: str = ""
    words: str = ""                        # its name in a handout's prose ("half the squared error")


def _sigmoid(x: Expr) -> Expr:
    return 1 / (1 + sp.exp(-x))


def _softmax(xs: Sequence[Expr]) -> list[Expr]:
    total = sp.Add(*[sp.exp(x) for x in xs])
    return [sp.exp(x) / total for x in xs]


# ----------------------------------------------------------------------------- stable forms

class maxof(sp.Function):
    """max(u_1, ..., u_n) left unevaluated: SymPy's ``Max`` compares its arguments pairwise each time
    an expression holding it is rebuilt, which makes a 10-class log-sum-exp take minutes to handle."""

    @classmethod
    def eval(cls, *args):      # safe: SymPy's Function.eval hook (automatic evaluation), not the builtin eval
        if args and all(a.is_number for a in args):
            return sp.Max(*args)
        return None

    def _eval_is_real(self):
        return True if all(a.is_real for a in self.args) else None

    def _eval_evalf(self, prec):
        return sp.Max(*[a.evalf(sp.prec_to_dps(prec)) for a in self.args])


def log1pexp(u: Expr) -> Expr:
    """log(1 + e^u) = u + log1p(e^−u) for u > 0, log1p(e^u) otherwise: no overflow, no lost tail."""
    return sp.Piecewise((u + log1p(sp.exp(-u)), u > 0), (log1p(sp.exp(u)), True))


def logsumexp(us: Sequence[Expr]) -> Expr:
    """log Σ e^{u_i} = m + log Σ e^{u_i − m} with m = max u_i: every e^{u_i − m} ≤ 1 and the sum ≥ 1."""
    m = maxof(*us)
    return m + sp.log(sp.Add(*[sp.exp(u - m) for u in us]))


def _stable_sigmoid(x: Expr) -> Expr:
    # the branch whose exponential is at most 1, so neither 1/(1 + inf) nor inf/inf occurs
    return sp.Piecewise((1 / (1 + sp.exp(-x)), x >= 0), (sp.exp(x) / (1 + sp.exp(x)), True))


def _stable_softmax(xs: Sequence[Expr]) -> list[Expr]:
    lse = logsumexp(xs)
    return [sp.exp(x - lse) for x in xs]


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in [
    Activation("identity", r"\operatorname{id}", lambda x: x, from_output=lambda y: sp.Integer(1),
               summary="g(x) = x", words="identity"),
    Activation("sigmoid", r"\sigma", _sigmoid, from_output=lambda y: y * (1 - y),
               summary="σ(x) = 1/(1 + e^−x); σ' = σ(1 − σ)", stable=_stable_sigmoid, words="sigmoid"),
    Activation("tanh", r"\tanh", sp.tanh, from_output=lambda y: 1 - y**2,
               summary="tanh x; tanh' = 1 − tanh²", words="tanh"),
    Activation("relu", r"\operatorname{ReLU}", positive_part,
               from_output=lambda y: sp.Piecewise((1, y > 0), (0, True)),
               summary="max(0, x); derivative 1 for x > 0, 0 for x ≤ 0", words="ReLU"),
    Activation("leaky_relu", r"\operatorname{LReLU}",
               lambda x, alpha: sp.Piecewise((x, x > 0), (alpha * x, True)),
               params=(("alpha", "0.01"),),
               from_output=lambda y, alpha: sp.Piecewise((1, y > 0), (alpha, True)),
               summary="x for x > 0, αx otherwise (α > 0)", words="leaky ReLU"),
    Activation("elu", r"\operatorname{ELU}",
               lambda x, alpha: sp.Piecewise((x, x > 0), (alpha * (sp.exp(x) - 1), True)),
               params=(("alpha", "1"),),
               from_output=lambda y, alpha: sp.Piecewise((1, y > 0), (y + alpha, True)),
               summary="x for x > 0, α(eˣ − 1) otherwise (α > 0); ELU' = ELU + α for x ≤ 0",
               stable=lambda x, alpha: sp.Piecewise((x, x > 0), (alpha * expm1(x), True)), words="ELU"),
    Activation("softplus", r"\operatorname{softplus}", lambda x: sp.log(1 + sp.exp(x)),
               summary="log(1 + eˣ); derivative σ(x)", stable=log1pexp, words="softplus"),
    Activation("swish", r"\operatorname{swish}", lambda x, beta: x * _sigmoid(beta * x),
               params=(("beta", "1"),), summary="x σ(βx)",
               stable=lambda x, beta: x * _stable_sigmoid(beta * x), words="swish"),
    Activation("bipolar_sigmoid", r"\sigma_{\pm}", lambda x: (1 - sp.exp(-x)) / (1 + sp.exp(-x)),
               from_output=lambda y: (1 - y**2) / 2,
               summary="(1 − e^−x)/(1 + e^−x); derivative (1 − y²)/2", stable=lambda x: sp.tanh(x / 2), words="bipolar sigmoid"),
    Activation("sign", r"\operatorname{sgn}", lambda x: sp.Piecewise((1, x >= 0), (-1, True)),
               from_output=lambda y: sp.Integer(0),
               summary="+1 for x ≥ 0, −1 otherwise (perceptron); derivative 0", words="sign function"),
    Activation("step", r"\operatorname{step}", lambda x: sp.Piecewise((1, x >= 0), (0, True)),
               from_output=lambda y: sp.Integer(0),
               summary="1 for x ≥ 0, 0 otherwise; derivative 0", words="unit step"),
    Activation("softmax", r"\operatorname{softmax}", _softmax, vector=True,
               jacobian_from_output=lambda ys: [[ys[i] * ((1 if i == j else 0) - ys[j])
                                                 for j in range(len(ys))] for i in range(len(ys))],
               summary="e^{x_i}/Σ_j e^{x_j}; ∂y_i/∂x_j = y_i(δ_ij − y_j)", stable=_stable_softmax, words="softmax"),
]}


def _mean(terms: list[Expr]) -> Expr:
    return sp.Add(*terms) / len(terms)


def _hinge(y: Sequence[Expr], t: Sequence[Expr]) -> Expr:
    # Σ_c t_c Σ_{j≠c} max(0, y_j − y_c + 1): the multiclass hinge for a one-hot target t.
    n = len(y)
    return sp.Add(*[t[c] * positive_part(y[j] - y[c] + 1) for c in range(n) for j in range(n) if j != c])


LOSSES: dict[str, Loss] = {l.name: l for l in [
    Loss("half_sse", r"\tfrac12\lVert y - t\rVert^2",
         lambda y, t: sp.Add(*[(a - b) ** 2 for a, b in zip(y, t)]) / 2, summary="½ Σ (y_i − t_i)²", words="half the sum of squared errors"),
    Loss("mse", r"\operatorname{MSE}", lambda y, t: _mean([(a - b) ** 2 for a, b in zip(y, t)]),
         summary="(1/n) Σ (y_i − t_i)²", words="mean squared error"),
    Loss("mae", r"\operatorname{MAE}", lambda y, t: _mean([sp.Abs(a - b) for a, b in zip(y, t)]),
         summary="(1/n) Σ |y_i − t_i|", words="mean absolute error"),
    Loss("bce", r"\operatorname{BCE}",
         lambda y, t: _mean([-(b * sp.log(a) + (1 - b) * sp.log(1 - a)) for a, b in zip(y, t)]),
         summary="−(1/n) Σ [t_i log y_i + (1 − t_i) log(1 − y_i)], natural log", words="binary cross-entropy"),
    Loss("cross_entropy", r"\operatorname{CE}",
         lambda y, t: -sp.Add(*[b * sp.log(a) for a, b in zip(y, t)]),
         summary="−Σ t_i log y_i on probabilities y, natural log", words="cross-entropy"),
    Loss("softmax_cross_entropy", r"\operatorname{CE}_{\mathrm{softmax}}",
         lambda y, t: -sp.Add(*[b * (a - sp.log(sp.Add(*[sp.exp(v) for v in y]))) for a, b in zip(y, t)]),
         grad_sum_one=lambda y, t: [s - b for s, b in zip(_softmax(y), t)], on_logits=True,
         summary="−Σ t_i log softmax(y)_i on logits y; ∂L/∂y = softmax(y) − t when Σ t = 1", words="softmax cross-entropy"),
    Loss("hinge", r"\operatorname{hinge}", _hinge,
         summary="Σ_{j≠c} max(0, y_j − y_c + 1) for the true class c (one-hot t)", words="multiclass hinge loss"),
]}


@dataclass(frozen=True)
class Function:
    """An elementary function allowed in node expressions and answers."""

    name: str
    latex: str
    arity: int
    build: Callable[..., Expr]


FUNCTIONS: dict[str, Function] = {f.name: f for f in [
    Function("exp", r"\exp", 1, sp.exp),
    Function("log", r"\log", 1, sp.log),        # natural logarithm
    Function("sqrt", r"\sqrt", 1, sp.sqrt),
    Function("abs", r"\lvert\cdot\rvert", 1, sp.Abs),
    # sech x = 1/cosh x, for tanh'(x) = sech²(x) as students write it; built from exp
    Function("sech", r"\operatorname{sech}", 1, lambda x: 2 / (sp.exp(x) + sp.exp(-x))),
    Function("max", r"\max", 2, lambda a, b: b + positive_part(a - b)),
    Function("min", r"\min", 2, lambda a, b: a - positive_part(a - b)),
]}


def activation(name: str) -> Activation:
    return ACTIVATIONS[name]


def loss(name: str) -> Loss:
    return LOSSES[name]


def apply_activation(name: str, x: Expr, params: dict[str, Expr] | None = None) -> Expr:
    """g(x) for a scalar activation with its parameters."""
    return ACTIVATIONS[name].define(x, **(params or {}))


def stable_activation(name: str, x, params: dict[str, Expr] | None = None):
    """g(x) in its stable form (a list for a vector activation); the definition when that is stable."""
    act = ACTIVATIONS[name]
    return (act.stable or act.define)(x, **(params or {}))


def local_derivative(name: str, x: Expr, y: Expr, params: dict[str, Expr] | None = None) -> Expr:
    """g'(x) for a scalar activation: the output form in y when the registry has one, else diff."""
    act = ACTIVATIONS[name]
    params = params or {}
    if act.from_output is not None:
        return act.from_output(y, **params)
    return derivative(name, params).subs(X, x)


X = sp.Symbol("x", real=True)


def derivative(name: str, params: dict[str, Expr] | None = None) -> Expr:
    """dg/dx of a scalar activation, by sympy.diff of its definition, as an expression in X."""
    return sp.diff(ACTIVATIONS[name].define(X, **(params or {})), X)
