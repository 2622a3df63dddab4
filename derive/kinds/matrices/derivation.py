"""Symbolic matrix graphs: the row-vector, batch form of a network (decks 003 and 004).

A ``[matrices]`` table declares symbolic matrices by shape and defines nodes in the claim
language (``z1 = x @ W1 + b1``, ``yhat = softmax_rows(z2)``, ``L = -sum(y * log(yhat)) / 2``;
a ``1×n`` row is added to every row of an ``m×n`` matrix, as a bias in ``X W + b``).  Each node
is a matrix of expressions; with a scalar ``loss`` node the gradient of every node and value is
derived by the chain rule on the scalar elements (the element-wise reverse mode of
:mod:`derive.kinds.network.derivation`), one step ``grad_<name>`` per quantity, of the quantity's own shape
(``∂L/∂W`` has the shape of ``W``).  Claims then compare the slides' matrix formulas with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sympy as sp

from derive.core import primitives
from derive.core.errors import SpecError
from derive.core.spec import _check_name, _int, _string, _table, _unknown_keys
from derive.core.steps import Derivation, Given, Quantity, Step

MAX_DIM = 16
MAX_ELEMENTS = 256
MAX_NODES = 32
GRAD = "grad_"


@dataclass(frozen=True)
class Matrices:
    values: tuple[tuple[str, tuple[int, ...]], ...]   # symbolic values by shape: () scalar, (n,) column, (m, n)
    nodes: tuple[tuple[str, str], ...]                # (name, expression text)
    loss: str | None


def load_matrices(table: dict, path: str = "matrices") -> Matrices:
    _unknown_keys(table, {"values", "nodes", "loss"}, path)
    values = []
    for name, shape in _table(table.get("values", {}), f"{path}.values").items():
        vp = f"{path}.values.{name}"
        _check_name(name, vp)
        if shape == "symbol":
            values.append((name, ()))
            continue
        if not isinstance(shape, list) or not 1 <= len(shape) <= 2:
            raise SpecError(vp, "expected 'symbol' (a scalar) or a shape such as [3] or [2, 3]")
        dims = tuple(_int(d, f"{vp}[{i}]", 1, MAX_DIM) for i, d in enumerate(shape))
        if dims[0] * (dims[1] if len(dims) > 1 else 1) > MAX_ELEMENTS:
            raise SpecError(vp, f"at most {MAX_ELEMENTS} elements")
        values.append((name, dims))
    raw = table.get("nodes")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_NODES:
        raise SpecError(f"{path}.nodes", f"expected 1 to {MAX_NODES} strings 'name = expression'")
    known, nodes = {n for n, _ in values}, []
    for i, text in enumerate(raw):
        np_ = f"{path}.nodes[{i}]"
        text = _string(text, np_, 2000)
        if text.count("=") != 1:
            raise SpecError(np_, f"expected 'name = expression', got {text!r}")
        lhs, rhs = (part.strip() for part in text.split("="))
        _check_name(lhs, np_)
        if lhs in known:
            raise SpecError(np_, f"{lhs!r} is defined twice")
        known.add(lhs)
        nodes.append((lhs, rhs))
    loss = table.get("loss")
    if loss is not None and loss not in {n for n, _ in nodes}:
        raise SpecError(f"{path}.loss", f"{loss!r} is not a node")
    return Matrices(tuple(values), tuple(nodes), loss)


@dataclass(frozen=True)
class MatrixNode(Step):
    """A node ``name = text``, one expression per element; ``op`` is 'affine' when every element is
    a polynomial of degree at most 2 without functions (``X W + b``), so claims may keep it an atom."""

    text: str = ""
    op: str = "expr"
    rule: ClassVar[str] = "matrix_node"
    forward: ClassVar[bool] = True    # answer checking keeps nodes as atoms, unfolds gradients


@dataclass(frozen=True)
class MatrixGradient(Step):
    """∂L/∂v for every element of a quantity v: Σ over the elements c that read it of ∂L/∂c · ∂c/∂v."""

    of: str = ""
    rule: ClassVar[str] = "matrix_gradient"


def _shape(value) -> tuple[int, ...]:
    if isinstance(value, sp.MatrixBase):
        return value.shape
    return ()


def _op(exprs) -> str:
    affine = all(e.is_polynomial() and sp.Poly(e, *e.free_symbols).total_degree() <= 2 if e.free_symbols
                 else True for e in exprs)
    return "affine" if affine else "expr"


def derive_matrices(m: Matrices) -> Derivation:
    from derive.core.algebra import MatrixAlgebra, claim_functions
    from derive.core.expressions import parse_expression

    steps: list[Step] = []
    names: dict = {}
    for name, shape in m.values:
        q = Quantity(name, shape)
        steps.append(Given(q, q.symbols(), (), role="input"))
        names[name] = q.matrix() if shape else q.symbol()
    funcs = claim_functions()
    for i, (name, text) in enumerate(m.nodes):
        path = f"matrices.nodes[{i}]"
        value = parse_expression(text, names=names, functions=funcs, path=path, algebra=MatrixAlgebra(True))
        exprs = tuple(value) if isinstance(value, sp.MatrixBase) else (value,)
        if any(not isinstance(e, sp.Expr) for e in exprs):
            raise SpecError(path, "expected an expression of numbers and matrices")
        q = Quantity(name, _shape(value))
        reads = sorted({s.name.split("[")[0] for e in exprs for s in e.free_symbols})
        steps.append(MatrixNode(q, exprs, tuple(reads), text=text, op=_op(exprs)))
        names[name] = q.matrix() if q.shape else q.symbol()
    if m.loss is not None:
        steps += _gradients(steps, m.loss)
    return Derivation(tuple(steps), "matrices")


def _gradients(steps: list[Step], loss: str) -> list[Step]:
    """The element-wise reverse mode, grouped into one step per quantity (of the quantity's shape)."""
    from derive.core.scalar import reverse_mode
    from derive.core.scalar import Leaf, ScalarNode

    loss_step = next(s for s in steps if s.name == loss)
    if loss_step.target.shape:
        raise SpecError("matrices.loss", f"{loss!r} is not a scalar (sum its elements)")
    leaves = [Leaf(sym.name, None, "input") for s in steps if isinstance(s, Given) for sym in s.target.symbols()]
    nodes = [ScalarNode(sym.name, e, _activation_op(e))
             for s in steps if isinstance(s, MatrixNode) for sym, e in s.items()]
    rules = {r.of: r for r in reverse_mode(leaves, nodes, loss) if hasattr(r, "of")}
    out: list[Step] = []
    order = [s for s in steps if isinstance(s, MatrixNode)]
    order = order[: [s.name for s in order].index(loss) + 1]
    for s in list(reversed(order)) + [s for s in steps if isinstance(s, Given)]:
        q = s.target
        if s.name == loss:
            out.append(MatrixGradient(Quantity(GRAD + loss), (sp.Integer(1),), (), of=loss))
            continue
        exprs = tuple(rules[sym.name].exprs[0] if sym.name in rules else sp.Integer(0) for sym in q.symbols())
        reads = sorted({x.name.split("[")[0] for e in exprs for x in e.free_symbols})
        out.append(MatrixGradient(Quantity(GRAD + s.name, q.shape), exprs, tuple(reads), of=s.name))
    return out


def _activation_op(expr: sp.Expr) -> str:
    """The registry activation an element applies to one symbol (so its local derivative uses the
    output form, 1 − tanh² as the slides write it), else 'expr'."""
    free = list(expr.free_symbols)
    if len(free) == 1:
        for name, act in primitives.ACTIVATIONS.items():
            if not act.vector and not act.params and act.from_output is not None and act.define(free[0]) == expr:
                return name
    return "expr"


def notation(derivation: Derivation) -> dict[str, str]:
    """``grad_v`` as ∂L/∂v, its elements as ∂L/∂v_ij (the other names are the spec's own)."""
    from derive.printing.notation import scalar_name
    loss = next((s.of for s in derivation.steps if isinstance(s, MatrixGradient) and not s.exprs[0].free_symbols
                 and s.target.shape == ()), "L")
    partial = lambda v: rf"\frac{{\partial {scalar_name(loss)}}}{{\partial {v}}}"
    out = {}
    for s in derivation.steps:
        if isinstance(s, MatrixGradient):
            v = scalar_name(s.of)
            out[s.name] = partial(v)
            for idx in s.target.indices() if s.target.shape else []:
                sub = "".join(str(i + 1) for i in idx)
                out[f"{s.name}[{','.join(map(str, idx))}]"] = partial(f"{{{v}}}_{{{sub}}}")
    return out
