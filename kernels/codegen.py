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

``generate_*`` return a :class:`KernelSource` (``kernels/source.py``): plain strings (tests read
them) and JSON-able metadata.  Identifiers are the engine's quantity names for every kind (a
graph's node names too), renamed one-to-one where they could collide (``kernels/source.py``).
The modules import downward: ``codegen`` → ``unrolled``, ``blas`` → ``source``, ``program``.
"""
from __future__ import annotations

import math

from derive.kinds.graph.spec import Graph
from derive.kinds.network.spec import Network
from derive.core.steps import Derivation

from .blas import generate_blas
from .source import (Function, KernelSource, derivation_hash, derivation_structure, graph_structure,  # noqa: F401
                     identifiers, lines, structure, symbolic_graph, symbolic_network)
from .unrolled import derivation_source, graph_source, network_source

# Numba's compile time of the first sgd_step call, in CPU seconds on the development machine (2-core
# Xeon, AVX-512; benchmarks/compile_times.py and docs/kernels.md).  Unrolled code grows with the
# parameters (straight-line code: about params^1.1 here, params^1.5 and more beyond); the loops and
# BLAS shapes do not grow with the size (their bodies are one layer's element expressions).
# Measured again for the one emitter (issue 11: each pass its own compilation unit), load 2-3.
UNROLLED_COMPILE_CPU_S = {12: 1.26, 36: 2.01, 60: 2.99, 144: 6.48}
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


def choose_shape(net: Network) -> str:
    """The shape whose first call compiles fastest, by the measured costs above: unrolled while it
    compiles about as fast as the loops shape (up to about 48 parameters: the slides' networks; it
    also has ``many_sgd_step`` and ``trace``), then loops up to ``MAX_LOOPS_PARAMS``, then BLAS
    (where the products outweigh any compile time)."""
    if unrolled_compile_estimate(net.param_count) <= 1.1 * LOOPS_COMPILE_CPU_S:
        return "unrolled"
    return "loops" if net.param_count <= MAX_LOOPS_PARAMS else "blas"


# ----------------------------------------------------------------------------- entry points

def generate_network(net: Network, shape: str = "auto") -> KernelSource:
    """The kernel source of a layered network (its numbers are ignored: they are arguments)."""
    net = symbolic_network(net)
    shape = choose_shape(net) if shape == "auto" else shape
    if shape in ("blas", "loops"):
        return generate_blas(net, loops=shape == "loops")
    if shape != "unrolled":
        raise ValueError(f"unknown code shape {shape!r} (expected 'auto', 'unrolled', 'loops' or 'blas')")
    return network_source(net)


def generate_graph(graph: Graph) -> KernelSource:
    """The kernel source of a scalar equation graph; its values are arguments (a vector ``v``)."""
    return graph_source(symbolic_graph(graph))


def generate_derivation(derivation: Derivation, title: str) -> KernelSource:
    """The kernel source of another kind's derivation (cnn, recurrent, perceptron, ...)."""
    return derivation_source(derivation, title)
