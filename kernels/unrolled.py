"""The unrolled code shape: every element of the derivation one line, straight-line code.

Used for the slides' small networks and for every scalar graph.  The statements come from
``program.build`` (the derivation with stable forms); each kernel function prints those its
outputs need, through ``sympy.cse``.  Parameters are read into locals once, samples row by row.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.backprop import LR, derive_graph, derive_network
from derive.spec import Graph, Network
from derive.steps import Derivation, Update

from . import program as prog
from .codegen import Function, KernelSource, derivation_hash, identifiers, lines, structure
from .layout import Layout
from .printer import KernelPrinter

NONFINITE = ('    """{what}\n\n'
             '    NaN, with {arrays} untouched, when an input or a result is not finite."""')


@dataclass
class _Net:
    """The pieces of a network's program the kernel functions print."""

    program: prog.Program
    names: dict
    params: list          # (offset in theta, symbol)
    x: list
    t: list
    lr: sp.Symbol
    loss: sp.Symbol
    y: list
    grads: list           # ∂L/∂θ symbols, in the order of params
    news: list            # θ_new symbols, in the order of params
    updates: dict         # θ_new symbol -> θ − η ∂L/∂θ

    def emit(self, targets, available, indent, prefix="c"):
        return prog.emit(self.program, targets, self.names, available, indent, prefix)

    def load_params(self, source: str, indent: str):
        return [f"{indent}{self.names[s]} = {source.format(k)}" for k, s in self.params]

    def load(self, source: str, syms, indent: str):
        return [f"{indent}{self.names[s]} = {source.format(i)}" for i, s in enumerate(syms)]

    @property
    def inputs(self):
        return [s for _, s in self.params] + list(self.x) + list(self.t) + [self.lr]


def _net(net: Network) -> tuple[_Net, Derivation, Layout]:
    derivation = derive_network(net)
    program = prog.build(derivation)
    names = identifiers([g.target for g in program.given] + program.quantities, opaque=False)
    given = [s for s in derivation.steps if getattr(s, "role", None) == "param"]
    layout = Layout.of((s.name, s.target.shape) for s in given)
    params = [(layout.slot(p.name).offset + k, sym) for p in given for k, sym in enumerate(p.target.symbols())]
    q = derivation.quantity
    parts = _Net(program, names, params, list(q("x").symbols()), list(q("t").symbols()), q(LR).symbol(),
                 q("loss").symbol(), list(q(f"h{len(net.layers)}").symbols()),
                 [g for p in given for g in q("grad_" + p.name).symbols()],
                 [n for p in given for n in q(p.name + "_new").symbols()],
                 {sym: e for s in derivation.steps if isinstance(s, Update) for sym, e in s.items()})
    return parts, derivation, layout


def _accumulated(n: _Net, body_out: list[str]) -> list[str]:
    """Parameters loaded, the loss and gradient summed over the rows of X, T."""
    return lines(
        n.load_params("theta[{}]", "    "),
        [f"    gsum_{n.names[g]} = 0.0" for g in n.grads],
        "    total = 0.0",
        "    for row in range(X.shape[0]):",
        n.load("X[row, {}]", n.x, "        "),
        n.load("T[row, {}]", n.t, "        "),
        n.emit([n.loss] + n.grads, n.inputs, "        "),
        f"        total += {n.names[n.loss]}",
        [f"        gsum_{n.names[g]} += {n.names[g]}" for g in n.grads],
        "    scale = 1.0 / X.shape[0]",
        body_out,
    ).split("\n")


def _sgd_step(n: _Net) -> str:
    gsum = {g: sp.Symbol("gsum_" + n.names[g]) for g in n.grads}
    scale = sp.Symbol("scale")
    printer = KernelPrinter({**n.names, **{s: s.name for s in gsum.values()}, scale: "scale"},
                            frozenset(n.program.helpers))
    mean = {g: gsum[g] * scale for g in n.grads}          # the update reads the mean gradient
    update = [f"    {n.names[new]} = {printer.doprint(n.updates[new].xreplace(mean))}" for new in n.news]
    return lines(
        "def sgd_step(theta, X, T, lr):",
        NONFINITE.format(what="One SGD step on the mean loss over the rows of X, T (in place); that loss, "
                              "before the step.", arrays="theta"),
        _accumulated(n, update + ["    ok = math.isfinite(total)"] +
                     [f"    ok &= math.isfinite({n.names[new]})" for new in n.news]),
        "    if not ok:",
        "        return math.nan",
        [f"    theta[{k}] = {n.names[new]}" for (k, _), new in zip(n.params, n.news)],
        "    return total * scale",
    )


def _loss_grad(n: _Net) -> str:
    return lines(
        "def loss_grad(theta, X, T, grad):",
        '    """The mean loss over the rows of X, T; its gradient into grad (laid out like theta)."""',
        _accumulated(n, [f"    grad[{k}] = gsum_{n.names[g]} * scale" for (k, _), g in zip(n.params, n.grads)]),
        "    return total * scale",
    )


def _forward(n: _Net) -> str:
    return lines(
        "def forward(theta, X, Y):",
        '    """The network output for each row of X, into the rows of Y."""',
        n.load_params("theta[{}]", "    "),
        "    for row in range(X.shape[0]):",
        n.load("X[row, {}]", n.x, "        "),
        n.emit(n.y, [s for _, s in n.params] + n.x, "        "),
        [f"        Y[row, {i}] = {n.names[s]}" for i, s in enumerate(n.y)],
    )


def _many(n: _Net) -> str:
    return lines(
        "def many_sgd_step(Theta, X, T, lr, losses):",
        '    """Row p of Theta is one problem with sample X[p], T[p]: one SGD step each, in place.',
        "",
        '    losses[p] is the loss before the step, or NaN (row p untouched) when something is not finite."""',
        "    for prob in prange(Theta.shape[0]):",
        n.load_params("Theta[prob, {}]", "        "),
        n.load("X[prob, {}]", n.x, "        "),
        n.load("T[prob, {}]", n.t, "        "),
        n.emit([n.loss] + n.news, n.inputs, "        "),
        f"        ok = math.isfinite({n.names[n.loss]})",
        [f"        ok &= math.isfinite({n.names[new]})" for new in n.news],
        "        if ok:",
        [f"            Theta[prob, {k}] = {n.names[new]}" for (k, _), new in zip(n.params, n.news)],
        f"            losses[prob] = {n.names[n.loss]}",
        "        else:",
        "            losses[prob] = math.nan",
    )


def _trace(program: prog.Program, names: dict, head: str, loads: list[str], available) -> tuple[str, Layout]:
    layout = Layout.of((q.name, q.shape) for q in program.quantities)
    text = lines(
        head,
        '    """Every quantity of the derivation, into out (see the trace layout)."""',
        loads,
        prog.emit(program, [s for s, _ in program.statements], names, available, "    "),
        [f"    out[{layout.slot(q.name).offset + k}] = {names[s]}"
         for q in program.quantities for k, s in enumerate(q.symbols())],
    )
    return text, layout


def _helpers(program: prog.Program) -> tuple[str, ...]:
    return tuple(prog.helper_source(program.helpers[h], program.helpers) for h in prog.helper_order(program.helpers))


def network_source(net: Network) -> KernelSource:
    """Kernel source of a small layered network (``net`` already symbolic)."""
    n, derivation, layout = _net(net)
    trace, trace_layout = _trace(n.program, n.names, "def trace(theta, x, t, lr, out):",
                                 n.load_params("theta[{}]", "    ") + n.load("x[{}]", n.x, "    ") +
                                 n.load("t[{}]", n.t, "    "), n.inputs)
    functions = (Function("sgd_step", _sgd_step(n)), Function("loss_grad", _loss_grad(n)),
                 Function("forward", _forward(n)), Function("many_sgd_step", _many(n), parallel=True),
                 Function("trace", trace))
    meta = {"kind": "network", "shape": "unrolled", **structure(net), "params": layout.to_json(),
            "trace": trace_layout.to_json(), "derivation": derivation_hash(derivation),
            "functions": [f.name for f in functions]}
    title = f"{'-'.join(map(str, net.sizes))} network ({', '.join(l.activation.name for l in net.layers)}; " \
            f"{net.loss}), unrolled"
    return KernelSource("network", "unrolled", title, _helpers(n.program), functions, meta)


# ----------------------------------------------------------------------------- scalar graphs

def graph_source(graph: Graph) -> KernelSource:
    """Kernel source of a scalar graph (``graph`` already symbolic); names print as q0, q1, ..."""
    derivation = derive_graph(graph)
    program = prog.build(derivation)
    names = identifiers([g.target for g in program.given] + program.quantities, opaque=True)
    leaves = [g for g in program.given if g.name != LR]
    q = derivation.quantity
    lr, loss = q(LR).symbol(), q(graph.loss).symbol()
    values = [g.target.symbol() for g in leaves]
    grads = [q("grad_" + g.name).symbol() for g in leaves]
    news = {k: q(g.name + "_new").symbol() for k, g in enumerate(leaves) if g.role == "param"}

    def step_lines(source: str, indent: str):
        """Load, check the inputs, compute loss and new parameters, check those: sets ``ok``."""
        return lines(
            [f"{indent}{names[s]} = {source.format(k)}" for k, s in enumerate(values)],
            f"{indent}ok = math.isfinite(lr)",          # a value hidden by relu(NaN) = 0 must not pass
            [f"{indent}ok &= math.isfinite({names[s]})" for s in values],
            prog.emit(program, [loss] + list(news.values()), names, values + [lr], indent),
            [f"{indent}ok &= math.isfinite({names[s]})" for s in [loss] + list(news.values())],
        )

    sgd = lines(
        "def sgd_step(v, lr):",
        NONFINITE.format(what="One gradient step on the parameters among the values v (in place); the loss "
                              "before it.", arrays="v"),
        step_lines("v[{}]", "    "),
        "    if not ok:",
        "        return math.nan",
        [f"    v[{k}] = {names[s]}" for k, s in news.items()],
        f"    return {names[loss]}",
    )
    loss_grad = lines(
        "def loss_grad(v, grad):",
        '    """The loss at the values v; its gradient with respect to every value into grad."""',
        [f"    {names[s]} = v[{k}]" for k, s in enumerate(values)],
        prog.emit(program, [loss] + grads, names, values, "    "),
        [f"    grad[{k}] = {names[g]}" for k, g in enumerate(grads)],
        f"    return {names[loss]}",
    )
    many = lines(
        "def many_sgd_step(V, lr, losses):",
        '    """Row p of V holds the values of one problem: one gradient step each, in place.',
        "",
        '    losses[p] is the loss before the step, or NaN (row p untouched) when something is not finite."""',
        "    for prob in prange(V.shape[0]):",
        step_lines("V[prob, {}]", "        "),
        "        if ok:",
        [f"            V[prob, {k}] = {names[s]}" for k, s in news.items()],
        f"            losses[prob] = {names[loss]}",
        "        else:",
        "            losses[prob] = math.nan",
    )
    trace, trace_layout = _trace(program, names, "def trace(v, lr, out):",
                                 [f"    {names[s]} = v[{k}]" for k, s in enumerate(values)], values + [lr])
    functions = (Function("sgd_step", sgd), Function("loss_grad", loss_grad),
                 Function("many_sgd_step", many, parallel=True), Function("trace", trace))
    meta = {"kind": "graph", "shape": "unrolled", "values": [[g.name, g.role] for g in leaves],
            "loss": graph.loss, "trace": trace_layout.to_json(), "derivation": derivation_hash(derivation),
            "functions": [f.name for f in functions]}
    return KernelSource("graph", "unrolled", f"scalar graph of {len(graph.nodes)} nodes, unrolled",
                        _helpers(program), functions, meta)


# ----------------------------------------------------------------------------- any other derivation

def derivation_source(derivation: Derivation, title: str) -> KernelSource:
    """Kernel source of any derivation whose steps are plain expressions (convolutional and
    recurrent networks, perceptrons, ...): its given quantities are one flat vector ``v``, its
    quantities print as q0, q1, ... (kind-specific names never reach the code)."""
    program = prog.build(derivation)
    names = identifiers([g.target for g in program.given] + program.quantities, opaque=True)
    leaves = [g for g in program.given if g.name != LR]
    layout = Layout.of((g.name, g.target.shape) for g in leaves)
    values = [s for g in leaves for s in g.target.symbols()]
    has = {s.name for s in derivation.steps}
    lr = [derivation.quantity(LR).symbol()] if LR in has else []
    loss = derivation.quantity("loss").symbol() if "loss" in has else None
    grads = [(layout.slot(g.name).offset + k, s) for g in leaves if "grad_" + g.name in has
             for k, s in enumerate(derivation.quantity("grad_" + g.name).symbols())]
    news = [(layout.slot(g.name).offset + k, s) for g in leaves if g.role == "param" and g.name + "_new" in has
            for k, s in enumerate(derivation.quantity(g.name + "_new").symbols())]
    load = [f"    {names[s]} = v[{k}]" for k, s in enumerate(values)]
    functions = []
    trace, trace_layout = _trace(program, names, "def trace(v, lr, out):", load, values + lr)
    functions.append(Function("trace", trace))
    if loss is not None:
        functions.append(Function("loss_grad", lines(
            "def loss_grad(v, grad):",
            '    """The loss at the given values v; its gradient with respect to them into grad (0 where none)."""',
            load,
            prog.emit(program, [loss] + [s for _, s in grads], names, values, "    "),
            "    for k in range(grad.shape[0]):",
            "        grad[k] = 0.0",
            [f"    grad[{k}] = {names[s]}" for k, s in grads],
            f"    return {names[loss]}")))
    if loss is not None and news and lr:
        functions.append(Function("sgd_step", lines(
            "def sgd_step(v, lr):",
            NONFINITE.format(what="One gradient step on the parameters among the values v (in place); the loss "
                                  "before it.", arrays="v"),
            load,
            "    ok = math.isfinite(lr)",
            [f"    ok &= math.isfinite({names[s]})" for s in values],
            prog.emit(program, [loss] + [s for _, s in news], names, values + lr, "    "),
            [f"    ok &= math.isfinite({names[s]})" for s in [loss] + [s for _, s in news]],
            "    if not ok:",
            "        return math.nan",
            [f"    v[{k}] = {names[s]}" for k, s in news],
            f"    return {names[loss]}")))
    meta = {"kind": derivation.kind, "shape": "unrolled", "values": layout.to_json(),
            "roles": [[g.name, g.role] for g in leaves], "loss": loss is not None,
            "trace": trace_layout.to_json(), "derivation": derivation_hash(derivation),
            "functions": [f.name for f in functions]}
    return KernelSource(derivation.kind, "unrolled", title, _helpers(program), tuple(functions), meta)
