"""Derivation steps as data.

A derivation is a tuple of steps.  Each step defines one named quantity (a scalar, a vector or a
matrix) by one SymPy expression per element, written in the *symbols* of earlier quantities, and
records the rule that justifies it and the quantities it reads.  Numbers, handouts, kernels and
answer checking all read these records; printing is elsewhere (``latex.py``).

Element symbols are named ``q``, ``q[i]`` or ``q[i,j]`` after their quantity ``q``; they are real.
Indices are 0-based in data and 1-based in print.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from typing import ClassVar

import sympy as sp

Index = tuple[int, ...]


@lru_cache(maxsize=None)
def symbol(name: str, index: Index = ()) -> sp.Symbol:
    """The real symbol of element ``index`` of quantity ``name``."""
    label = name if not index else f"{name}[{','.join(map(str, index))}]"
    return sp.Symbol(label, real=True)


def vector_symbols(name: str, n: int) -> list[sp.Symbol]:
    """The symbols of the ``n`` elements of vector ``name``: name[0], …, name[n-1]."""
    return [symbol(name, (i,)) for i in range(n)]


@dataclass(frozen=True)
class Quantity:
    """A named scalar (shape ``()``), vector ``(n,)`` or matrix ``(m, n)``."""

    name: str
    shape: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def indices(self) -> list[Index]:
        return list(product(*(range(d) for d in self.shape)))

    def symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(symbol(self.name, i) for i in self.indices())

    def symbol(self, index: Index = ()) -> sp.Symbol:
        return symbol(self.name, tuple(index))

    def matrix(self) -> sp.Matrix:
        """The symbols as a SymPy matrix (a column for a vector, 1x1 for a scalar)."""
        syms = self.symbols()
        if len(self.shape) == 2:
            return sp.Matrix(self.shape[0], self.shape[1], syms)
        return sp.Matrix(len(syms), 1, syms)


@dataclass(frozen=True)
class Step:
    """Defines ``target`` element-wise by ``exprs`` (row-major), reading ``inputs``."""

    target: Quantity
    exprs: tuple[sp.Expr, ...]
    inputs: tuple[str, ...]
    rule: ClassVar[str] = "step"

    def __post_init__(self):
        if len(self.exprs) != self.target.size:
            raise ValueError(f"{self.rule} {self.target.name}: {len(self.exprs)} expressions for "
                             f"{self.target.size} elements")

    @property
    def name(self) -> str:
        return self.target.name

    def items(self):
        """Pairs (symbol, expression) for every element."""
        return zip(self.target.symbols(), self.exprs)

    def expr(self, index: Index = ()) -> sp.Expr:
        return self.exprs[self.target.indices().index(tuple(index))]


# ----------------------------------------------------------------------------- given values

@dataclass(frozen=True)
class Given(Step):
    """A value from the problem statement: an input, a target, a parameter, a hyper-parameter."""

    role: str = "input"  # input | target | param | hyper | state (a recurrent network's h0, c0)
    rule: ClassVar[str] = "given"


# ----------------------------------------------------------------------------- forward

@dataclass(frozen=True)
class Affine(Step):
    """z^l = W^l h^{l-1} + b^l."""

    layer: int = 0
    rule: ClassVar[str] = "affine"


@dataclass(frozen=True)
class Activate(Step):
    """h^l = g^l(z^l), element-wise, or softmax of the whole layer."""

    layer: int = 0
    activation: str = "identity"
    params: tuple[tuple[str, sp.Expr], ...] = ()
    rule: ClassVar[str] = "activation"


@dataclass(frozen=True)
class Node(Step):
    """A node of a scalar equation graph, ``name = text``; ``op`` is its outer operation."""

    text: str = ""
    op: str = "expr"
    args: tuple[str, ...] = ()
    params: tuple[tuple[str, sp.Expr], ...] = ()  # the activation's parameters when ``op`` is one
    rebinds: str = ""       # the name this node binds again (``c`` for the node ``c_1`` of ``c = c + c + 1``)
    rule: ClassVar[str] = "node"


@dataclass(frozen=True)
class LossValue(Step):
    """L = loss(y, t)."""

    loss: str = "half_sse"
    rule: ClassVar[str] = "loss"


@dataclass(frozen=True)
class Probabilities(Step):
    """p = softmax(y): the probabilities a loss on logits (softmax cross-entropy) reads from them."""

    rule: ClassVar[str] = "softmax_probabilities"


# ----------------------------------------------------------------------------- backward

@dataclass(frozen=True)
class OutputGradient(Step):
    """∇_y L = ∂L/∂y, by diff of the loss; ``raw`` keeps diff's form when a simplified one is used."""

    loss: str = "half_sse"
    raw: tuple[sp.Expr, ...] | None = None
    assumption: str | None = None
    rule: ClassVar[str] = "output_gradient"


@dataclass(frozen=True)
class LocalDerivative(Step):
    """g'(z^l): a vector for element-wise g, the Jacobian ∂h/∂z (numerator layout) for softmax.

    ``form`` is 'output' when written in h = g(z) (σ(1 − σ)), else 'input'.
    """

    layer: int = 0
    activation: str = "identity"
    form: str = "input"
    rule: ClassVar[str] = "local_derivative"


@dataclass(frozen=True)
class DeltaOutput(Step):
    """δ^L = ∇_y L ⊙ g'(z^L), or (g'(z^L))ᵀ ∇_y L when g' is a Jacobian."""

    layer: int = 0
    jacobian: bool = False
    rule: ClassVar[str] = "delta_output"


@dataclass(frozen=True)
class SoftmaxCrossEntropy(Step):
    """δ^L = ŷ − y: the Jacobian product (``raw``) simplified under Σ y = 1 (``assumption``)."""

    layer: int = 0
    raw: tuple[sp.Expr, ...] = ()
    expanded: tuple[sp.Expr, ...] = ()
    assumption: str = ""
    rule: ClassVar[str] = "softmax_cross_entropy"


@dataclass(frozen=True)
class BackError(Step):
    """∂L/∂h^l = W^{l+1 T} δ^{l+1}."""

    layer: int = 0
    rule: ClassVar[str] = "back_error"


@dataclass(frozen=True)
class DeltaHidden(Step):
    """δ^l = (W^{l+1 T} δ^{l+1}) ⊙ g'(z^l), reading ∂L/∂h^l."""

    layer: int = 0
    jacobian: bool = False
    rule: ClassVar[str] = "delta_hidden"


@dataclass(frozen=True)
class WeightGradient(Step):
    """∂L/∂W^l = δ^l h^{l-1 T} (an outer product)."""

    layer: int = 0
    rule: ClassVar[str] = "weight_gradient"


@dataclass(frozen=True)
class BiasGradient(Step):
    """∂L/∂b^l = δ^l."""

    layer: int = 0
    rule: ClassVar[str] = "bias_gradient"


@dataclass(frozen=True)
class Seed(Step):
    """∂L/∂L = 1, where the backward pass starts."""

    rule: ClassVar[str] = "seed"


@dataclass(frozen=True)
class ChainRule(Step):
    """∂L/∂v = Σ_c ∂L/∂c · ∂c/∂v over the consumers c of v (one term per path edge).

    ``terms`` holds (consumer, local derivative ∂c/∂v); the local derivative is written in node
    symbols, in the registry's output form where one exists.
    """

    of: str = ""
    terms: tuple[tuple[str, sp.Expr], ...] = ()
    rule: ClassVar[str] = "chain_rule"


# ----------------------------------------------------------------------------- mini-batches

@dataclass(frozen=True)
class BatchMean(Step):
    """q = (1/m) Σ_k q^(k): a mini-batch's mean of one per-sample quantity (its loss, a gradient).

    ``inputs`` are the per-sample quantities ``q_s1 … q_sm`` (see ``backprop.sample_name``).
    """

    of: str = ""
    rule: ClassVar[str] = "batch_mean"


# ----------------------------------------------------------------------------- update

@dataclass(frozen=True)
class Update(Step):
    """θ_new = θ − η ∂L/∂θ (one step of gradient descent)."""

    param: str = ""
    rule: ClassVar[str] = "update"


@dataclass(frozen=True)
class Recompute(Step):
    """A forward quantity recomputed with the updated parameters (``of`` is its name)."""

    of: str = ""
    rule: ClassVar[str] = "recompute"


@dataclass(frozen=True)
class Derivation:
    """The whole derivation: steps in dependency order."""

    steps: tuple[Step, ...]
    kind: str  # 'network' | 'graph'
    aliases: tuple[tuple[str, str], ...] = ()  # e.g. ('y', 'h3'), ('h0', 'x')
    _index: dict = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "_index", {s.name: s for s in self.steps})

    def resolve(self, name: str) -> str:
        return dict(self.aliases).get(name, name)

    def __contains__(self, name: str) -> bool:
        return self.resolve(name) in self._index

    def step(self, name: str) -> Step:
        return self._index[self.resolve(name)]

    def quantity(self, name: str) -> Quantity:
        return self.step(name).target

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]


LR = "learning_rate"


ELEMENTWISE = "dL_d"   # prefix of the element-wise form's gradients: dL_dz1[0], dL_dW2[1,0]
