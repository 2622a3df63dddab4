"""The symbolic computational graph: scalar nodes that carry their op, as micrograd's ``_op``.

Both spec kinds become the same thing here: a list of given leaves and a list of scalar nodes in
dependency order.  A node knows its local derivatives ∂node/∂arg, taken with ``sympy.diff``, or
written with the node's own output where the registry gives that form (σ' = σ(1 − σ)), which is
how the slides compute them.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.core import primitives
from derive.core.spec import number
from derive.core.steps import ChainRule, Given, Quantity, Seed, Step, symbol


@dataclass(frozen=True)
class ScalarNode:
    """``name = expr``; ``op`` is the outer operation ('sigmoid', 'affine', 'softmax', 'loss', 'add', ...)."""

    name: str
    expr: sp.Expr
    op: str
    params: tuple[tuple[str, sp.Expr], ...] = ()
    text: str = ""

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name, real=True)

    def args(self) -> list[sp.Symbol]:
        """The symbols this node reads, in a stable order."""
        return sorted(self.expr.free_symbols, key=lambda s: s.name)

    def local(self, arg: sp.Symbol) -> sp.Expr:
        """∂expr/∂arg, in the registry's output form when the node is ``g(arg)``."""
        act = primitives.ACTIVATIONS.get(self.op)
        if act is not None and not act.vector and act.from_output is not None and self.args() == [arg]:
            return act.from_output(self.symbol, **dict(self.params))
        return diff_real(self.expr, arg)


def diff_real(expr: sp.Expr, arg: sp.Symbol) -> sp.Expr:
    """``sp.diff`` with |u|' = sign(u)·u' for every |u| (every node value is real; sign(0) = 0 is
    the convention |x|'(0) = 0).  SymPy differentiates |u| of a u it cannot prove real, such as
    |log q|, into re/im parts divided by |u|, which is 0/0 at the kink u = 0."""
    outer: list[sp.Abs] = []

    def walk(e):
        if isinstance(e, sp.Abs):
            outer.append(e)
        else:
            for a in e.args:
                walk(a)
    walk(expr)
    if not outer:
        return sp.diff(expr, arg)
    stand = {a: sp.Dummy(real=True) for a in dict.fromkeys(outer)}
    e = expr.xreplace(stand)
    total = sp.diff(e, arg) + sp.Add(*[sp.diff(e, d) * sp.sign(a.args[0]) * diff_real(a.args[0], arg)
                                       for a, d in stand.items()])
    return total.xreplace({d: a for a, d in stand.items()})


@dataclass(frozen=True)
class Leaf:
    name: str
    value: sp.Expr | None  # None: a free symbol
    role: str              # input | target | param

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name, real=True)


def _outer_op(expr: sp.Expr) -> str:
    return {sp.Add: "add", sp.Mul: "mul", sp.Pow: "pow", sp.exp: "exp", sp.log: "log"}.get(expr.func, "expr")


def _node_functions():
    funcs = {name: f.build for name, f in primitives.FUNCTIONS.items()}
    for name, act in primitives.ACTIVATIONS.items():
        if act.vector:
            continue
        defaults = dict(act.params)

        def call(x, _act=act, _defaults=defaults, **kw):
            unknown = set(kw) - set(_defaults)
            if unknown:
                raise TypeError(f"unknown parameter {sorted(unknown)[0]!r}")
            params = {k: (kw[k] if k in kw else number(v, k)) for k, v in _defaults.items()}
            return _act.define(x, **params)
        funcs[name] = call
    return funcs


NODE_FUNCTIONS = _node_functions()


@dataclass(frozen=True)
class _VectorNode(ScalarNode):
    """Element i of a vector activation (softmax): its local derivatives use the Jacobian's output form."""

    def local(self, arg: sp.Symbol) -> sp.Expr:
        act = primitives.ACTIVATIONS[self.op]
        layer_name, i = _split(self.name)
        zname, j = _split(arg.name)
        args = self.args()
        ys = [symbol(layer_name, (k,)) for k in range(len(args))]
        return act.jacobian_from_output(ys)[i][j]


def _split(name: str) -> tuple[str, int]:
    base, idx = name[:-1].split("[")
    return base, int(idx)


def _given(leaf: Leaf) -> Given:
    value = leaf.symbol if leaf.value is None else leaf.value
    return Given(Quantity(leaf.name), (value,), (), role=leaf.role)


def reverse_mode(leaves: list[Leaf], nodes: list[ScalarNode], loss: str, prefix: str = "grad_") -> list[Step]:
    """Seed and chain-rule steps for ∂loss/∂v of every node and leaf, in reverse order.

    The gradient of ``v`` is the quantity ``prefix + v`` (``grad_w5``; ``dL_dz1[0]`` for the
    element-wise form of a network, kept apart from the matrix form's names).
    """
    consumers: dict[str, list[tuple[str, sp.Expr]]] = {}
    for node in nodes:
        for arg in node.args():
            consumers.setdefault(arg.name, []).append((node.name, node.local(arg)))
    steps: list[Step] = []
    order = [n.name for n in nodes]
    if loss not in order:
        raise ValueError(f"loss node {loss!r} is not in the graph")
    order = order[: order.index(loss) + 1]
    steps.append(Seed(Quantity(prefix + loss), (sp.Integer(1),), ()))
    for name in list(reversed(order[:-1])) + [leaf.name for leaf in leaves]:
        terms = tuple((c, local) for c, local in consumers.get(name, []) if c in order)
        expr = sp.Add(*[symbol(prefix + c) * local for c, local in terms])
        inputs = tuple(dict.fromkeys([prefix + c for c, _ in terms] +
                                     [s.name for _, local in terms for s in local.free_symbols]))
        steps.append(ChainRule(Quantity(prefix + name), (expr,), inputs, of=name, terms=terms))
    return steps
