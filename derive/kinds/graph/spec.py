"""The `[graph]` table: a scalar computational graph of named values and nodes."""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from derive.core import primitives
from derive.core.errors import SpecError
from derive.core.expressions import parse_expression
from derive.core.scalar import NODE_FUNCTIONS, Leaf, ScalarNode, _outer_op
from derive.core.spec import MAX_NODES, _check_name, _learning_rate, _name, _string, _table, _unknown_keys, number

# a node 'name = expression': the first '=' binds; the expression may hold keyword arguments
# (``leaky_relu(u, alpha=0.2)``), never a comparison
_BINDING = re.compile(r"([^=]*)=(?!=)(.*)", re.S)


@dataclass(frozen=True)
class Graph:
    values: tuple[tuple[str, sp.Expr | None], ...]  # None: a free symbol
    params: tuple[str, ...]
    nodes: tuple[tuple[str, str], ...]               # (name, expression text)
    loss: str
    learning_rate: sp.Expr | None
    # A name bound again (``c = c + c + 1``) is a new node named ``c_1``, ``c_2``, …: (node, the
    # name as written).  In an expression a name means its latest binding.
    rebound: tuple[tuple[str, str], ...] = ()


def load_graph(table: dict, path: str = "graph") -> Graph:
    _unknown_keys(table, {"values", "params", "nodes", "loss", "learning_rate"}, path)
    values_raw = _table(table.get("values", {}), f"{path}.values")
    values = []
    for key, v in values_raw.items():
        _check_name(key, f"{path}.values.{key}")
        if isinstance(v, str) and v == "symbol":
            values.append((key, None))
        else:
            values.append((key, number(v, f"{path}.values.{key}")))
    nodes_raw = table.get("nodes")
    if not isinstance(nodes_raw, list) or not nodes_raw:
        raise SpecError(f"{path}.nodes", "expected a list of 'name = expression' strings")
    if len(nodes_raw) > MAX_NODES:
        raise SpecError(f"{path}.nodes", f"at most {MAX_NODES} nodes")
    written = []
    for i, raw in enumerate(nodes_raw):
        npath = f"{path}.nodes[{i}]"
        text = _string(raw, npath, 2000)
        m = _BINDING.fullmatch(text)
        if not m or not m.group(2).strip():
            raise SpecError(npath, f"expected 'name = expression', got {text!r}")
        lhs, rhs = m.group(1).strip(), m.group(2).strip()
        written.append((_check_name(lhs, npath), rhs))
    nodes, rebound, latest = _bindings(written, [k for k, _ in values], path)
    params_raw = table.get("params", [])
    if not isinstance(params_raw, list):
        raise SpecError(f"{path}.params", "expected a list of value names")
    params = tuple(_name(p, f"{path}.params[{i}]") for i, p in enumerate(params_raw))
    for i, p in enumerate(params):
        if p not in values_raw:
            raise SpecError(f"{path}.params[{i}]", f"{p!r} is not one of the values")
    loss = _name(table.get("loss", nodes[-1][0]), f"{path}.loss")
    loss = latest.get(loss, loss) if "loss" in table else loss   # a rebound name: its latest binding
    if loss not in {n for n, _ in nodes}:
        raise SpecError(f"{path}.loss", f"{loss!r} is not a node")
    lr = _learning_rate(table, path)
    return Graph(tuple(values), params, tuple(nodes), loss, lr, rebound)


def _bindings(written: list[tuple[str, str]], values: list[str], path: str):
    """Nodes with distinct names: the k-th binding again of ``c`` is the node ``c_k``.

    Returns (nodes, rebound pairs (node, name as written), latest node of each name)."""
    used = set(values) | {lhs for lhs, _ in written}
    count = {v: 0 for v in values}
    nodes, rebound, latest = [], [], {}
    for i, (lhs, rhs) in enumerate(written):
        if lhs in count:
            count[lhs] += 1
            name = f"{lhs}_{count[lhs]}"
            if name in used:
                raise SpecError(f"{path}.nodes[{i}]", f"{lhs!r} is bound again, as the node {name!r}, but "
                                                      f"{name!r} is also a name of this graph: rename one of them")
            rebound.append((name, lhs))
        else:
            count[lhs], name = 0, lhs
        latest[lhs] = name
        nodes.append((name, rhs))
    return nodes, tuple(rebound), latest


_CALL = re.compile(r"\s*([A-Za-z_]\w*)\s*\(\s*([A-Za-z_]\w*)\s*(?:,.*)?\)\s*")


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
            if expr != NODE_FUNCTIONS[op](names[m.group(2)], **dict(params)):
                # more than the one call: leaky_relu(u, alpha=1.5)**(-2) matches the pattern too
                op, params = None, ()
        nodes.append(ScalarNode(name, expr, op or _outer_op(expr), params, text))
        names[written.get(name, name)] = sp.Symbol(name, real=True)
    return leaves, nodes
