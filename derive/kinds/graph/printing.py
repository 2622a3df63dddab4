"""How a scalar graph is printed: every quantity by its own name (a name bound again primed), its
handout sections (problem and drawing, forward nodes, chain rule, paths, update), and the line under
the title."""
from __future__ import annotations

from derive.printing.latex import HandoutPrinter as Printer  # noqa: F401  (the printer this kind uses)
from derive.printing.names import scalar_names
from derive.printing.sections import Section, _steps, natural_order


def _graph_steps() -> tuple:
    """The step classes the graph sections show."""
    from derive.core import steps as st
    return (st.Given, st.Node, st.Seed, st.ChainRule, st.Update, st.Recompute)


def _graph(spec, main, printer) -> list[Section]:
    from derive.core import steps as st
    from derive.printing.latex import Math, caption
    from derive.printing.tikz import graph_figure
    from derive.printing.worked import Group, path_chain, partials
    g = spec.problem
    loss = dict(g.rebound).get(g.loss)      # a name bound again: shown as the handout shows it (c′)
    intro = caption(f"A computational graph of {len(g.nodes)} nodes with loss node " +
                    (g.loss if loss is None else ""), *([Math(printer.names(g.loss))] if loss else []),
                    (f"; parameters {', '.join(g.params)}" if g.params else "") +
                    ("; one step of gradient descent." if g.learning_rate is not None else "."))
    problem = [intro, printer.doprint(Group(tuple(_steps(main, st.Given)))), graph_figure(printer, main)]
    forward = [printer.doprint(Group(tuple(_steps(main, st.Node))))]
    backward = [printer.doprint(Group(natural_order(_steps(main, st.Seed, st.ChainRule))))]
    chains = [path_chain(main, p) for p in g.params]
    chains = [c for c in chains if c is not None and partials(c.tree) >= 3]
    if chains:
        backward.append(printer.doprint(Group(tuple(chains))))
    update = [printer.doprint(Group(tuple(_steps(main, st.Update))))] if _steps(main, st.Update) else []
    again = [printer.doprint(Group(tuple(_steps(main, st.Recompute))))] if _steps(main, st.Recompute) else []
    return [Section("The problem", tuple(problem)), Section("Forward pass", tuple(forward)),
            Section("Backward pass", tuple(backward)), Section("Gradient-descent update", tuple(update)),
            Section("Forward pass with the updated parameters", tuple(again))]


def names(derivations, prof, overrides=()):
    return scalar_names(derivations, prof, overrides)


def sections(spec, derivations, printer) -> list[Section]:
    return _graph(spec, derivations[0], printer)


placed = _graph_steps


def meta(spec, prof) -> str:
    extra = "; the gradient of a parameter w_k is written δ_k" if prof.param_gradient else ""
    return f"Notation: the graph's own names{extra}."
