"""Drawings for handouts, as TikZ: the layered network and the scalar computational graph.

Both are laid out here (positions are plain arithmetic) and drawn with basic TikZ only (no
graph-drawing library, which needs LuaTeX).  Labels come from the notation's LaTeX and the values
from the printer, so a drawing shows exactly the numbers the equations show.  Node names are the
quantities' own names (``h1-0`` is ``h1[0]``; ``n-w5`` is the graph node ``w5``), so a reader of
the source, or a test, can tell which number belongs to what.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.core.steps import ChainRule, Derivation, Given, Node, Seed

LAYER_GAP = 4.2   # cm between layers
NODE_GAP = 2.0    # cm between neurons of a layer
COLUMN_GAP = 2.3  # cm between the columns of a computational graph
ROW_GAP = 1.9     # cm between its rows (closer, down to MIN_ROW_GAP, for a tall graph)
MIN_ROW_GAP = 1.25  # a node (6 mm) with its value above and its gradient below still clear of the next
GRAPH_HEIGHT = 10.5  # cm a graph drawing may take, so that it stays on the page of the problem it shows
MAX_VALUE_LABELS = 12   # more edges than this: no weights on them (the matrices show them)
MAX_NAME_LABELS = 12    # a symbolic network's edges carry the weights' names up to this many
PAGE = (16.0, 21.0)     # cm a drawing may take on the page, width and height


@dataclass(frozen=True)
class Figure:
    tikz: str
    caption: str


def _scale(width: float, height: float, most_height: float = PAGE[1] - 2) -> str:
    """TikZ options shrinking a drawing of this extent (cm, without labels) to fit the page (and
    ``most_height``)."""
    s = min(1.0, (PAGE[0] - 2) / max(width, 1e-9), most_height / max(height, 1e-9))
    return "" if s >= 1 else f"scale={s:.3f}, transform shape, "


def _center(body: str) -> str:
    return f"\\begin{{center}}\n{body}\n\\end{{center}}"


def network_figure(printer, derivation: Derivation) -> Figure:
    """Neurons by layer, edges labelled with their weights, each neuron with its value."""
    sizes = [derivation.quantity("x").shape[0]]
    layer = 1
    while f"h{layer}" in derivation:
        sizes.append(derivation.quantity(f"h{layer}").shape[0])
        layer += 1
    names = ["x"] + [f"h{l}" for l in range(1, len(sizes))]
    top = (max(sizes) - 1) * NODE_GAP / 2
    scale = _scale((len(sizes) - 1) * LAYER_GAP, (max(sizes) - 1) * NODE_GAP)
    lines = [r"\begin{tikzpicture}[" + scale + r"neuron/.style={circle, draw, minimum size=9mm, inner sep=0pt}, "
             r"w/.style={font=\tiny, fill=white, inner sep=1pt}, v/.style={font=\scriptsize}, "
             r"bias/.style={rectangle, draw, rounded corners, minimum size=6mm, inner sep=1pt, font=\scriptsize}]"]
    for l, (name, n) in enumerate(zip(names, sizes)):
        for i in range(n):
            y = top - i * NODE_GAP - (max(sizes) - n) * NODE_GAP / 2
            sym = sp.Symbol(f"{name}[{i}]", real=True)
            lines.append(rf"\node[neuron] ({name}-{i}) at ({l * LAYER_GAP:.2f},{y:.2f}) {{${printer.e(sym)}$}};")
            if printer.has_values([sym]):
                lines.append(rf"\node[v, anchor=north] (v-{name}-{i}) at ({name}-{i}.south) "
                             rf"{{${printer.shown(sym).text}$}};")
    edges = sum(a * b for a, b in zip(sizes, sizes[1:]))
    numeric = printer.values is not None
    labelled = edges <= (MAX_VALUE_LABELS if numeric else MAX_NAME_LABELS)
    for l in range(1, len(sizes)):
        W = derivation.quantity(f"W{l}")
        for i in range(sizes[l]):
            for j in range(sizes[l - 1]):
                w = W.symbol((i, j))
                label = ""
                if labelled:
                    label = printer.shown(w).text if printer.has_values([w]) else printer.e(w)
                # on white, along the edge, in the source's half: one source's edges carry their labels at
                # staggered distances (by target), so labels of a fan-out do not pile up
                pos = 0.16 + 0.3 * i / max(1, sizes[l] - 1)
                node = rf" node[w, pos={pos:.2f}, sloped] {{${label}$}}" if label else ""
                lines.append(rf"\draw[->] ({names[l - 1]}-{j}) --{node} ({names[l]}-{i});")
        lines += _bias_unit(printer, derivation, l, sizes, names, top, labelled)
    lines.append(r"\end{tikzpicture}")
    biases = any(_has_bias(derivation, l) for l in range(1, len(sizes)))
    if labelled:
        what = "weights on the edges"
    else:
        what = "too many edges to label: the weight matrices are given above"
    if biases:
        what += "; each bias is a dashed edge from a unit +1"
    if numeric:
        what += "; values under the neurons"
    return Figure(_center("\n".join(lines)), f"The network ({what}).")


def _has_bias(derivation: Derivation, l: int) -> bool:
    return f"b{l}" in derivation and derivation.quantity(f"b{l}").shape not in ((), (0,))


def _bias_unit(printer, derivation: Derivation, l: int, sizes: list, names: list, top: float,
               labelled: bool) -> list[str]:
    """Layer l's biases as a unit +1 above the layer before it, with dashed edges into layer l."""
    if not _has_bias(derivation, l):
        return []
    x = (l - 1) * LAYER_GAP
    out = [rf"\node[bias] (one-{l}) at ({x:.2f},{top + NODE_GAP * 0.8:.2f}) {{$+1$}};"]
    b = derivation.quantity(f"b{l}")
    for i in range(sizes[l]):
        sym = b.symbol((i,))
        label = ""
        if labelled:
            label = printer.shown(sym).text if printer.has_values([sym]) else printer.e(sym)
        pos = 0.55 + 0.3 * i / max(1, sizes[l] - 1)
        node = rf" node[w, pos={pos:.2f}, sloped] {{${label}$}}" if label else ""
        out.append(rf"\draw[->, dashed] (one-{l}) --{node} ({names[l]}-{i});")
    return out


def _depths(derivation: Derivation) -> dict[str, int]:
    nodes = [s for s in derivation.steps if isinstance(s, Node)]
    depth = {s.name: 0 for s in derivation.steps if isinstance(s, Given) and s.name != "learning_rate"}
    for n in nodes:
        depth[n.name] = 1 + max((depth[a] for a in n.args), default=0)
    for name in list(depth):  # a given value sits just left of its first reader
        consumers = [depth[n.name] for n in nodes if name in n.args]
        if consumers and not any(s.name == name for s in nodes):
            depth[name] = min(consumers) - 1
    return depth


def _rows(depth: dict[str, int], nodes: list[Node]) -> dict[str, float]:
    """Vertical positions: each column ordered by the mean position of its neighbours, then spaced."""
    columns: dict[int, list[str]] = {}
    for name, d in depth.items():
        columns.setdefault(d, []).append(name)
    pos = {name: float(i) for col in columns.values() for i, name in enumerate(col)}
    args = {n.name: n.args for n in nodes}
    users = {name: [n.name for n in nodes if name in n.args] for name in depth}
    for _ in range(4):
        for d in sorted(columns):
            for name in columns[d]:
                near = [pos[a] for a in args.get(name, ())] or [pos[u] for u in users[name]]
                if near:
                    pos[name] = sum(near) / len(near)
            columns[d].sort(key=lambda n: pos[n])
            for i, name in enumerate(columns[d]):
                if i and pos[name] < pos[columns[d][i - 1]] + 1:
                    pos[name] = pos[columns[d][i - 1]] + 1
    return pos


def graph_figure(printer, derivation: Derivation) -> Figure:
    """The computational graph: values above the nodes, gradients (red) below them."""
    nodes = [s for s in derivation.steps if isinstance(s, Node)]
    depth = _depths(derivation)
    rows = _rows(depth, nodes)
    grads = {s.of: s for s in derivation.steps if isinstance(s, ChainRule)}
    grads.update({s.name[len("grad_"):]: s for s in derivation.steps if isinstance(s, Seed)})
    span = max(rows.values()) - min(rows.values())
    gap = max(MIN_ROW_GAP, min(ROW_GAP, GRAPH_HEIGHT / span)) if span else ROW_GAP
    scale = _scale(max(depth.values()) * COLUMN_GAP, span * gap, GRAPH_HEIGHT)
    lines = [r"\begin{tikzpicture}[" + scale + r"op/.style={rectangle, rounded corners, draw, minimum height=6mm, "
             r"inner sep=2pt}, val/.style={font=\scriptsize, fill=white, inner sep=1pt}, "
             r"grad/.style={font=\scriptsize, text=red!70!black, fill=white, inner sep=1pt}]"]
    labels = []     # drawn after the edges, on white, so that no edge runs through a number
    for name, d in sorted(depth.items(), key=lambda kv: (kv[1], rows[kv[0]])):
        sym = sp.Symbol(name, real=True)
        lines.append(rf"\node[op] (n-{name}) at ({d * COLUMN_GAP:.2f},{-rows[name] * gap:.2f}) "
                     rf"{{${printer.e(sym)}$}};")
        if printer.has_values([sym]):
            labels.append(rf"\node[val, anchor=south] (v-{name}) at (n-{name}.north) {{${printer.shown(sym).text}$}};")
        g = grads.get(name)
        if g is not None and printer.has_values([g.target.symbol()]):
            labels.append(rf"\node[grad, anchor=north] (g-{name}) at (n-{name}.south) "
                          rf"{{${printer.shown(g.target.symbol()).text}$}};")
    for n in nodes:
        for a in n.args:
            lines.append(rf"\draw[->] (n-{a}) -- (n-{n.name});")
    lines += labels
    lines.append(r"\end{tikzpicture}")
    numeric = any(r"\node[val" in line for line in lines)
    return Figure(_center("\n".join(lines)), "The computational graph: values above the nodes, gradients of the "
                                          "loss below them (red)." if numeric else
                  "The computational graph (a symbolic problem: no values to show).")


# ----------------------------------------------------------------------------- plots (pgfplots)

PLOT_RANGE = (-3, 3)     # the x range of an activation plot
PLOT_STEP = sp.Rational(1, 20)
PLOTS_PER_ROW = 3
JUMP = 0.25              # a change larger than this between neighbouring samples is drawn as a jump


def samples(expr: sp.Expr, x: sp.Symbol) -> list[tuple[float, float]]:
    """(x, expr) at every PLOT_STEP over PLOT_RANGE, evaluated exactly at rational points, then rounded."""
    lo, hi = PLOT_RANGE
    n = int((hi - lo) / PLOT_STEP)
    out = []
    for k in range(n + 1):
        v = lo + k * PLOT_STEP
        out.append((float(v), float(sp.N(expr.subs(x, v), 15))))
    return out


def _coordinates(points: list[tuple[float, float]]) -> str:
    """pgfplots coordinates, with a gap (nan) where the function jumps, so a step is not drawn as a slope."""
    parts = []
    for k, (x, y) in enumerate(points):
        if k and abs(y - points[k - 1][1]) > JUMP:
            parts.append(f"({x:.2f},nan)")
        parts.append(f"({x:.2f},{y:.5f})")
    return " ".join(parts)


def activation_plot(acts: list[tuple[str, tuple]]) -> Figure:
    """Each activation ``(name, params)`` and its derivative (sympy.diff of the same definition) on
    [−3, 3], one small plot each: the curves are sampled from the registry, not redrawn by hand."""
    from derive.core import primitives
    x = primitives.X
    rows = -(-len(acts) // PLOTS_PER_ROW)
    cols = min(len(acts), PLOTS_PER_ROW)
    lines = [r"\begin{tikzpicture}",
             r"\begin{groupplot}[group style={group size=" + f"{cols} by {rows}" +
             r", horizontal sep=1.3cm, vertical sep=1.6cm}, width=5.4cm, height=4.4cm, "
             r"xmin=-3, xmax=3, grid=major, grid style={gray!25}, tick label style={font=\scriptsize}, "
             r"title style={font=\small}, unbounded coords=jump, every axis plot/.append style={no markers}]"]
    for name, params in acts:
        act = primitives.ACTIVATIONS[name]
        values = {k: sp.nsimplify(v) for k, v in params}
        g = act.define(x, **values)
        shown = ", ".join(rf"\{k} = {v}" for k, v in params)      # alpha, beta: Greek letters in TeX
        title = f"${act.latex}(x)" + (f", {shown}$" if shown else "$")
        lines.append(rf"\nextgroupplot[title={{{title}}}]")
        lines.append(rf"\addplot[thick, blue!70!black] coordinates {{{_coordinates(samples(g, x))}}};")
        lines.append(rf"\addplot[thick, dashed, red!70!black] coordinates {{{_coordinates(samples(sp.diff(g, x), x))}}};")
    lines += [r"\end{groupplot}", r"\end{tikzpicture}"]
    return Figure(_center("\n".join(lines)),
                  "Each activation (solid, blue) and its derivative (dashed, red) on −3 ≤ x ≤ 3, computed from the "
                  "same definitions the formulas are checked against (parameters as in each title); a jump is drawn "
                  "as a gap.")


def delta_plot(rows: list[tuple[str, float]]) -> Figure:
    """The size ‖δˡ‖ of each layer's error term, a bar per layer on a log scale (input side left)."""
    ticks = ",".join(f"{{${label}$}}" for label, _ in rows)
    bars = " ".join(f"({k},{value:.6g})" for k, (_, value) in enumerate(rows, start=1))
    body = "\n".join([
        r"\begin{tikzpicture}",
        r"\begin{axis}[ybar, ymode=log, width=8cm, height=5.5cm, bar width=14pt, xtick={" +
        ",".join(str(k) for k in range(1, len(rows) + 1)) + "}, xticklabels={" + ticks + "}, "
        r"xmin=0.4, xmax=" + f"{len(rows) + 0.6}" + r", ylabel={Euclidean norm}, log origin=infty, "
        r"tick label style={font=\small}, nodes near coords, nodes near coords style={font=\scriptsize}, "
        r"point meta=rawy, every node near coord/.append style={/pgf/number format/.cd, fixed, precision=4}, "
        r"xtick style={draw=none}, enlarge y limits={upper, value=0.25}]",
        rf"\addplot[fill=blue!35, draw=blue!70!black] coordinates {{{bars}}};",
        r"\end{axis}",
        r"\end{tikzpicture}"])
    return Figure(_center(body), "The size of the error term of each layer (Euclidean norm of the vector, log "
                                 "scale), from the first layer to the output: how the gradient grows or shrinks on "
                                 "its way back, the picture behind vanishing gradients.")
