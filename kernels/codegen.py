"""Derived expressions → readable Python source for Numba.  No kernel is written by hand.

A network or scalar graph is derived by the engine (``derive.kinds.network.derivation``) with symbols in place of
its numbers, so one kernel serves every instance of the same structure.  Three code shapes:

* **unrolled** (small networks, every scalar graph): the derivation's element expressions, made
  numerically stable and lifted into helpers (``program.build``), printed as straight-line code
  through ``sympy.cse``;
* **blas** (large layers, ``blas.py``): the affine map derived once in index form, its products
  printed as ``np.dot``, the element-wise parts taken from the engine's derivation of the layers.
* **loops** (``blas.py`` with ``loops=True``): the same program with its products printed as loops;
  its compile time does not grow with the widths.  ``choose_shape`` picks by measured compile cost.

``generate`` returns a :class:`KernelSource`: plain strings (tests read them) and JSON-able
metadata.  Identifiers are generated here: quantity names of a network come from the engine
(``z1``, ``grad_W2``) and are checked against the engine's naming pattern; the names of a graph
come from its spec file and never reach the code (its quantities print as ``q0``, ``q1``, …).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from dataclasses import dataclass, field

import sympy as sp

from derive.core.steps import LR
from derive.kinds.graph.spec import Graph
from derive.kinds.network.spec import Layer, Network
from derive.core.steps import Derivation, Quantity


# Numba's compile time of the first sgd_step call, in CPU seconds on the development machine (2-core
# Xeon, AVX-512; benchmarks/compile_times.py and docs/kernels.md).  Unrolled code grows with the
# parameters (straight-line code: about params^1.1 here, params^1.5 and more beyond); the loops and
# BLAS shapes do not grow with the size (their bodies are one layer's element expressions).
UNROLLED_COMPILE_CPU_S = {12: 0.69, 36: 1.26, 60: 2.25, 144: 5.66}
LOOPS_COMPILE_CPU_S = 2.3          # 3-3-3-3: 2.21, 8-8-8: 2.55, 32-32-10: 2.32
BLAS_COMPILE_CPU_S = 3.0           # 3-3-3-3: 2.88, 32-32-10: 3.25 (np.dot's typing and BLAS bindings)
MAX_LOOPS_PARAMS = 1000            # beyond this, products by BLAS (loops: 7x slower at 784-15-10)


def unrolled_compile_estimate(params: int) -> float:
    """Measured compile seconds of the unrolled shape, interpolated (log-log) between the sizes
    measured, extrapolated with the last slope beyond them."""
    pts = sorted(UNROLLED_COMPILE_CPU_S.items())
    (p0, c0), (p1, c1) = next(((a, b) for a, b in zip(pts, pts[1:]) if params <= b[0]), pts[-2:])
    if params <= p0:
        return c0 * params / p0
    slope = math.log(c1 / c0) / math.log(p1 / p0)
    return c0 * (params / p0) ** slope

_ENGINE_NAME = re.compile(r"x|t|p|loss|loss_new|grad_y|(?:W|b|z|h|gprime|delta|grad_W|grad_b|grad_h)\d{1,2}(?:_new)?")
RESERVED = {"theta", "Theta", "X", "T", "Y", "x", "t", "v", "V", "lr", "out", "grad", "losses", "row", "prob",
            "total", "scale", "ok", "math", "np", "prange", "B", "P"}


@dataclass(frozen=True)
class Function:
    name: str
    text: str
    parallel: bool = False
    fastmath: str = ""              # Numba's fastmath flags, e.g. '{"contract"}' (never nnan or ninf)


@dataclass(frozen=True)
class KernelSource:
    """Generated code of one kernel: helper and kernel function sources, and metadata."""

    kind: str                       # 'network' | 'graph'
    shape: str                      # 'unrolled' | 'blas'
    title: str
    helpers: tuple[str, ...]
    functions: tuple[Function, ...]
    meta: dict = field(default_factory=dict)
    preamble: str = ""              # module-level source printed as is, before the helpers (vecmath)

    def body(self) -> str:
        """The helpers and functions, undecorated (compile.py adds the Numba decorators)."""
        return "\n\n\n".join(list(self.helpers) + [f.text for f in self.functions])


# ----------------------------------------------------------------------------- symbolic copies

def symbolic_network(net: Network) -> Network:
    """The same structure with symbols for weights, biases, input, target and learning rate."""
    layers = tuple(Layer(l.size, l.activation, None, () if l.bias == () else None) for l in net.layers)
    return Network(net.input_size, None, None, layers, net.loss, sp.Symbol(LR, positive=True))


def symbolic_graph(graph: Graph) -> Graph:
    return dataclasses.replace(graph, values=tuple((name, None) for name, _ in graph.values),
                               learning_rate=sp.Symbol(LR, positive=True))


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
    """The shape whose first call compiles fastest, by the measured costs above: unrolled while it
    compiles about as fast as the loops shape (up to about 65 parameters: the slides' networks; it
    also has ``many_sgd_step`` and ``trace``), then loops up to ``MAX_LOOPS_PARAMS``, then BLAS
    (where the products outweigh any compile time)."""
    if unrolled_compile_estimate(net.param_count) <= 1.1 * LOOPS_COMPILE_CPU_S:
        return "unrolled"
    return "loops" if net.param_count <= MAX_LOOPS_PARAMS else "blas"


# ----------------------------------------------------------------------------- identifiers

def identifiers(quantities: list[Quantity], opaque: bool) -> dict[sp.Symbol, str]:
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


def lines(*blocks) -> str:
    """Source text from strings and lists of strings."""
    return "\n".join(line for block in blocks for line in ([block] if isinstance(block, str) else block))


# ----------------------------------------------------------------------------- entry points

def generate_network(net: Network, shape: str = "auto") -> KernelSource:
    """The kernel source of a layered network (its numbers are ignored: they are arguments)."""
    net = symbolic_network(net)
    shape = choose_shape(net) if shape == "auto" else shape
    if shape in ("blas", "loops"):
        from .blas import generate_blas
        return generate_blas(net, loops=shape == "loops")
    if shape != "unrolled":
        raise ValueError(f"unknown code shape {shape!r} (expected 'auto', 'unrolled', 'loops' or 'blas')")
    from .unrolled import network_source
    return network_source(net)


def graph_structure(graph: Graph) -> dict:
    """What a graph kernel depends on.  Node texts enter only this hash, never the code."""
    return {"values": [name for name, _ in graph.values], "params": list(graph.params),
            "nodes": [list(n) for n in graph.nodes], "loss": graph.loss,
            **({"rebound": [list(r) for r in graph.rebound]} if graph.rebound else {})}


def generate_graph(graph: Graph) -> KernelSource:
    """The kernel source of a scalar equation graph; its values are arguments (a vector ``v``)."""
    from .unrolled import graph_source
    return graph_source(symbolic_graph(graph))


def derivation_structure(derivation: Derivation) -> dict:
    """What a derivation kernel depends on: every step but the given numbers (their names, shapes
    and roles only), hashed."""
    h = hashlib.sha256()
    for step in derivation.steps:
        h.update(f"{type(step).__name__}|{step.name}|{step.target.shape}|{getattr(step, 'role', '')}|".encode())
        if step.rule != "given":
            for e in step.exprs:
                h.update(sp.srepr(e).encode())
    return {"kind": derivation.kind, "steps": h.hexdigest()}


def generate_derivation(derivation: Derivation, title: str) -> KernelSource:
    """The kernel source of another kind's derivation (cnn, recurrent, perceptron, ...)."""
    from .unrolled import derivation_source
    return derivation_source(derivation, title)
