"""The `[graph]` kind's derivation: forward nodes, the chain rule node by node, one update step."""
from __future__ import annotations

from derive.core.scalar import _given, reverse_mode
from derive.core.steps import LR, Derivation, Given, Node, Quantity, Recompute, Step, Update, symbol
from derive.kinds.graph.spec import Graph, graph_nodes


def derive_graph(graph: Graph) -> Derivation:
    """Forward nodes, the chain rule for every gradient, one update and the recomputed forward pass."""
    leaves, nodes = graph_nodes(graph)
    steps: list[Step] = [_given(leaf) for leaf in leaves]
    if graph.learning_rate is not None:
        steps.append(Given(Quantity(LR), (graph.learning_rate,), (), role="hyper"))
    rebinds = dict(graph.rebound)
    for node in nodes:
        steps.append(Node(Quantity(node.name), (node.expr,), tuple(s.name for s in node.args()),
                          text=node.text, op=node.op, args=tuple(s.name for s in node.args()),
                          params=node.params, rebinds=rebinds.get(node.name, "")))
    steps += reverse_mode(leaves, nodes, graph.loss)
    if graph.learning_rate is not None and graph.params:
        renamed = {}
        for p in graph.params:
            new = Update(Quantity(p + "_new"), (symbol(p) - symbol(LR) * symbol("grad_" + p),),
                         (p, LR, "grad_" + p), param=p)
            steps.append(new)
            renamed[symbol(p)] = symbol(p + "_new")
        for node in nodes:
            expr = node.expr.xreplace(renamed)
            renamed[node.symbol] = symbol(node.name + "_new")
            steps.append(Recompute(Quantity(node.name + "_new"), (expr,),
                                   tuple(s.name for s in sorted(expr.free_symbols, key=lambda s: s.name)),
                                   of=node.name))
    return Derivation(tuple(steps), "graph")
