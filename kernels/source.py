"""What every code shape shares: the generated source's types, its identifiers and its line layout.

A leaf module (it imports the engine, never another code-shape module), so that ``unrolled``,
``blas`` and ``codegen`` import downward from it and not from each other.

Identifiers are the engine's quantity names for every kind: ``z1_0``, ``grad_W2_1_0`` for a
network, ``K1_0_1`` for a convolution, a graph's own node names (``x``, ``grad_w``).  A name that
would collide with a name of the generated module (``math``, ``theta``, a helper such as
``sigmoid``, a common subexpression ``c0``, a Python keyword or builtin) or that ends in ``_`` gets
a ``_`` appended: a one-to-one renaming, so a name from a spec file can never shadow ours.  Names
are checked against the spec's name pattern (ASCII letters, digits and ``_``) before they are used.
"""
from __future__ import annotations

import builtins
import dataclasses
import hashlib
import keyword
import re
from dataclasses import dataclass, field

import sympy as sp

from derive.core.steps import LR
from derive.kinds.graph.spec import Graph
from derive.kinds.network.spec import Layer, Network
from derive.core.steps import Derivation, Quantity

from .text import WIDTH, fit, fitted, lines  # noqa: F401  (the shapes import them from here)

RESERVED = {"theta", "Theta", "ThetaB", "X", "XB", "T", "TB", "Y", "x", "t", "v", "V", "lr", "out", "grad", "G",
            "losses", "row", "prob", "lane", "blk", "buf", "first", "size", "start", "stop", "task", "nblocks",
            "total", "scale", "ok", "fin", "k", "given", "math", "np", "prange", "njit", "B", "P", "vexp", "vlog",
            "f64_from_bits", "bits_of_f64", "intrinsic", "_nbtypes", "in_vector_loop", "vexpf", "f32_from_bits",
            "prefer_wide_vectors", "work", "at", "need"}
_CSE = re.compile(r"c\d+")
_SAFE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class Function:
    name: str
    text: str
    parallel: bool = False
    fastmath: str = ""              # Numba's fastmath flags, e.g. '{"contract"}' (never nnan or ninf)
    inline_twin: bool = False       # also ``<name>_inline``: the same function, inlined by Numba into callers
    jit: bool = True                # False: a plain Python function, compiled by its user (kernels/api.py)


@dataclass(frozen=True)
class KernelSource:
    """Generated code of one kernel: helper and kernel function sources, and metadata."""

    kind: str                       # 'network' | 'graph' | another kind's name
    shape: str                      # 'unrolled' | 'loops' | 'blas'
    title: str
    helpers: tuple[str, ...]
    functions: tuple[Function, ...]
    meta: dict = field(default_factory=dict)
    preamble: str = ""              # module-level source printed as is, before the helpers (vecmath)
    legend: str = ""                # a comment block at the top of the module (a graph's names → values)
    inline_helpers: bool = False    # helpers inlined by Numba (the vectorised kernel needs them in its loop)

    def body(self) -> str:
        """The helpers and functions, undecorated (kernels/cache.py adds the Numba decorators)."""
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


def graph_structure(graph: Graph) -> dict:
    """What a graph kernel depends on (its node names and texts are part of the code)."""
    return {"values": [name for name, _ in graph.values], "params": list(graph.params),
            "nodes": [list(n) for n in graph.nodes], "loss": graph.loss,
            **({"rebound": [list(r) for r in graph.rebound]} if graph.rebound else {})}


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


# ----------------------------------------------------------------------------- identifiers

def identifier(name: str, taken: frozenset[str] = frozenset()) -> str:
    """The identifier of an engine name: itself, or with ``_`` appended when it could collide (see
    the module docstring); ``taken`` are further names of the module (its helpers)."""
    if not _SAFE.fullmatch(name):
        raise ValueError(f"not a quantity name the kernels can print: {name!r}")
    clash = (name in RESERVED or name in taken or keyword.iskeyword(name) or hasattr(builtins, name)
             or _CSE.fullmatch(name) or name.endswith("_"))
    return name + "_" if clash else name


def identifiers(quantities: list[Quantity], taken: frozenset[str] = frozenset()) -> dict[sp.Symbol, str]:
    """Element symbol → identifier: ``z1_0``, ``W2_1_0``, ``grad_w`` (the learning rate: ``lr``)."""
    out: dict[sp.Symbol, str] = {}
    for q in quantities:
        for idx, sym in zip(q.indices(), q.symbols()):
            out[sym] = "lr" if q.name == LR else identifier(q.name + "".join(f"_{i}" for i in idx), taken)
    if len(set(out.values())) != len(out):
        raise ValueError("generated identifiers collide")
    return out


