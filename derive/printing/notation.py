"""Notation profiles: each course's own symbols for the quantities of a derivation.

A :class:`Profile` is data: LaTeX templates per kind of quantity (``z``, ``h``, ``W``, ``delta``,
...), with placeholders ``<l>`` (the engine's layer number), ``<l+1>`` (deck 002 counts the input
as layer 1), ``<r>``, ``<c>``, ``<rc>`` (1-based row, column, both) and ``<new>`` (the mark of an
updated value).  A key ``kind@out``, ``kind@first`` or ``kind@hidden`` overrides ``kind`` for the
last, first or a middle layer.  :func:`names` turns a profile, a derivation and the spec's
``[notation]`` table into :class:`Names`: the LaTeX of every element symbol and every quantity.

The five profiles follow the conventions listed at the top of ``SLIDE_EXAMPLES.md``; each names the
seed deck it follows.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Mapping

from derive.core.errors import SpecError

GRAD = r"\frac{\partial <L>}{\partial <v>}"


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    seed: str
    summary: str
    templates: Mapping[str, str]
    aliases: tuple[str, ...] = ()
    negated: frozenset[str] = frozenset()   # kinds printed with the opposite sign (δ = −∂E/∂net)
    layout: str = "numerator"               # or "denominator": ∂y/∂z printed transposed
    times: str = r"\cdot"                   # the product sign between substituted numbers
    new: str = r"\mathrm{new}"              # the mark of an updated quantity
    param_gradient: str | None = None       # graph weights w<k>: ∂L/∂w_k written as this (δ_<k>)

    def template(self, kind: str, layer: int = 0, last: int = 0) -> str | None:
        keys = []
        if layer and layer == last:
            keys.append(kind + "@out")
        if layer == 1:
            keys.append(kind + "@first")
        if 0 < layer < last:
            keys.append(kind + "@hidden")
        keys.append(kind)
        return next((self.templates[k] for k in keys if k in self.templates), None)


XJTU = Profile(
    "xjtu", "XJTU advanced machine learning (deck 000)", "000_9ff9b7f9e4790c65.txt",
    "column vectors; z = W h + b and h = g(z) by layer, h⁰ = x; error term δ = ∂L/∂z; numerator layout",
    {
        "x": r"\mathbf{x}", "x.e": "x_{<r>}", "t": r"\mathbf{t}", "t.e": "t_{<r>}",
        "W": r"\mathbf{W}^{<l><new>}", "W.e": "w^{<l><new>}_{<rc>}",
        "b": r"\mathbf{b}^{<l><new>}", "b.e": "b^{<l><new>}_{<r>}",
        "z": r"\mathbf{z}^{<l><new>}", "z.e": "z^{<l><new>}_{<r>}",
        "h": r"\mathbf{h}^{<l><new>}", "h.e": "h^{<l><new>}_{<r>}",
        "h@out": r"\mathbf{y}^{<new>}", "h.e@out": "y^{<new>}_{<r>}",
        "loss": r"\mathcal{L}^{<new>}", "eta": r"\eta",
        "delta": r"\boldsymbol{\delta}^{<l>}", "delta.e": r"\delta^{<l>}_{<r>}",
        "gprime": r"g^{<l>\prime}(<z>)", "grad_y": r"\nabla_{\mathbf{y}} \mathcal{L}",
    }, aliases=("000",))

# A spec of one's own (no deck named in its source, no [notation]) gets this neutral profile: the
# common column-vector conventions, with no deck's name attached.
STANDARD = Profile(
    "standard", "standard notation", "", XJTU.summary, XJTU.templates, aliases=("default",))

NANKAI = Profile(
    "nankai", "Nankai deep learning (deck 001)", "001_0a5ce40d7d59efe7.txt",
    "In for a neuron's input, h and o for hidden and output values; δ_i means ∂Error/∂w_i, a gradient",
    {
        "x": r"\mathbf{x}", "x.e": "x_{<r>}", "t": r"\mathbf{y}", "t.e": "y_{<r>}",
        "W": r"\mathbf{W}^{<l><new>}", "W.e": "w^{<l><new>}_{<rc>}",
        "b": r"\mathbf{b}^{<l><new>}", "b.e": "b^{<l><new>}_{<r>}",
        "z": r"\mathbf{In}_{h^{<l>}}^{<new>}", "z.e": r"In_{h^{<l>}_{<r>}}^{<new>}",
        "z@out": r"\mathbf{In}_{o}^{<new>}", "z.e@out": r"In_{o_{<r>}}^{<new>}",
        "h": r"\mathbf{h}^{<l><new>}", "h.e": "h^{<l><new>}_{<r>}",
        "h@out": r"\mathbf{o}^{<new>}", "h.e@out": "o^{<new>}_{<r>}",
        "loss": r"\mathit{Error}^{<new>}", "eta": r"\eta",
        "grad_W.e": r"\delta^{<l>}_{<rc>}",
        "gprime": r"\frac{\partial <h>}{\partial <z>}",
    }, new="'", param_gradient=r"\delta_{<k>}", aliases=("001",))

DECK002 = Profile(
    "deck002", "Neural networks (deck 002)", "002_e780c23990bc6025.txt",
    "the input is layer 1, x for layer values, ŷ the output and y the label; denominator layout, "
    "∂L/∂z = (∂ŷ/∂z) ∂L/∂ŷ",
    {
        "x": r"\mathbf{x}^{(1)}", "x.e": "x^{(1)}_{<r>}", "t": r"\mathbf{y}", "t.e": "y_{<r>}",
        "W": r"\mathbf{W}^{(<l>)<new>}", "W.e": "W^{(<l>)<new>}_{<rc>}",
        "b": r"\mathbf{b}^{(<l>)<new>}", "b.e": "b^{(<l>)<new>}_{<r>}",
        "z": r"\mathbf{z}^{(<l+1>)<new>}", "z.e": "z^{(<l+1>)<new>}_{<r>}",
        "h": r"\mathbf{x}^{(<l+1>)<new>}", "h.e": "x^{(<l+1>)<new>}_{<r>}",
        "h@out": r"\hat{\mathbf{y}}^{<new>}", "h.e@out": r"\hat{y}^{<new>}_{<r>}",
        "loss": "L^{<new>}", "eta": r"\eta",
        "gprime": r"<g>'(<z>)",
    }, layout="denominator", aliases=("002",))

UIBE = Profile(
    "uibe", "UIBE artificial neural networks (deck 003)", "003_67241637582786d1.txt",
    "net for a neuron's input, y hidden and o output values, d the target; v for input-to-hidden and w for "
    "hidden-to-output weights, indexed from input to output; error signal δ = −∂E/∂net",
    {
        "x": r"\mathbf{x}", "x.e": "x_{<r>}", "t": r"\mathbf{d}", "t.e": "d_{<r>}",
        # v_ij joins input i to hidden j: the engine's W1[j, i].  So W1 is V transposed.
        "W@first": r"\mathbf{V}^{<new>\top}", "W.e@first": "v^{<new>}_{<cr>}",
        "W@out": r"\mathbf{W}^{<new>\top}", "W.e@out": "w^{<new>}_{<cr>}",
        "W": r"\mathbf{W}^{<(l)><new>\top}", "W.e": "w^{<(l)><new>}_{<cr>}",
        "b": r"\mathbf{b}^{y<(l)><new>}", "b.e": "b^{y<(l)><new>}_{<r>}",
        "b@out": r"\mathbf{b}^{o<new>}", "b.e@out": "b^{o<new>}_{<r>}",
        "z": r"\mathbf{net}^{y<(l)><new>}", "z.e": r"net^{y<(l)><new>}_{<r>}",
        "z@out": r"\mathbf{net}^{o<new>}", "z.e@out": r"net^{o<new>}_{<r>}",
        "h": r"\mathbf{y}^{<(l)><new>}", "h.e": r"y^{<(l)><new>}_{<r>}",
        "h@out": r"\mathbf{o}^{<new>}", "h.e@out": "o^{<new>}_{<r>}",
        "loss": "E^{<new>}", "eta": r"\eta",
        "delta": r"\boldsymbol{\delta}^{y<(l)>}", "delta.e": r"\delta^{y<(l)>}_{<r>}",
        "delta@out": r"\boldsymbol{\delta}^{o}", "delta.e@out": r"\delta^{o}_{<r>}",
        "gprime": r"f'(<z>)",
    }, negated=frozenset({"delta"}), aliases=("003",))

DECK004 = Profile(
    "deck004", "Introduction to AI, chapter 3 (deck 004)", "004_d00e0ad09de1f318.txt",
    "z for pre-activations, a = σ(z) for activations, δ = ∂L/∂z, learning rate α",
    {
        "x": r"\mathbf{x}", "x.e": "x_{<r>}", "t": r"\mathbf{y}", "t.e": "y_{<r>}",
        "W": r"\mathbf{W}^{(<l>)<new>}", "W.e": "w^{(<l>)<new>}_{<rc>}",
        "b": r"\mathbf{b}^{(<l>)<new>}", "b.e": "b^{(<l>)<new>}_{<r>}",
        "z": r"\mathbf{z}^{(<l>)<new>}", "z.e": "z^{(<l>)<new>}_{<r>}",
        "h": r"\mathbf{a}^{(<l>)<new>}", "h.e": "a^{(<l>)<new>}_{<r>}",
        "loss": "L^{<new>}", "eta": r"\alpha",
        "delta": r"\boldsymbol{\delta}^{(<l>)}", "delta.e": r"\delta^{(<l>)}_{<r>}",
        "gprime": r"<g>'(<z>)",
    }, times=r"\times", aliases=("004",))

PROFILES: dict[str, Profile] = {p.name: p for p in (STANDARD, XJTU, NANKAI, DECK002, UIBE, DECK004)}


def source_words(source: str) -> str:
    """A spec's source for print: a deck's seed file named by the deck's title ("XJTU advanced
    machine learning (deck 000)") rather than by its file name."""
    for p in PROFILES.values():
        if p.seed and p.seed in source:
            source = source.replace(p.seed, p.title)
    return source


def profile(name: str, path: str = "notation.profile") -> Profile:
    """The profile called ``name`` (or one of its aliases such as the deck number '003')."""
    for p in PROFILES.values():
        if name == p.name or name in p.aliases:
            return p
    known = [n for p in PROFILES.values() for n in (p.name, *p.aliases)]
    hint = difflib.get_close_matches(str(name), known, n=2)
    extra = f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
    raise SpecError(path, f"unknown notation profile {name!r} (known: {', '.join(PROFILES)}){extra}")


# ----------------------------------------------------------------------------- filling templates

def _index(idx: tuple[int, ...], order: str) -> str:
    one = [str(i + 1) for i in idx]
    if order == "cr":
        one = one[::-1]
    return ("," if any(len(s) > 1 for s in one) else "").join(one)


def fill(template: str, layer: int = 0, index: tuple[int, ...] = (), new: str = "", deep: bool = True,
         **parts: str) -> str:
    """A template with its placeholders replaced; empty ``^{}``/``_{}`` groups are dropped.

    ``<(l)>`` is ``(l)`` in a network of more than two layers and nothing otherwise (deck 003
    writes ``net_j`` for its one hidden layer).
    """
    out = template.replace("<(l)>", f"({layer})" if deep else "")
    out = out.replace("<l+1>", str(layer + 1)).replace("<l>", str(layer))
    if index:
        out = out.replace("<rc>", _index(index, "rc")).replace("<cr>", _index(index, "cr"))
        out = out.replace("<r>", str(index[0] + 1))
        if len(index) > 1:
            out = out.replace("<c>", str(index[1] + 1))
    out = out.replace("<new>", ("," + new if new and not new.startswith("'") else new)
                      if re.search(r"\^\{[^{}]*<new>", out) else new)
    for key, value in parts.items():
        out = out.replace(f"<{key}>", value)
    out = re.sub(r"\^\{,", "^{", out)
    return re.sub(r"[\^_]\{\}", "", out)


def transpose(latex: str) -> str:
    """X^⊤ in print: ``\\mathbf{W}^{3}`` → ``\\mathbf{W}^{3\\top}``; a transpose twice cancels."""
    if latex.endswith(r"\top}"):
        body = latex[: -len(r"\top}")]
        return body[:-2] if body.endswith("^{") else body + "}"
    m = re.fullmatch(r"(.*)\^\{([^{}]*)\}", latex)
    if m and not latex.startswith(r"\frac"):
        return f"{m.group(1)}^{{{m.group(2)}\\top}}"
    if latex.startswith((r"\frac", r"\nabla", r"\left")) or " " in latex:
        return rf"\left({latex}\right)^{{\top}}"
    return latex + r"^{\top}"


# ----------------------------------------------------------------------------- scalar names

_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "eta", "theta", "lambda", "mu", "sigma", "tau",
          "phi", "omega", "rho", "xi", "psi", "chi", "nu", "kappa", "zeta", "iota", "pi"}
_ACCENTS = ("hat", "bar", "tilde", "dot", "vec")


def _word(letters: str) -> str:
    if letters in _GREEK:
        return "\\" + letters
    if len(letters) == 1:
        return letters
    for acc in _ACCENTS:
        if letters.endswith(acc) and len(letters) > len(acc):
            return rf"\{acc}{{{_word(letters[: -len(acc)])}}}"
    return rf"\mathrm{{{letters}}}" if letters[0].isupper() or len(letters) > 3 else rf"\mathit{{{letters}}}"


def scalar_name(name: str) -> str:
    """The LaTeX of a scalar graph name: ``w5`` → ``w_{5}``, ``In_h1`` → ``\\mathrm{In}_{h_{1}}``,
    ``yhat1`` → ``\\hat{y}_{1}``, ``w0x0`` → ``(w_{0} x_{0})``, ``y_gt`` → ``y_{\\mathit{gt}}``.

    A name made of several symbols (a node holding the product w0·x0) is bracketed, so that it
    cannot be read as the product of the values it is named after.
    """
    head, _, rest = name.partition("_")
    pieces = re.findall(r"([A-Za-z]+)(\d*)", head)
    if len(pieces) > 1 and all(len(l) == 1 and d for l, d in pieces[:-1]):
        out = "(" + " ".join(_word(l) + (f"_{{{d}}}" if d else "") for l, d in pieces) + ")"
    else:
        letters = re.sub(r"\d+$", "", head)
        digits = head[len(letters):]
        out = _word(letters) + (f"_{{{digits}}}" if digits else "")
    if rest:
        sub = rest if rest.isdigit() else scalar_name(rest)
        out = f"{out}_{{{sub}}}" if "_" not in out else f"{{{out}}}_{{{sub}}}"
    return out
