"""The kinds of problem a spec can describe: one entry per top-level table.

Each kind reads its table into a frozen dataclass and derives it into steps.  A new kind
(perceptron learning, convolution, recurrent networks, ...) lives in its own module and adds one
entry here; ``spec.from_mapping`` and ``backprop.derive`` look kinds up in this table only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from derive.core.steps import Derivation


@dataclass(frozen=True)
class Kind:
    table: str                              # the spec's top-level table, e.g. "network"
    load: Callable[[dict, str], Any]        # (table, key path) -> problem dataclass
    derive: Callable[[Any], Derivation]     # problem -> derivation
    problem: type                           # the dataclass ``load`` returns
    # (spec, derivation, printer) -> the handout's sections for this kind, every step included;
    # None: the given values, then every other step in order (derive/handout.py)
    handout: Callable[..., list] | None = None
    # derivation -> default LaTeX of its quantities and elements (a spec's [notation] overrides it)
    notation: Callable[[Derivation], dict[str, str]] | None = None
    # A kind printed its own way names a module with ``names(derivations, profile, overrides)``,
    # ``Printer`` (a HandoutPrinter subclass), ``sections(spec, derivations, printer)``, ``placed()``
    # and ``meta(spec, profile)``; None: the network or graph printing (derive/handout.py).
    printing: str | None = None

    def printing_module(self):
        if self.printing is None:
            return None
        import importlib
        return importlib.import_module(self.printing)


def _kinds() -> dict[str, Kind]:
    from derive.kinds.architecture.derivation import (Architecture, derive_architecture, load_architecture,
        notation as architecture_notation)
    from derive.kinds.network.derivation import derive_graph, derive_network
    from derive.kinds.cnn.derivation import Cnn, derive_cnn, load_cnn
    from derive.kinds.matrices.derivation import (Matrices, derive_matrices, load_matrices,
        notation as matrices_notation)
    from derive.kinds.perceptron.derivation import Perceptron, derive_perceptron, load_perceptron
    from derive.kinds.perceptron.printing import (notation as perceptron_notation,
        sections as perceptron_sections)
    from derive.kinds.recurrent.derivation import Recurrent, derive_recurrent, load_recurrent
    from derive.core.spec import Graph, Network, load_graph, load_network
    kinds = [
        Kind("network", load_network, derive_network, Network),
        Kind("graph", load_graph, derive_graph, Graph),
        Kind("cnn", load_cnn, derive_cnn, Cnn, printing="derive.kinds.cnn.printing"),
        Kind("perceptron", load_perceptron, derive_perceptron, Perceptron, perceptron_sections,
             perceptron_notation),
        Kind("matrices", load_matrices, derive_matrices, Matrices, None, matrices_notation),
        Kind("architecture", load_architecture, derive_architecture, Architecture, None, architecture_notation),
        Kind("recurrent", load_recurrent, derive_recurrent, Recurrent, printing="derive.kinds.recurrent.printing"),
    ]
    return {k.table: k for k in kinds}


_KINDS: dict[str, Kind] | None = None


def kinds() -> dict[str, Kind]:
    """All kinds, by table name (built on first use: the kind modules import spec and backprop)."""
    global _KINDS
    if _KINDS is None:
        _KINDS = _kinds()
    return _KINDS


def printing(kind_name: str):
    """The printing module of a derivation's kind (``Derivation.kind``), or None."""
    kind = kinds().get(kind_name)
    return None if kind is None else kind.printing_module()


def of(problem: Any) -> Kind:
    for kind in kinds().values():
        if isinstance(problem, kind.problem):
            return kind
    raise TypeError(f"no kind of problem for {type(problem).__name__}")
