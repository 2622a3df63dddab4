"""The symbolic computational graph: scalar nodes that carry their op, as micrograd's ``_op``.

Both spec kinds become the same thing here: a list of given leaves and a list of scalar nodes in
dependency order.  A node knows its local derivatives ∂node/∂arg, taken with ``sympy.diff``, or
written with the node's own output where the registry gives that form (σ' = σ(1 − σ)), which is
how the slides compute them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from . import primitives
from .errors import SpecError
from .safeexpr import parse_expression
from .spec import Graph, Network, number
from .steps import symbol


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


_CALL = re.compile(r"\s*([A-Za-z_]\w*)\s*\(\s*([A-Za-z_]\w*)\s*(?:,.*)?\)\s*")


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


def graph_nodes(graph: Graph) -> tuple[list[Leaf], list[ScalarNode]]:
    """Leaves and nodes of a scalar equation graph, parsed with the whitelisting parser."""
    leaves = [Leaf(n, v, "param" if n in graph.params else "input") for n, v in graph.values]
    names = {leaf.name: leaf.symbol for leaf in leaves}
    written = dict(graph.rebound)       # node → the name it rebinds; that name now means this node
    nodes = []
    for i, (name, text) in enumerate(graph.nodes):
        path = f"graph.nodes[{i}]"
        m = _CALL.fullmatch(text)
        op, captured, functions = None, {}, NODE_FUNCTIONS
        if m and m.group(1) in NODE_FUNCTIONS and m.group(1) in primitives.ACTIVATIONS and m.group(2) in names:
            op = m.group(1)

            def capture(x, _op=op, **kw):
                captured.clear()
                captured.update(kw)
                return NODE_FUNCTIONS[_op](x, **kw)
            functions = {**NODE_FUNCTIONS, op: capture}
        expr = parse_expression(text, names=names, functions=functions, path=path)
        if not isinstance(expr, sp.Expr):
            raise SpecError(path, "expected a scalar expression")
        params = ()
        if op is not None:
            act = primitives.ACTIVATIONS[op]
            params = tuple((k, captured[k] if k in captured else number(d, k)) for k, d in act.params)
        nodes.append(ScalarNode(name, expr, op or _outer_op(expr), params, text))
        names[written.get(name, name)] = sp.Symbol(name, real=True)
    return leaves, nodes


def network_nodes(net: Network) -> tuple[list[Leaf], list[ScalarNode]]:
    """The network written out as scalar nodes z^l_i, h^l_i and the loss (the element-wise form)."""
    leaves: list[Leaf] = []

    def leaf(name, index, value, role):
        sym = symbol(name, index)
        leaves.append(Leaf(sym.name, value, role))
        return sym

    h = [leaf("x", (i,), None if net.input is None else net.input[i], "input") for i in range(net.input_size)]
    nodes: list[ScalarNode] = []
    for l, layer in enumerate(net.layers, start=1):
        z = []
        for i in range(layer.size):
            total = sp.Add(*[leaf(f"W{l}", (i, j), None if layer.weights is None else layer.weights[i][j], "param") * h[j]
                             for j in range(len(h))])
            if layer.bias != ():
                total += leaf(f"b{l}", (i,), None if layer.bias is None else layer.bias[i], "param")
            name = symbol(f"z{l}", (i,)).name
            nodes.append(ScalarNode(name, total, "affine"))
            z.append(symbol(f"z{l}", (i,)))
        act = primitives.ACTIVATIONS[layer.activation.name]
        params = layer.activation.params
        if act.vector:
            outs = act.define(z)
        else:
            outs = [act.define(zi, **dict(params)) for zi in z]
        h = []
        for i, out in enumerate(outs):
            name = symbol(f"h{l}", (i,)).name
            nodes.append(_VectorNode(name, out, layer.activation.name, params) if act.vector
                         else ScalarNode(name, out, layer.activation.name, params))
            h.append(symbol(f"h{l}", (i,)))
    t = [leaf("t", (i,), None if net.target is None else net.target[i], "target") for i in range(len(h))]
    nodes.append(ScalarNode("loss", primitives.LOSSES[net.loss].define(h, t), "loss"))
    return leaves, nodes


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
