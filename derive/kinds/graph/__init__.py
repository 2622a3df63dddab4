"""The `[graph]` kind: scalar computational graphs, differentiated node by node."""
import sympy as sp

from derive.core.algebra import symbol_arg
from derive.core.plugin import Kind
from derive.core.steps import ChainRule, Derivation
from derive.kinds.graph.derivation import derive_graph
from derive.kinds.graph.spec import Graph, load_graph


def _claim_functions(derivation: Derivation) -> dict:
    """``d(node, arg)``: the local derivative ∂node/∂arg, 0 when the node does not read arg."""
    locals_ = {(consumer, step.of): local for step in derivation.steps if isinstance(step, ChainRule)
               for consumer, local in step.terms}

    def d(node, arg):
        key = (symbol_arg(node).name, symbol_arg(arg).name)
        if key[0] not in derivation or key[1] not in derivation:
            raise ValueError(f"d({key[0]}, {key[1]}) needs two quantities of the graph")
        return locals_.get(key, sp.Integer(0))
    return {"d": d}


def _locate(graph: dict, name: str):
    """Where ``variants`` finds a given number: a graph's numeric value."""
    values = graph.get("values", {})
    if isinstance(values, dict) and name in values and values[name] != "symbol":
        return values, name
    return None


KIND = Kind("graph", load_graph, derive_graph, Graph, printing="derive.kinds.graph.printing",
            claim_functions=_claim_functions, locate=_locate, kernel="scalar")
