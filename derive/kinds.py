"""The kinds of problem a spec can describe: one entry per top-level table.

Each kind reads its table into a frozen dataclass and derives it into steps.  A new kind
(perceptron learning, convolution, recurrent networks, ...) lives in its own module and adds one
entry here; ``spec.from_mapping`` and ``backprop.derive`` look kinds up in this table only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .steps import Derivation


@dataclass(frozen=True)
class Kind:
    table: str                              # the spec's top-level table, e.g. "network"
    load: Callable[[dict, str], Any]        # (table, key path) -> problem dataclass
    derive: Callable[[Any], Derivation]     # problem -> derivation
    problem: type                           # the dataclass ``load`` returns
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
    from .backprop import derive_graph, derive_network
    from .recurrent import Recurrent, derive_recurrent, load_recurrent
    from .spec import Graph, Network, load_graph, load_network
    kinds = [
        Kind("network", load_network, derive_network, Network),
        Kind("graph", load_graph, derive_graph, Graph),
        Kind("recurrent", load_recurrent, derive_recurrent, Recurrent, printing="derive.recurrent_tex"),
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
