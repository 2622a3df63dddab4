"""Derived expressions → readable Python source for Numba.  No kernel is written by hand.

A network or scalar graph is derived by the engine (``derive.backprop``) with symbols in place of
its numbers, so one kernel serves every instance of the same structure.  Two code shapes:

* **unrolled** (small networks, every scalar graph): the derivation's element expressions, made
  numerically stable and lifted into helpers (``program.build``), printed as straight-line code
  through ``sympy.cse``;
* **blas** (large layers, ``blas.py``): the affine map derived once in index form, its products
  printed as ``np.dot``, the element-wise parts taken from the engine's derivation of the layers.

``generate`` returns a :class:`KernelSource`: plain strings (tests read them) and JSON-able
metadata.  Identifiers are generated here: quantity names of a network come from the engine
(``z1``, ``grad_W2``) and are checked against the engine's naming pattern; the names of a graph
come from its spec file and never reach the code (its quantities print as ``q0``, ``q1``, …).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

import sympy as sp

from derive.backprop import LR, derive_graph, derive_network
from derive.spec import Graph, Layer, Network
from derive.steps import Derivation, Quantity, Recompute, Update

from . import program as prog
from .layout import Layout
from .printer import KernelPrinter

MAX_UNROLLED_WIDTH = 16       # widest layer printed element by element
MAX_UNROLLED_PARAMS = 1000

_ENGINE_NAME = re.compile(r"x|t|loss|loss_new|grad_y|(?:W|b|z|h|gprime|delta|grad_W|grad_b|grad_h)\d{1,2}(?:_new)?")
RESERVED = {"theta", "Theta", "X", "T", "Y", "x", "t", "v", "V", "lr", "out", "grad", "losses", "row", "prob",
            "total", "scale", "ok", "math", "np", "prange", "B", "P"}


@dataclass(frozen=True)
class Function:
    name: str
    text: str
    parallel: bool = False


@dataclass(frozen=True)
class KernelSource:
    """Generated code of one kernel: helper and kernel function sources, and metadata."""

    kind: str                       # 'network' | 'graph'
    shape: str                      # 'unrolled' | 'blas'
    title: str
    helpers: tuple[str, ...]
    functions: tuple[Function, ...]
    meta: dict = field(default_factory=dict)

    def body(self) -> str:
        """The helpers and functions, undecorated (compile.py adds the Numba decorators)."""
        return "\n\n\n".join(list(self.helpers) + [f.text for f in self.functions])


# ----------------------------------------------------------------------------- symbolic copies

def symbolic_network(net: Network) -> Network:
    """The same structure with symbols for weights, biases, input, target and learning rate."""
    layers = tuple(Layer(l.size, l.activation, None, () if l.bias == () else None) for l in net.layers)
    return Network(net.input_size, None, None, layers, net.loss, sp.Symbol(LR, positive=True))


def symbolic_graph(graph: Graph) -> Graph:
    return Graph(tuple((name, None) for name, _ in graph.values), graph.params, graph.nodes, graph.loss,
                 sp.Symbol(LR, positive=True))


def derivation_hash(derivation: Derivation) -> str:
    """sha256 of the derivation's steps (classes, targets, expressions): what the kernel prints."""
    h = hashlib.sha256()
    for step in derivation.steps:
        h.update(f"{type(step).__name__}|{step.name}|{step.target.shape}|".encode())
        for e in step.exprs:
            h.update(sp.srepr(e).encode())
    return h.hexdigest()


def structure(net: Network) -> dict:
    """What a network kernel depends on, as JSON-able data (activation parameters as exact text)."""
    return {"sizes": list(net.sizes), "bias": [l.bias != () for l in net.layers], "loss": net.loss,
            "activations": [[l.activation.name, [[k, str(v)] for k, v in l.activation.params]]
                            for l in net.layers]}


def choose_shape(net: Network) -> str:
    small = max(net.sizes) <= MAX_UNROLLED_WIDTH and net.param_count <= MAX_UNROLLED_PARAMS
    return "unrolled" if small else "blas"


# ----------------------------------------------------------------------------- identifiers

def _identifiers(quantities: list[Quantity], opaque: bool) -> dict[sp.Symbol, str]:
    """Element symbol → identifier: ``z1_0``, ``W2_1_0`` for engine names, ``q7_0`` when ``opaque``."""
    out: dict[sp.Symbol, str] = {}
    for k, q in enumerate(quantities):
        if q.name == LR:
            base = "lr"
        elif opaque:
            base = f"q{k}"
        elif _ENGINE_NAME.fullmatch(q.name):
            base = q.name
        else:
            raise ValueError(f"not an engine quantity name: {q.name!r}")
        for idx, sym in zip(q.indices(), q.symbols()):
            ident = base + "".join(f"_{i}" for i in idx)
            if ident in RESERVED and ident != "lr":
                ident += "_"
            out[sym] = ident
    if len(set(out.values())) != len(out):
        raise ValueError("generated identifiers collide")
    return out


def _lines(*blocks) -> str:
    return "\n".join(line for block in blocks for line in ([block] if isinstance(block, str) else block))


# ----------------------------------------------------------------------------- networks, unrolled

def _param_layout(derivation: Derivation) -> tuple[Layout, list]:
    params = [s for s in derivation.steps if getattr(s, "role", None) == "param"]
    return Layout.of((s.name, s.target.shape) for s in params), params


def generate_network(net: Network, shape: str = "auto") -> KernelSource:
    """The kernel source of a layered network (its numbers are ignored: they are arguments)."""
    net = symbolic_network(net)
    shape = choose_shape(net) if shape == "auto" else shape
    if shape == "blas":
        from .blas import generate_blas
        return generate_blas(net)
    if shape != "unrolled":
        raise ValueError(f"unknown code shape {shape!r} (expected 'auto', 'unrolled' or 'blas')")
    derivation = derive_network(net)
    program = prog.build(derivation)
    names = _identifiers([g.target for g in program.given] + program.quantities, opaque=False)
    layout, params = _param_layout(derivation)
    L = len(net.layers)
    n_in, n_out = net.sizes[0], net.sizes[-1]
    x, t = derivation.quantity("x").symbols(), derivation.quantity("t").symbols()
    lr = derivation.quantity(LR).symbol()
    y = derivation.quantity(f"h{L}").symbols()
    loss = derivation.quantity("loss").symbol()
    psyms_at = [(layout.slot(p.name).offset + k, sym) for p in params for k, sym in enumerate(p.target.symbols())]
    psyms = [sym for _, sym in psyms_at]
    grads = [derivation.quantity("grad_" + p.name).symbols() for p in params]
    gsyms = [g for gs in grads for g in gs]
    news = [derivation.quantity(p.name + "_new").symbols() for p in params]
    nsyms = [n for ns in news for n in ns]
    updates = {s.target.symbols()[k]: e for s in derivation.steps if isinstance(s, Update)
               for k, e in enumerate(s.exprs)}

    def load_params(source: str, indent: str):
        return [f"{indent}{names[sym]} = {source.format(k)}" for k, sym in psyms_at]

    def load_row(source: str, syms, indent: str):
        return [f"{indent}{names[s]} = {source.format(i)}" for i, s in enumerate(syms)]

    computed = prog.emit(program, [loss] + gsyms, names, psyms + list(x) + list(t) + [lr], "        ")
    gsum = {g: sp.Symbol("gsum_" + names[g]) for g in gsyms}
    scale_sym = sp.Symbol("scale")
    mean_names = {**names, **{s: s.name for s in gsum.values()}, scale_sym: "scale"}
    printer = KernelPrinter(mean_names, frozenset(program.helpers))
    mean_updates = [f"    {names[n]} = {printer.doprint(updates[n].xreplace({g: gsum[g] * scale_sym for g in gsyms}))}"
                    for n in nsyms]
    finite = [f"    ok &= math.isfinite({names[n]})" for n in nsyms]

    sgd = _lines(
        "def sgd_step(theta, X, T, lr):",
        '    """One SGD step on the mean loss over the rows of X, T (in place); that loss, before the step.',
        "",
        '    NaN, with theta untouched, when an input or a result is not finite."""',
        load_params("theta[{}]", "    "),
        [f"    gsum_{names[g]} = 0.0" for g in gsyms],
        "    total = 0.0",
        "    for row in range(X.shape[0]):",
        load_row("X[row, {}]", x, "        "),
        load_row("T[row, {}]", t, "        "),
        computed,
        "        total += " + names[loss],
        [f"        gsum_{names[g]} += {names[g]}" for g in gsyms],
        "    scale = 1.0 / X.shape[0]",
        mean_updates,
        "    ok = math.isfinite(total)",
        finite,
        "    if not ok:",
        "        return math.nan",
        [f"    theta[{k}] = {names[n]}" for (k, _), n in zip(psyms_at, nsyms)],
        "    return total * scale",
    )
    loss_grad = _lines(
        "def loss_grad(theta, X, T, grad):",
        '    """The mean loss over the rows of X, T; its gradient into grad (laid out like theta)."""',
        load_params("theta[{}]", "    "),
        [f"    gsum_{names[g]} = 0.0" for g in gsyms],
        "    total = 0.0",
        "    for row in range(X.shape[0]):",
        load_row("X[row, {}]", x, "        "),
        load_row("T[row, {}]", t, "        "),
        computed,
        "        total += " + names[loss],
        [f"        gsum_{names[g]} += {names[g]}" for g in gsyms],
        "    scale = 1.0 / X.shape[0]",
        [f"    grad[{k}] = gsum_{names[g]} * scale" for (k, _), g in zip(psyms_at, gsyms)],
        "    return total * scale",
    )
    forward = _lines(
        "def forward(theta, X, Y):",
        '    """The network output for each row of X, into the rows of Y."""',
        load_params("theta[{}]", "    "),
        "    for row in range(X.shape[0]):",
        load_row("X[row, {}]", x, "        "),
        prog.emit(program, y, names, psyms + list(x), "        "),
        [f"        Y[row, {i}] = {names[s]}" for i, s in enumerate(y)],
    )
    many_body = prog.emit(program, [loss] + nsyms, names, psyms + list(x) + list(t) + [lr], "        ")
    many = _lines(
        "def many_sgd_step(Theta, X, T, lr, losses):",
        '    """Row p of Theta is one problem with sample X[p], T[p]: one SGD step each, in place.',
        "",
        '    losses[p] is the loss before the step, or NaN (row p untouched) when something is not finite."""',
        "    for prob in prange(Theta.shape[0]):",
        load_params("Theta[prob, {}]", "        "),
        load_row("X[prob, {}]", x, "        "),
        load_row("T[prob, {}]", t, "        "),
        many_body,
        f"        ok = math.isfinite({names[loss]})",
        ["    " + f for f in finite],
        "        if ok:",
        [f"            Theta[prob, {k}] = {names[n]}" for (k, _), n in zip(psyms_at, nsyms)],
        f"            losses[prob] = {names[loss]}",
        "        else:",
        "            losses[prob] = math.nan",
    )
    trace_q = program.quantities
    trace_layout = Layout.of((q.name, q.shape) for q in trace_q)
    trace = _lines(
        "def trace(theta, x, t, lr, out):",
        '    """Every quantity of the derivation for one sample, into out (see the trace layout)."""',
        load_params("theta[{}]", "    "),
        load_row("x[{}]", x, "    "),
        load_row("t[{}]", t, "    "),
        prog.emit(program, [s for s, _ in program.statements], names, psyms + list(x) + list(t) + [lr], "    "),
        [f"    out[{trace_layout.slot(q.name).offset + k}] = {names[s]}"
         for q in trace_q for k, s in enumerate(q.symbols())],
    )
    helpers = tuple(prog.helper_source(program.helpers[h], program.helpers) for h in prog.helper_order(program.helpers))
    sizes = "-".join(map(str, net.sizes))
    acts = ", ".join(l.activation.name for l in net.layers)
    meta = {"kind": "network", "shape": "unrolled", **structure(net), "params": layout.to_json(),
            "trace": trace_layout.to_json(), "derivation": derivation_hash(derivation),
            "functions": ["sgd_step", "loss_grad", "forward", "many_sgd_step", "trace"]}
    return KernelSource("network", "unrolled", f"{sizes} network ({acts}; {net.loss}), unrolled", helpers,
                        (Function("sgd_step", sgd), Function("loss_grad", loss_grad), Function("forward", forward),
                         Function("many_sgd_step", many, parallel=True), Function("trace", trace)), meta)


# ----------------------------------------------------------------------------- scalar graphs

def graph_structure(graph: Graph) -> dict:
    """What a graph kernel depends on.  Node texts enter only this hash, never the code."""
    return {"values": [name for name, _ in graph.values], "params": list(graph.params),
            "nodes": [list(n) for n in graph.nodes], "loss": graph.loss}


def generate_graph(graph: Graph) -> KernelSource:
    """The kernel source of a scalar equation graph; its values are arguments (vector ``v``)."""
    graph = symbolic_graph(graph)
    derivation = derive_graph(graph)
    program = prog.build(derivation)
    leaves = [g for g in program.given if g.name != LR]
    names = _identifiers([g.target for g in program.given] + program.quantities, opaque=True)
    lr = derivation.quantity(LR).symbol()
    vsyms = [g.target.symbol() for g in leaves]
    loss = derivation.quantity(graph.loss).symbol()
    gsyms = [derivation.quantity("grad_" + g.name).symbol() for g in leaves]
    params = [k for k, g in enumerate(leaves) if g.role == "param"]
    news = {k: derivation.quantity(leaves[k].name + "_new").symbol() for k in params}
    load = [f"    {names[s]} = v[{k}]" for k, s in enumerate(vsyms)]
    finite_in = ["    ok = math.isfinite(lr)"] + [f"    ok &= math.isfinite({names[s]})" for s in vsyms]
    step_body = prog.emit(program, [loss] + list(news.values()), names, vsyms + [lr], "    ")
    finite_out = [f"    ok &= math.isfinite({names[loss]})"] + [f"    ok &= math.isfinite({names[n]})" for n in news.values()]
    sgd = _lines(
        "def sgd_step(v, lr):",
        '    """One gradient step on the parameters among the values v (in place); the loss before it.',
        "",
        '    NaN, with v untouched, when a value, lr or a result is not finite."""',
        load, finite_in, step_body, finite_out,
        "    if not ok:",
        "        return math.nan",
        [f"    v[{k}] = {names[n]}" for k, n in news.items()],
        f"    return {names[loss]}",
    )
    loss_grad = _lines(
        "def loss_grad(v, grad):",
        '    """The loss at the values v; its gradient with respect to every value into grad."""',
        load,
        prog.emit(program, [loss] + gsyms, names, vsyms, "    "),
        [f"    grad[{k}] = {names[g]}" for k, g in enumerate(gsyms)],
        f"    return {names[loss]}",
    )
    many = _lines(
        "def many_sgd_step(V, lr, losses):",
        '    """Row p of V holds the values of one problem: one gradient step each, in place.',
        "",
        '    losses[p] is the loss before the step, or NaN (row p untouched) when something is not finite."""',
        "    for prob in prange(V.shape[0]):",
        [line.replace("    ", "        ", 1).replace("v[", "V[prob, ") for line in load + finite_in + step_body + finite_out],
        "        if ok:",
        [f"            V[prob, {k}] = {names[n]}" for k, n in news.items()],
        f"            losses[prob] = {names[loss]}",
        "        else:",
        "            losses[prob] = math.nan",
    )
    trace_layout = Layout.of((q.name, q.shape) for q in program.quantities)
    trace = _lines(
        "def trace(v, lr, out):",
        '    """Every quantity of the derivation into out (see the trace layout)."""',
        load,
        prog.emit(program, [s for s, _ in program.statements], names, vsyms + [lr], "    "),
        [f"    out[{trace_layout.slot(q.name).offset}] = {names[q.symbol()]}" for q in program.quantities],
    )
    helpers = tuple(prog.helper_source(program.helpers[h], program.helpers) for h in prog.helper_order(program.helpers))
    meta = {"kind": "graph", "shape": "unrolled", "values": [[g.name, g.role] for g in leaves], "loss": graph.loss,
            "trace": trace_layout.to_json(), "derivation": derivation_hash(derivation),
            "functions": ["sgd_step", "loss_grad", "many_sgd_step", "trace"]}
    return KernelSource("graph", "unrolled", f"scalar graph of {len(graph.nodes)} nodes, unrolled", helpers,
                        (Function("sgd_step", sgd), Function("loss_grad", loss_grad),
                         Function("many_sgd_step", many, parallel=True), Function("trace", trace)), meta)
