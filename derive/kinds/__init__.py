"""The kinds of problem a spec can describe: one plug-in per top-level table, and the one registry.

A kind is a package ``derive/kinds/<kind>/`` that reads its table into a frozen dataclass and
derives it into steps; it may add its own printer and handout sections, default notation, the
derivations a handout shows beside the main one, and functions for claims.  Everything above this
layer (verify, handouts, grading, kernels, the commands) asks the functions below, which look the
kind up here, and never branches on a kind's name or type.  Adding a kind is one package and one
line in :func:`_builtin` (or :func:`register`, as the tests do with a kind of their own); the protocol is
:class:`derive.core.plugin.Kind`;
docs/architecture.md walks through it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from derive.core import spec as core_spec
from derive.core.plugin import Kind
from derive.core.spec import Spec
from derive.core.steps import Derivation
from derive.printing import names as naming
from derive.printing.notation import Profile, profile as find_profile


def _builtin() -> list[Kind]:
    from derive.kinds import architecture, cnn, graph, matrices, network, perceptron, recurrent
    return [network.KIND, graph.KIND, cnn.KIND, perceptron.KIND, matrices.KIND, architecture.KIND, recurrent.KIND]


_KINDS: dict[str, Kind] | None = None


def kinds() -> dict[str, Kind]:
    """All kinds, by table name (built on first use)."""
    global _KINDS
    if _KINDS is None:
        _KINDS = {k.table: k for k in _builtin()}
    return _KINDS


def register(kind: Kind) -> Callable[[], None]:
    """Add a kind (a plug-in outside this package, or a test's); returns the function that removes it."""
    kinds()[kind.table] = kind
    return lambda: kinds().pop(kind.table, None)


def named(derivation_kind: str) -> Kind | None:
    """The kind that makes derivations of this ``Derivation.kind``."""
    for kind in kinds().values():
        if derivation_kind == kind.table or derivation_kind in kind.derivation_kinds:
            return kind
    return None


def of(problem: Any) -> Kind:
    for kind in kinds().values():
        if isinstance(problem, kind.problem):
            return kind
    raise TypeError(f"no kind of problem for {type(problem).__name__}")


def layered(derivation: Derivation) -> bool:
    """Whether the derivation's quantities are named by layer (``Kind.layered``)."""
    kind = named(derivation.kind)
    return kind is not None and kind.layered


def printing(derivation_kind: str):
    """The printing module of a derivation's kind, or None."""
    kind = named(derivation_kind)
    return None if kind is None else kind.printing_module()


# ----------------------------------------------------------------------------- specs

def from_mapping(data: dict, name: str = "spec", path: str = "") -> Spec:
    """Validate an already-parsed TOML/JSON mapping."""
    return core_spec.build(data, {t: k.load for t, k in kinds().items()}, name=name, path=path)


def loads(text: str, *, fmt: str = "toml", name: str = "spec", path: str = "") -> Spec:
    """Parse spec text; ``fmt`` is 'toml' or 'json'."""
    return from_mapping(core_spec.parse(text, fmt), name=name, path=path)


def load(path: str | Path) -> Spec:
    """Load a spec file; the format follows the suffix (.json, else TOML)."""
    return core_spec.read(path, from_mapping)


def locate(data: dict, name: str) -> tuple[Any, Any] | None:
    """(container, key) of a given number ``name`` in a raw spec mapping, for ``variants`` to draw."""
    for table, kind in kinds().items():
        if table in data and kind.locate is not None and isinstance(data[table], dict):
            return kind.locate(data[table], name)
    return None


# ----------------------------------------------------------------------------- derivations

def derive(spec: Spec) -> Derivation | None:
    """The derivation of a spec's problem (None for a spec of formulas only)."""
    return None if spec.problem is None else of(spec.problem).derive(spec.problem)


def document(spec: Spec, derivation: Derivation | None, decimals: int):
    """A whole handout the kind prints its own way for this derivation, or None."""
    kind = None if derivation is None else named(derivation.kind)
    return kind.document(spec, derivation, decimals) if kind is not None and kind.document else None


def companions(spec: Spec, derivation: Derivation | None) -> list[Derivation]:
    """The derivation and those its kind reads beside it (a network's element-wise form)."""
    if derivation is None:
        return []
    kind = of(spec.problem)
    return [derivation] + (kind.companions(spec.problem) if kind.companions else [])


def claim_names(derivation: Derivation) -> dict:
    """Names a kind adds to the claim language for this derivation (a network's ``dL_dz1``...)."""
    kind = named(derivation.kind)
    return kind.claim_names(derivation) if kind is not None and kind.claim_names else {}


def claim_functions(derivation: Derivation | None) -> dict:
    """Functions a kind adds to the claim language for this derivation."""
    kind = None if derivation is None else named(derivation.kind)
    return kind.claim_functions(derivation) if kind is not None and kind.claim_functions else {}


def mistakes(derivation: Derivation) -> list:
    """Every known slip of the derivation's steps, for feedback (the kind's own and the shared ones)."""
    from derive.core.mistakes import mistakes as catalogue
    kind = named(derivation.kind)
    return catalogue(derivation, kind.mistakes if kind is not None else None)


# ----------------------------------------------------------------------------- names

def names(derivations: Iterable[Derivation], prof: Profile | str = "standard",
          overrides: Iterable[tuple[str, str]] = ()) -> naming.Names:
    """The LaTeX of every quantity of ``derivations``, named by their kind, with ``overrides``."""
    derivations = list(derivations)
    prof = find_profile(prof) if isinstance(prof, str) else prof
    kinds_ = [k for d in derivations if (k := named(d.kind)) is not None]
    own = next((m for k in kinds_ if (m := k.printing_module()) is not None), None)
    if own is not None:
        return own.names(derivations, prof, overrides)
    defaults = [pair for d, k in zip(derivations, kinds_) if k.notation is not None for pair in k.notation(d).items()]
    return naming.scalar_names(derivations, prof, overrides, defaults)


def of_spec(spec: Spec, derivation: Derivation | None, prof: Profile | str | None = None) -> naming.Names:
    """The names the handout of ``spec`` prints: its ``[notation]`` profile (or ``prof``) and overrides."""
    prof = prof if prof is not None else dict(spec.notation).get("profile", "standard")
    return names(companions(spec, derivation), prof, spec.notation)
