"""The protocol of a problem kind (one plug-in per spec table, ``derive/kinds/<kind>/``).

A kind's package defines ``KIND = Kind(...)``; the registry (``derive/kinds/__init__.py``) lists
them.  It sits in the core so that a kind can describe itself without importing the registry
(which imports every kind): the kinds stay independent of one another.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from derive.core.steps import Derivation


@dataclass(frozen=True)
class Kind:
    table: str                              # the spec's top-level table, e.g. "network"
    load: Callable[[dict, str], Any]        # (table, key path) -> problem dataclass
    derive: Callable[[Any], Derivation]     # problem -> derivation
    problem: type                           # the dataclass ``load`` returns
    # (spec, derivations, printer) -> the handout's sections for this kind, every step included;
    # None: the given values, then every other step in order
    handout: Callable[..., list] | None = None
    # derivation -> default LaTeX of its quantities and elements (a spec's [notation] overrides it)
    notation: Callable[[Derivation], dict[str, str]] | None = None
    # A kind printed its own way names a module with ``names(derivations, profile, overrides)``,
    # ``Printer`` (a HandoutPrinter subclass), ``sections(spec, derivations, printer)``, ``placed()``
    # and ``meta(spec, profile)``; None: the printer and naming below.
    printing: str | None = None
    # (spec, derivation, decimals) -> a whole handout printed its own way, or None for the usual one
    # (the network's wide layers: vector forms and a few elements)
    document: Callable[..., Any] | None = None
    # problem -> derivations a handout and claims read beside the main one (a network's element-wise form)
    companions: Callable[[Any], list[Derivation]] | None = None
    # derivation -> names its claims may use besides its quantities (a network's element-wise dL_dz1...)
    claim_names: Callable[[Derivation], dict] | None = None
    # derivation -> functions its claims may call besides the claim language's (a graph's d(node, arg))
    claim_functions: Callable[[Derivation], dict] | None = None
    # the names of the derivations this kind makes (``Derivation.kind``), when more than its table
    derivation_kinds: tuple[str, ...] = ()
    # known slips of its own step classes: step class name -> (step, derivation) -> [Mistake]
    # (derive/core/mistakes.py makes those of the steps every kind uses)
    mistakes: dict[str, Callable] | None = None
    # (the kind's raw spec table, a quantity name) -> (container, key) of that given number in the
    # table, for ``nnderive variants`` to draw it anew; None: not a drawable number
    locate: Callable[[dict, str], tuple[Any, Any] | None] | None = None
    # quantities by layer (W1, z1, delta1, …): answers may name them by layer (∂L/∂z¹ is δ¹), and
    # the kernels derive the layers in matrix form
    layered: bool = False
    # the kernels this kind compiles: "layered" or "scalar" (kernels/api.py); None: none
    kernel: str | None = None

    def printing_module(self):
        return None if self.printing is None else importlib.import_module(self.printing)
