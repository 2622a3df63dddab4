"""The LaTeX of every quantity and element of a derivation, in one notation profile.

:func:`layered_names` and :func:`scalar_names` read the quantity names of a derivation (``z1``, ``W2_new``, ``grad_w5``,
``dL_dz1[0]``...), fills the profile's templates, and applies the spec's ``[notation]`` overrides
(validated by :func:`derive.printing.texcheck.check_latex`).  Names of the first pass (inputs, parameters,
forward quantities) are overridden before the gradients are named, so ``z1 = "\\mathbf{u}"`` also
renames ``∂L/∂z1``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from derive.core import primitives
from derive.core.errors import SpecError
from derive.printing.notation import GRAD, Profile, fill, scalar_name, transpose
from derive.core.steps import (ELEMENTWISE, LR, Activate, ChainRule, Derivation, Given, Node, Probabilities, Quantity, Seed,
    Step)
from derive.printing.texcheck import check_latex

_LAYERED = re.compile(r"(W|b|z|h|gprime|delta|grad_h|grad_W|grad_b)(\d+)(_new)?")
_ELEMENT = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\[(\d+(?:,\d+)?)\]")
_BASE = {"x", "t", "W", "b", "z", "h", "loss", "eta"}
_SAMPLE = re.compile(r"(.+)_s(\d+)")   # a mini-batch sample's quantity: z1_s2 is z1 of sample 2


@dataclass(frozen=True)
class Names:
    """Element symbol name → LaTeX, quantity name → LaTeX, and the quantities printed negated."""

    profile: Profile
    elements: dict[str, str]
    quantities: dict[str, str]
    negated: frozenset[str]
    loss: str

    def __call__(self, name: str) -> str:
        """The LaTeX of an element (``z1[0]``) or of a whole quantity (``z1``)."""
        return self.elements.get(name) or self.quantities[name]

    def transpose(self, name: str) -> str:
        return transpose(self.quantities[name])

    def partial(self, of: str, wrt: str) -> str:
        return rf"\frac{{\partial {of}}}{{\partial {wrt}}}"

    def sign(self, name: str) -> int:
        return -1 if _quantity_of(name) in self.negated else 1


def _quantity_of(symbol_name: str) -> str:
    m = _ELEMENT.fullmatch(symbol_name)
    return m.group(1) if m else symbol_name


def _key(name: str, index: tuple[int, ...]) -> str:
    return name if not index else f"{name}[{','.join(map(str, index))}]"


class _Builder:
    def __init__(self, prof: Profile, layers: int, activations: dict[int, str]):
        self.p, self.L, self.acts = prof, layers, activations
        self.q: dict[str, str] = {}
        self.e: dict[str, str] = {}

    def kind(self, name: str) -> tuple[str, int, bool] | None:
        sample = _SAMPLE.fullmatch(name)
        if sample:
            return self.kind(sample.group(1))
        fixed = {"x": ("x", 0), "t": ("t", 0), LR: ("eta", 0), "loss": ("loss", 0), "grad_y": ("grad_y", self.L)}
        if name in fixed:
            return fixed[name] + (False,)
        if name == "loss_new":
            return ("loss", 0, True)
        m = _LAYERED.fullmatch(name)
        if m:
            return m.group(1), int(m.group(2)), bool(m.group(3))
        return None

    def base(self, kind: str, layer: int, index: tuple[int, ...] | None, new: bool) -> str:
        """Quantity (index None) or element LaTeX of a forward quantity, input or parameter."""
        mark = self.p.new if new else ""
        if kind == "h" and layer == 0:
            kind = "x"
        deep = self.L > 2
        quantity = fill(self.p.template(kind, layer, self.L), layer, new=mark, deep=deep)
        if index is None:
            return quantity
        tpl = self.p.template(kind + ".e", layer, self.L)
        return fill(tpl, layer, index, new=mark, deep=deep) if tpl else fill("{<Q>}_{<rc>}", 0, index, Q=quantity)

    def name(self, q: Quantity, derived: bool) -> None:
        k = self.kind(q.name)
        if k is None or (k[0] in _BASE) == derived:
            return
        kind, layer, new = k
        make = self.base if kind in _BASE else self.derived
        sample = _SAMPLE.fullmatch(q.name)
        mark = (lambda tex: rf"{{{tex}}}^{{({sample.group(2)})}}") if sample else (lambda tex: tex)
        self.q[q.name] = mark(make(kind, layer, None, new))
        for idx in q.indices() if q.shape else []:
            self.e[_key(q.name, idx)] = mark(make(kind, layer, idx, new))

    def derived(self, kind: str, layer: int, index, new: bool) -> str:
        tpl = self.p.template(kind + (".e" if index is not None else ""), layer, self.L)
        if kind == "gprime":
            return self.gprime(layer, index)
        if tpl:
            return fill(tpl, layer, index or (), deep=self.L > 2)
        of = {"grad_W": ("W", layer), "grad_b": ("b", layer), "grad_h": ("h", layer),
              "grad_y": ("h", self.L), "delta": ("z", layer)}[kind]
        return fill(GRAD, L=self.loss, v=self.lookup(of, index))

    def lookup(self, of: tuple[str, int], index) -> str:
        kind, layer = of
        name = {"W": f"W{layer}", "b": f"b{layer}", "h": f"h{layer}", "z": f"z{layer}"}[kind]
        key = name if index is None else _key(name, index)
        return self.e.get(key) or self.q.get(key) or self.base(kind, layer, index, False)

    def gprime(self, layer: int, index) -> str:
        g = primitives.ACTIVATIONS[self.acts.get(layer, "identity")]
        if index is not None and len(index) == 2:
            return fill(GRAD, L=self.lookup(("h", layer), (index[0],)), v=self.lookup(("z", layer), (index[1],)))
        if g.vector:
            return fill(GRAD, L=self.lookup(("h", layer), None), v=self.lookup(("z", layer), None))
        tpl = self.p.template("gprime", layer, self.L)
        return fill(tpl, layer, g=g.latex, z=self.lookup(("z", layer), index), h=self.lookup(("h", layer), index))

    @property
    def loss(self) -> str:
        return self.q.get("loss") or fill(self.p.template("loss"), 0)


def _overrides(pairs: Iterable[tuple[str, str]], known: set[str]) -> dict[str, str]:
    out = {}
    for key, value in pairs:
        if key == "profile":
            continue
        if key not in known:
            raise SpecError(f"notation.{key}", "no quantity or element of that name in this problem")
        out[key] = check_latex(value, f"notation.{key}")
    return out


def _apply(overrides: dict[str, str], quantities: dict, elements: dict, steps: list[Step]) -> None:
    for step in steps:
        q = step.target
        if q.name in overrides:
            quantities[q.name] = overrides[q.name]
            for idx in q.indices() if q.shape else []:
                elements[_key(q.name, idx)] = fill("{<Q>}_{<rc>}", 0, idx, Q=overrides[q.name])
        for idx in q.indices() if q.shape else []:
            if _key(q.name, idx) in overrides:
                elements[_key(q.name, idx)] = overrides[_key(q.name, idx)]


def _all_steps(derivations: Iterable[Derivation]) -> list[Step]:
    return [s for d in derivations for s in d.steps]


def _prepare(derivations, overrides, defaults):
    steps = _all_steps(derivations)
    known = {s.name for s in steps} | {a for d in derivations for a, _ in d.aliases}
    known |= {_key(s.name, i) for s in steps if s.target.shape for i in s.target.indices()}
    resolved = {}
    for d in derivations:
        resolved.update(dict(d.aliases))
    over = {resolved.get(k, k): v for k, v in _overrides(list(defaults) + list(overrides), known).items()}
    return steps, over


def scalar_names(derivations: Iterable[Derivation], prof: Profile, overrides: Iterable[tuple[str, str]] = (),
                 defaults: Iterable[tuple[str, str]] = ()) -> Names:
    """Every quantity by its own name (``w5``, ``grad_w5`` as ∂L/∂w₅): graphs and most kinds."""
    steps, over = _prepare(list(derivations), overrides, defaults)
    return _graph_names(prof, steps, over)


def layered_names(derivations: Iterable[Derivation], prof: Profile, overrides: Iterable[tuple[str, str]] = (),
                  defaults: Iterable[tuple[str, str]] = ()) -> Names:
    """Names of a layered network's matrix and element-wise forms from the profile's templates
    (W^{(l)}, δ^{(l)}_i, ∂L/∂w^{(l)}_{ij}...)."""
    steps, over = _prepare(list(derivations), overrides, defaults)
    acts = {s.layer: s.activation for s in steps if isinstance(s, Activate)}
    scalars = {s.name: m for s in steps if (m := _ELEMENT.fullmatch(s.name))}  # nodes of the element-wise form
    layers = [int(k[2]) for m in scalars.values() if (k := _LAYERED.fullmatch(m.group(1)))]
    b = _Builder(prof, max(list(acts) + layers, default=1), acts)
    for derived in (False, True):
        for s in steps:
            b.name(s.target, derived)
        _apply(over, b.q, b.e, steps)
    for name, m in scalars.items():   # z1[0] as a quantity of its own is the element of z1
        k = b.kind(m.group(1))
        if name not in b.e and k is not None and k[0] in _BASE:
            b.e[name] = b.base(k[0], k[1], tuple(int(i) for i in m.group(2).split(",")), k[2])
        if name in b.e:
            b.q.setdefault(name, b.e[name])
    for s in steps:  # the element-wise form: nodes are elements of the matrix form's quantities
        if s.name.startswith(ELEMENTWISE):
            of = s.name[len(ELEMENTWISE):]
            b.q[s.name] = fill(GRAD, L=b.loss, v=b.e.get(of) or b.q.get(of) or scalar_name(of))
    for s in steps:    # softmax cross-entropy's probabilities: a bold vector p, elements p_i
        if isinstance(s, Probabilities):
            b.q[s.name] = r"\mathbf{p}"
            b.e.update({_key(s.name, i): fill("{<Q>}_{<rc>}", 0, i, Q="p") for i in s.target.indices()})
    _apply(over, b.q, b.e, steps)
    _generic(steps, b.q, b.e)
    negated = frozenset(n for n in b.q if (b.kind(n) or ("",))[0] in prof.negated)
    return Names(prof, b.e, b.q, negated, b.loss)


def _generic(steps: list[Step], quantities: dict, elements: dict) -> None:
    """Names for quantities no template knows (a step class added later): ``conv1`` → conv₁, elements by index."""
    for s in steps:
        q = s.target
        if q.name not in quantities:
            quantities[q.name] = scalar_name(q.name)
        for idx in q.indices() if q.shape else []:
            elements.setdefault(_key(q.name, idx), fill("{<Q>}_{<rc>}", 0, idx, Q=quantities[q.name]))


def _graph_names(prof: Profile, steps: list[Step], over: dict[str, str]) -> Names:
    q: dict[str, str] = {}
    params = {s.name for s in steps if isinstance(s, Given) and s.role == "param"}
    for s in steps:
        if s.name == LR:
            q[s.name] = fill(prof.template("eta"), 0)
        elif not isinstance(s, (ChainRule, Seed)) and not s.name.endswith("_new"):
            q[s.name] = scalar_name(s.name)
    q.update(_rebound(steps, q, prof))
    q.update({k: v for k, v in over.items() if k in q})
    loss = next((q[s.name[len("grad_"):]] for s in steps if isinstance(s, Seed)), "L")
    for s in steps:
        if isinstance(s, (ChainRule, Seed)):
            of = s.name[len("grad_"):]
            m = re.fullmatch(r"w(\d+)", of)
            if prof.param_gradient and of in params and m:
                q[s.name] = fill(prof.param_gradient, k=m.group(1))
            else:
                q[s.name] = fill(GRAD, L=loss, v=q[of])
        elif s.name.endswith("_new"):
            base = q[s.name[: -len("_new")]]
            q[s.name] = f"{{{base}}}'" if prof.new == "'" else f"{{{base}}}^{{{prof.new}}}"
    q.update({k: v for k, v in over.items() if "[" not in k})
    elements: dict[str, str] = {k: v for k, v in over.items() if "[" in k}
    _generic(steps, q, elements)
    return Names(prof, elements, q, frozenset(), loss)


def _rebound(steps: list[Step], q: dict[str, str], prof: Profile) -> dict[str, str]:
    """A name bound again is shown primed: c, c′, c″, c‴, then c^{(4)}; with an index c^{(k)}
    when the profile already marks updated values with a prime."""
    out, count = {}, {}
    for s in steps:
        if isinstance(s, Node) and s.rebinds:
            k = count[s.rebinds] = count.get(s.rebinds, 0) + 1
            base = q.get(s.rebinds) or scalar_name(s.rebinds)
            out[s.name] = f"{{{base}}}{chr(39) * k}" if k <= 3 and prof.new != "'" else f"{{{base}}}^{{({k})}}"
    return out
