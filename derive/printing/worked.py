"""Worked forms that a handout shows beyond the steps themselves, built as data from the steps.

* :class:`SoftmaxDerivation`: δ = ŷ − y for softmax with cross-entropy, line by line: the Jacobian
  product, the Jacobian and the loss gradient substituted, expanded, collected, and simplified
  under Σ t = 1.  Each form is proved equal to the previous one (the last under the assumption).
* :class:`PathChain`: ∂L/∂v as the sum over the paths from v to the loss of the products of local
  derivatives, factored as slide 001 writes it (``∂E/∂w1 = (∂E/∂o1 ∂o1/∂In_o1 ∂In_o1/∂h1 + …)
  ∂h1/∂In_h1 ∂In_h1/∂w1``), read off the chain-rule steps.
* :class:`Substitution`, :class:`Evaluation`: the values put into an element's expression, and
  its value, for the substituted and evaluated forms of every line.
* :class:`Group`: consecutive steps of one kind shown as one block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import sympy as sp

from derive.core.evaluate import Num
from derive.core.steps import ChainRule, Derivation, Seed, SoftmaxCrossEntropy, Step


@dataclass(frozen=True)
class Substitution:
    """An element's expression with the values of the symbols it reads."""

    target: sp.Symbol
    expr: sp.Expr
    values: tuple[tuple[sp.Symbol, Num], ...]
    rule: ClassVar[str] = "substitution"

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(s.name for s, _ in self.values)


@dataclass(frozen=True)
class Evaluation:
    """An element's value, exact or certified."""

    target: sp.Symbol
    value: Num
    rule: ClassVar[str] = "evaluation"


def substitute(target: sp.Symbol, expr: sp.Expr,
               values: Mapping[sp.Symbol, Num]) -> tuple[Substitution, Evaluation] | None:
    """The substitution and evaluation of one element, or None when a value is missing (symbolic)."""
    free = sorted(expr.free_symbols, key=lambda s: s.name)
    if target not in values or any(s not in values for s in free):
        return None
    return Substitution(target, expr, tuple((s, values[s]) for s in free)), Evaluation(target, values[target])


@dataclass(frozen=True)
class Group:
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class SoftmaxDerivation:
    step: SoftmaxCrossEntropy
    written: tuple[tuple[tuple[sp.Expr, sp.Expr], ...], ...]  # per element: (∂y_j/∂z_i, ∂L/∂y_j) for each j
    forms: tuple[tuple[sp.Expr, ...], ...]   # per form, one expression per element
    labels: tuple[str, ...]                   # what each form is


def softmax_derivation(step: SoftmaxCrossEntropy, derivation: Derivation) -> SoftmaxDerivation:
    """The forms from Jᵀ∇L to ŷ − y, each checked against the previous one."""
    defs = {}
    for name in step_inputs_of(step.raw):
        if name in derivation:
            defs.update(dict(derivation.step(name).items()))
    substituted = tuple(r.xreplace(defs) for r in step.raw)
    written = tuple(tuple(_pair(term, defs) for term in sp.Add.make_args(r)) for r in step.raw)
    expanded = tuple(step.expanded)
    ys = [sp.Symbol(f"{step.inputs[0]}[{i}]", real=True) for i in range(len(step.exprs))]
    collected = tuple(sp.collect(e, y, evaluate=True) for e, y in zip(expanded, ys))
    for a, b in zip(substituted, expanded):
        if sp.expand(a - b) != 0:
            raise ArithmeticError("softmax derivation: substitution and expansion differ")
    return SoftmaxDerivation(step, written, (substituted, expanded, collected, tuple(step.exprs)),
                             ("multiplied out", "expanded", "collected", "simplified"))


def _pair(term: sp.Expr, defs: dict) -> tuple[sp.Expr, sp.Expr]:
    """(Jacobian entry, gradient entry) of one term ∂y_j/∂z_i · ∂L/∂y_j, by their definitions."""
    jac, grad = sorted(term.free_symbols, key=lambda s: not s.name.startswith("gprime"))
    return defs[jac], defs[grad]


def step_inputs_of(exprs) -> list[str]:
    """Quantity names of the element symbols in ``exprs`` (``gprime2[0,1]`` → ``gprime2``)."""
    out = []
    for e in exprs:
        for s in e.free_symbols:
            base = s.name.split("[")[0]
            if base not in out:
                out.append(base)
    return out


# ----------------------------------------------------------------------------- paths

@dataclass(frozen=True)
class Partial:
    """∂of/∂wrt with its expression."""

    of: str
    wrt: str
    local: sp.Expr


@dataclass(frozen=True)
class Product:
    factors: tuple


@dataclass(frozen=True)
class PathSum:
    terms: tuple


@dataclass(frozen=True)
class PathChain:
    target: sp.Symbol     # the gradient symbol, ∂L/∂v
    tree: object          # Partial | Product | PathSum


def _chain(name: str, rules: dict[str, ChainRule], loss: str):
    """The factored path tree of ∂loss/∂name, or None when no path reaches the loss."""
    terms = []
    for consumer, local in rules[name].terms:
        factor = Partial(consumer, name, local)
        if consumer == loss:
            terms.append(factor)
            continue
        up = _chain(consumer, rules, loss)
        if up is not None:
            head = up.factors if isinstance(up, Product) else (up,)
            terms.append(Product(head + (factor,)))
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else PathSum(tuple(terms))


def partials(tree) -> int:
    """How many local derivatives the factored chain writes."""
    if isinstance(tree, Partial):
        return 1
    parts = tree.factors if isinstance(tree, Product) else tree.terms
    return sum(partials(p) for p in parts)


def path_chain(derivation: Derivation, of: str, limit: int = 12) -> PathChain | None:
    """∂L/∂``of`` along every path to the loss, or None when it writes more than ``limit`` partials."""
    rules = {s.of: s for s in derivation.steps if isinstance(s, ChainRule)}
    seed = next(s for s in derivation.steps if isinstance(s, Seed))
    prefix = seed.name[: len(seed.name) - len(_seed_of(derivation, seed))]
    if of not in rules:
        return None
    tree = _chain(of, rules, _seed_of(derivation, seed))
    if tree is None or partials(tree) > limit:
        return None
    return PathChain(sp.Symbol(prefix + of, real=True), tree)


def _seed_of(derivation: Derivation, seed: Seed) -> str:
    """The loss node's name (the seed is its gradient)."""
    for prefix in ("grad_", "dL_d"):
        if seed.name.startswith(prefix):
            return seed.name[len(prefix):]
    raise ValueError(f"unexpected seed name {seed.name!r}")
