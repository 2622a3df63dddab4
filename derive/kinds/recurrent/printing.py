"""Printing a recurrent network's derivation: names, step printers and handout sections.

Registered as the ``printing`` module of the ``recurrent`` kind (:mod:`derive.kinds`), so
:func:`derive.printing.names.names` and :func:`derive.handout.assemble.build` use it for these derivations:

* :func:`names`: the LaTeX of every quantity and element.  Vectors are bold with the time step
  as subscript (``\\mathbf{h}_{1}``), element i of a vector at time t is ``h_{t,i}``, parameters
  follow deck 000 (``\\mathbf{W}_{hh}``, elements ``w^{hh}_{ij}``; the LSTM's ``\\mathbf{W}_{f}``
  …, ``\\mathbf{W}_{C}``) or, in the ``deck004`` profile, deck 004 (``\\mathbf{U}``,
  ``\\mathbf{W}``, ``\\mathbf{V}``, ``\\mathbf{b}_{a}``, pre-activation ``\\mathbf{z}_{t}``, output
  ``\\mathbf{o}_{t}``, target ``\\mathbf{y}_{t}``, loss ``L``).  An element of the stacked
  ``[h_{t−1}, x_t]`` is printed as the element of h_{t−1} or x_t it is (its gradient keeps the
  bracket: ∂L/∂[h_{t−1}, x_t]_k reaches h_{t−1} only through the gates).
* :class:`Printer`: ``_print_<Step>`` for the steps of :mod:`derive.kinds.recurrent.derivation`.  A gradient's
  matrix form is printed from the terms its step records (``\\mathbf{W}_{hh}^{\\top}
  \\frac{∂L}{∂\\mathbf{a}_{2}}``...), then every element with its chain-rule expression and numbers.
* :func:`sections`: the problem, the forward pass time step by time step, backpropagation through
  time (with the recursions read off the steps in terms of t), the shared parameters' gradients
  (sums over time) and the update.
"""
from __future__ import annotations

import re

from derive.core import primitives
from derive.printing.latex import (Block, Chain, HandoutPrinter, Math, Table, Terms, _listing, bmatrix,
    caption, definition)
from derive.printing.names import Names, _apply, _key, _overrides
from derive.printing.notation import GRAD, Profile, fill
from derive.kinds.recurrent.derivation import (LR, Concat, Hadamard, RecurrentAffine, StepLoss, Term,
    ThroughTime, TimeActivation, TotalLoss)
from derive.core.steps import Derivation, Given, Seed, Update

_TIMED = re.compile(r"(x|t|h|a|s|y|hx|zf|zi|zc|zo|f|i|o|ctilde|c|tc|loss)(\d+)")

# base -> (quantity template, element template); <t> the time, <t-1> the time before, <rc>/<r> the index
_XJTU = {
    "x": (r"\mathbf{x}_{<t>}", "x_{<t>,<r>}"), "t": (r"\mathbf{t}_{<t>}", "t_{<t>,<r>}"),
    "h": (r"\mathbf{h}_{<t>}", "h_{<t>,<r>}"), "a": (r"\mathbf{a}_{<t>}", "a_{<t>,<r>}"),
    "s": (r"\mathbf{s}_{<t>}", "s_{<t>,<r>}"), "y": (r"\mathbf{y}_{<t>}", "y_{<t>,<r>}"),
    "hx": (r"\left[\mathbf{h}_{<t-1>}, \mathbf{x}_{<t>}\right]", r"\left[\mathbf{h}_{<t-1>}, \mathbf{x}_{<t>}\right]_{<r>}"),
    "zf": (r"\mathbf{z}^{f}_{<t>}", "z^{f}_{<t>,<r>}"), "zi": (r"\mathbf{z}^{i}_{<t>}", "z^{i}_{<t>,<r>}"),
    "zc": (r"\mathbf{z}^{C}_{<t>}", "z^{C}_{<t>,<r>}"), "zo": (r"\mathbf{z}^{o}_{<t>}", "z^{o}_{<t>,<r>}"),
    "f": (r"\mathbf{f}_{<t>}", "f_{<t>,<r>}"), "i": (r"\mathbf{i}_{<t>}", "i_{<t>,<r>}"),
    "o": (r"\mathbf{o}_{<t>}", "o_{<t>,<r>}"),
    "ctilde": (r"\tilde{\mathbf{C}}_{<t>}", r"\tilde{C}_{<t>,<r>}"), "c": (r"\mathbf{C}_{<t>}", "C_{<t>,<r>}"),
    "tc": (r"\tanh(\mathbf{C}_{<t>})", r"\tanh(C_{<t>,<r>})"),
    "loss": (r"\mathcal{L}_{<t>}", ""), "L": (r"\mathcal{L}", ""), "eta": (r"\eta", ""),
    # error terms: δ = ∂L/∂(pre-activation), as deck 000 writes δ^l = ∂L/∂z^l
    "grad_a": (r"\boldsymbol{\delta}_{<t>}", r"\delta_{<t>,<r>}"),
    "grad_s": (r"\boldsymbol{\delta}^{y}_{<t>}", r"\delta^{y}_{<t>,<r>}"),
    **{f"grad_z{g}": (rf"\boldsymbol{{\delta}}^{{{G}}}_{{<t>}}", rf"\delta^{{{G}}}_{{<t>,<r>}}") for g, G in
       (("f", "f"), ("i", "i"), ("c", "C"), ("o", "o"))},
    "W_hh": (r"\mathbf{W}_{hh}^{<new>}", "w^{hh<new>}_{<rc>}"), "W_xh": (r"\mathbf{W}_{xh}^{<new>}", "w^{xh<new>}_{<rc>}"),
    "W_hy": (r"\mathbf{W}_{hy}^{<new>}", "w^{hy<new>}_{<rc>}"),
    "b_h": (r"\mathbf{b}_{h}^{<new>}", "b^{h<new>}_{<r>}"), "b_y": (r"\mathbf{b}_{y}^{<new>}", "b^{y<new>}_{<r>}"),
    **{f"W_{g}": (rf"\mathbf{{W}}_{{{G}}}^{{<new>}}", f"w^{{{G}<new>}}_{{<rc>}}") for g, G in
       (("f", "f"), ("i", "i"), ("c", "C"), ("o", "o"))},
    **{f"b_{g}": (rf"\mathbf{{b}}_{{{G}}}^{{<new>}}", f"b^{{{G}<new>}}_{{<r>}}") for g, G in
       (("f", "f"), ("i", "i"), ("c", "C"), ("o", "o"))},
}
# deck 004 (004_d00e0ad09de1f318.txt, RNN forward pass): h_t = g1(U x_t + W h_{t-1} + b_a), o_t = g2(V h_t + b_y)
_DECK004 = {
    **_XJTU,
    "W_xh": (r"\mathbf{U}^{<new>}", "u^{<new>}_{<rc>}"), "W_hh": (r"\mathbf{W}^{<new>}", "w^{<new>}_{<rc>}"),
    "W_hy": (r"\mathbf{V}^{<new>}", "v^{<new>}_{<rc>}"), "b_h": (r"\mathbf{b}_{a}^{<new>}", "b^{a<new>}_{<r>}"),
    "a": (r"\mathbf{z}_{<t>}", "z_{<t>,<r>}"), "y": (r"\mathbf{o}_{<t>}", "o_{<t>,<r>}"),
    "t": (r"\mathbf{y}_{<t>}", "y_{<t>,<r>}"), "loss": (r"L_{<t>}", ""), "L": ("L", ""), "eta": (r"\alpha", ""),
    "grad_s": (r"\boldsymbol{\delta}^{o}_{<t>}", r"\delta^{o}_{<t>,<r>}"),
}


def _templates(prof: Profile, cell: str) -> dict:
    return _DECK004 if prof.name == "deck004" and cell == "elman" else _XJTU


def _time(label, shift: int) -> str:
    """A time label moved by ``shift``: 2 → 1, 't' → 't-1', 't+1' → 't'."""
    if isinstance(label, int):
        return str(label + shift)
    base, _, off = label.partition("+") if "+" in label else label.partition("-")
    k = (int(off) if off else 0) * (-1 if "-" in label else 1) + shift
    return base if k == 0 else f"{base}{k:+d}"


def _fill(template: str, t, index=(), new: str = "") -> str:
    out = template if t is None else template.replace("<t-1>", _time(t, -1)).replace("<t>", _time(t, 0))
    return fill(out, 0, tuple(index), new=new)


class _Builder:
    def __init__(self, prof: Profile, cell: str, hidden: int = 0):
        self.prof, self.tpl, self.hidden = prof, _templates(prof, cell), hidden
        self.loss = self.tpl["L"][0]

    def split(self, name: str):
        """(base, time, new) of a quantity name, or None for a name without a template."""
        new = name.endswith("_new")
        base = name[: -len("_new")] if new else name
        if base in self.tpl and base not in ("L", "eta"):
            return base, None, new
        m = _TIMED.fullmatch(base)
        return (m.group(1), int(m.group(2)), new) if m else None

    def quantity(self, base: str, t, new: bool = False) -> str:
        return _fill(self.tpl[base][0], t, (), self.prof.new if new else "")

    def grad(self, base: str, t, index=None, of: str = "") -> str:
        """∂L/∂(base at t), or its element ``index``; ``of`` is that quantity's own LaTeX."""
        own = self.tpl.get("grad_" + base)
        if own is not None:
            return _fill(own[0] if index is None else own[1], t, index or ())
        return fill(GRAD, L=self.loss, v=of)

    def element(self, base: str, t, index, new: bool = False) -> str:
        if base == "hx":   # an element of [h_{t-1}, x_t] is that element of h_{t-1} or of x_t
            n = self.hidden
            return self.element("h", t - 1, index) if index[0] < n else self.element("x", t, (index[0] - n,))
        return _fill(self.tpl[base][1], t, index, self.prof.new if new else "")


def names(derivations, prof: Profile | str = "standard", overrides=()) -> Names:
    """Names for a recurrent derivation in the profile ``prof`` (deck 004's own for an Elman network)."""
    from derive.printing.notation import profile as find_profile
    derivations = list(derivations)
    prof = find_profile(prof) if isinstance(prof, str) else prof
    main = derivations[0]
    steps = [s for d in derivations for s in d.steps]
    cell = "lstm" if any(isinstance(s, Concat) for s in steps) else "elman"
    b = _Builder(prof, cell, next((s.target.shape[0] for s in steps if s.name == "h0"), 0))
    known = {s.name for s in steps} | {a for a, _ in main.aliases}
    known |= {_key(s.name, i) for s in steps if s.target.shape for i in s.target.indices()}
    over = {main.resolve(k): v for k, v in _overrides(overrides, known).items()}
    q: dict[str, str] = {}
    e: dict[str, str] = {}
    for derived in (False, True):
        for s in steps:
            name, grad = s.name, s.name.startswith("grad_")
            if grad != derived:
                continue
            if not grad:
                if name == "loss":
                    q[name] = b.loss
                elif name == LR:
                    q[name] = b.tpl["eta"][0]
                else:
                    base, t, new = b.split(name)
                    q[name] = b.quantity(base, t, new)
                    for idx in s.target.indices() if s.target.shape else []:
                        e[_key(name, idx)] = b.element(base, t, idx, new)
                continue
            of = name[len("grad_"):]
            base, t, _ = b.split(of) or (of, None, False)
            q[name] = b.grad(base, t, None, q[of])
            for idx in s.target.indices() if s.target.shape else []:
                v = fill("{<Q>}_{<r>}", 0, idx, Q=q[of]) if of.startswith("hx") else e[_key(of, idx)]
                e[_key(name, idx)] = b.grad(base, t, idx, v)
        _apply(over, q, e, steps)
    for alias, target in main.aliases:       # deck 004's U, W, V, b_a and o_t name the same quantities
        if target in q:
            q.setdefault(alias, q[target])
    return Names(prof, e, q, frozenset(), q.get("loss", b.loss))


def _generic(b: _Builder, name: str, label) -> str:
    """The LaTeX of a quantity (or its gradient) at a time written as ``label`` ('t', 't+1')."""
    grad = name.startswith("grad_")
    base, t, _ = b.split(name[len("grad_"):] if grad else name)
    tex = b.quantity(base, label) if t is not None else b.quantity(base, None)
    return b.grad(base, label if t is not None else None, None, tex) if grad else tex


# ----------------------------------------------------------------------------- the printer

def _sum(parts: list[str]) -> Terms | str:
    """A sum the renderer may break between its terms."""
    return Terms(tuple(("+", p) for p in parts)) if len(parts) > 1 else parts[0]


def _transpose(tex: str) -> str:
    if tex.endswith(r"\right]"):
        return tex + r"^{\top}"
    from derive.printing.notation import transpose
    return transpose(tex)


class Printer(HandoutPrinter):
    """The handout printer with the recurrent steps' own layouts."""

    def T(self, name: str) -> str:
        return _transpose(self.q(name))

    def _print_RecurrentAffine(self, step) -> Block:
        terms = step.terms
        if self.names.profile.name == "deck004" and [M for M, _ in terms] == ["W_hh", "W_xh"]:
            terms = terms[::-1]      # deck 004 writes U x_t + W h_(t−1) + b_a
        parts = [f"{self.q(M)} {self.q(v)}" for M, v in terms] + [self.q(step.bias)]
        subst = lambda: _sum([f"{self.values_of(M)} {self.values_of(v)}" for M, v in terms] +
                             [self.values_of(step.bias)])
        head = Chain(self.q(step.name), self.matrix_forms(step, _sum(parts), subst))
        cap = caption(f"Time step {step.time}, an affine map, reading ",
                      *_listing([Math(self.q(n)) for n in step.inputs]), ".")
        return Block(cap, (head,) + self.elements(step))

    def _print_TimeActivation(self, step) -> Block:
        act = primitives.ACTIVATIONS[step.activation]
        formula = rf"{act.latex}\left({self.q(step.inputs[0])}\right)"
        head = Chain(self.q(step.name), self.matrix_forms(step, formula, None))
        params = "".join(f", {k} = {v}" for k, v in step.params)
        cap = caption(f"Time step {step.time}, activation {act.words}{params}, element by "
                      "element: ", Math(definition(act, step.params)), ".")
        return Block(cap, (head,) + self.elements(step, self._activation_heads(step, act)))

    def _print_Concat(self, step) -> Block:
        if self.numeric_step(step.target) and self.fits(step.target):
            rhs = (self.value_form(step.target),)
        else:
            rhs = (("=", bmatrix([[self.q(p)] for p in step.parts])),)
        cap = caption(f"Time step {step.time}: the previous hidden state and the input stacked into one vector, "
                      "which every gate reads.")
        return Block(cap, (Chain(self.q(step.name), rhs),))

    def _print_Hadamard(self, step) -> Block:
        formula = _sum([rf"{self.q(u)} \odot {self.q(v)}" for u, v in step.products])
        subst = lambda: _sum([rf"{self.values_of(u)} \odot {self.values_of(v)}" for u, v in step.products])
        head = Chain(self.q(step.name), self.matrix_forms(step, formula, subst))
        cap = caption(f"Time step {step.time}, element-wise products.")
        return Block(cap, (head,) + self.elements(step))

    def _print_StepLoss(self, step) -> Block:
        return Block(caption(f"The loss at time step {step.time}: {primitives.LOSSES[step.loss].words}."),
                     self.elements(step))

    def _print_TotalLoss(self, step) -> Block:
        return Block(caption("The loss of the sequence, the sum over the time steps."),
                     self.elements(step))

    # -- backpropagation through time
    def term(self, step: ThroughTime, term: Term) -> str:
        """One quantity's share of a gradient, in matrix form."""
        g = self.q("grad_" + term.consumer)
        if term.kind == "transpose":
            return f"{self.T(term.operand)} {g}"
        if term.kind == "outer":
            return f"{g} {self.T(term.operand)}"
        if term.kind == "identity":
            return g
        if term.kind == "hadamard":
            return rf"{g} \odot {self.q(term.operand)}"
        if term.kind == "derivative":
            act = primitives.ACTIVATIONS[term.operand]
            return rf"{g} \odot {act.latex}'\left({self.q(step.of)}\right)"
        if term.kind == "select":
            n = step.target.shape[0]
            return rf"\left({g}\right)_{{{term.offset + 1}:{term.offset + n}}}"
        if term.kind == "diag":
            cells = [[str(self.sym(f))] for f in term.factors]
            return rf"{g} \odot {bmatrix(cells)}"
        consumer = self.quantities[term.consumer]
        partial = self.names.partial(self.q(term.consumer), self.q(step.of))
        if not consumer.shape:
            return rf"{g}\, {partial}"
        return rf"\left({partial}\right)^{{\top}} {g}"

    def substituted_terms(self, step: ThroughTime) -> Terms:
        out = []
        for term in step.terms:
            g = self.values_of("grad_" + term.consumer)
            out.append({"transpose": lambda: rf"{self.values_of(term.operand)}^{{\top}} {g}",
                        "outer": lambda: rf"{g} {self.values_of(term.operand)}^{{\top}}",
                        "identity": lambda: g,
                        "hadamard": lambda: rf"{g} \odot {self.values_of(term.operand)}"}[term.kind]())
        return _sum(out)

    def _print_ThroughTime(self, step) -> Block:
        if not step.terms:      # no reader depends on it (a softmax of one output is constant): 0
            cap = caption("Nothing that reads ", Math(self.q(step.of)), " depends on it, so its gradient is 0.")
            return Block(cap, self.elements(step))
        formula = _sum([self.term(step, t) for t in step.terms])
        plain = all(t.kind in ("transpose", "outer", "identity", "hadamard") for t in step.terms) and \
            any(t.kind != "identity" for t in step.terms)     # a copy of one gradient needs no substitution
        vector = bool(step.target.shape)
        shown = self.matrix_forms(step, formula, (lambda: self.substituted_terms(step)) if plain else None) \
            if vector else (("=", formula),)
        readers = _listing([Math(self.q(t.consumer)) for t in step.terms])
        if step.time is None:
            cap = caption(f"The parameter {step.of} is shared by every time step, so its gradient sums the "
                          f"contributions of ", *readers, ".")
        else:
            when = f"Time step {step.time}" if step.time else "The initial state"
            cap = caption(f"{when}: the chain rule sums over what reads ", Math(self.q(step.of)),
                          ": ", *readers, ".")
        derivative = next((t for t in step.terms if t.kind == "derivative"), None)
        if derivative is not None:
            act = primitives.ACTIVATIONS[derivative.operand]
            how = "written with the activation's output" if act.from_output is not None else "by differentiation"
            cap += (f" The local derivative of {act.words} is {how}.",)
        lines = self.elements(step)
        if not vector:                 # a scalar: its element line says it all
            return Block(cap, lines)
        return Block(cap, (Chain(self.q(step.name), shown),) + lines)


# ----------------------------------------------------------------------------- sections

def placed() -> tuple:
    return (Given, RecurrentAffine, TimeActivation, Concat, Hadamard, StepLoss, TotalLoss, Seed, ThroughTime, Update)


def meta(spec, prof: Profile) -> str:
    problem = spec.problem
    if prof.name == "deck004" and problem.cell == "elman":
        return ("Notation: deck 004's recurrent names, h_t = g1(U x_t + W h_(t−1) + b_a) with pre-activation "
                "z_t, output o_t = g2(V h_t + b_y), target y_t; error terms δ_t = ∂L/∂z_t and δ^o_t = ∂L/∂(V h_t "
                "+ b_y); element i of a vector at time t is written h_(t,i).")
    own = "" if prof.name in ("standard", "xjtu", "deck004") else f" ({prof.title} has no recurrent names of its own)"
    if problem.cell == "elman":
        names = ("a_t = W_hh h_(t−1) + W_xh x_t + b_h, h_t = g1(a_t), output s_t = W_hy h_t + b_y, y_t = g2(s_t), "
                 "target t_t; error terms δ_t = ∂L/∂a_t and δ^y_t = ∂L/∂s_t")
    else:
        names = ("the gates' pre-activations z^f_t = W_f [h_(t−1), x_t] + b_f, z^i_t, z^C_t, z^o_t and their error "
                 "terms δ^f_t = ∂L/∂z^f_t, δ^i_t, δ^C_t, δ^o_t; target t_t")
    return f"Notation: the recurrent names of XJTU advanced machine learning (deck 000){own}: {names}; element i of a vector at time t is written " \
           "h_(t,i)."


def _intro(problem) -> str:
    T, n = problem.steps, problem.hidden_size
    if problem.cell == "elman":
        what = (f"An Elman recurrent network (hidden activation {problem.g1.name}) with input width "
                f"{problem.input_size} and hidden width {n}")
    else:
        what = f"An LSTM cell with input width {problem.input_size} and hidden width {n}"
    out = (f", an output layer of width {problem.output_size} (activation {primitives.ACTIVATIONS[problem.g2.name].words})" if problem.output
           else "; the loss reads the hidden state directly")
    loss = (f"the loss ({primitives.LOSSES[problem.loss].words}) summed over the time steps" if problem.loss_at == "every"
            else f"the loss ({primitives.LOSSES[problem.loss].words}) at the last time step only")
    upd = "; one step of gradient descent" if problem.learning_rate is not None else ""
    return f"{what}{out}, unrolled over {T} time step{'s' if T != 1 else ''}; {loss}{upd}."


def _recursions(printer, main: Derivation) -> list[tuple[str, str]]:
    """(lhs, rhs) of the recursions of backpropagation through time, read off the steps, written in t."""
    b = _Builder(printer.names.profile, "lstm" if any(isinstance(s, Concat) for s in main.steps) else "elman")
    rows = []
    for base in ("h", "c"):
        candidates = [s for s in main.steps if isinstance(s, ThroughTime) and b.split(s.of)
                      and b.split(s.of)[0] == base and s.time and s.time > 0]
        if not candidates:
            continue
        step = max(candidates, key=lambda s: (len(s.terms), -s.time))
        rel = lambda name: _rel(b, name, step.time)
        terms = []
        for term in step.terms:
            g = _generic(b, "grad_" + term.consumer, rel(term.consumer))
            operand = ""
            if term.kind in ("transpose", "hadamard", "outer"):     # the operand is a quantity
                timed = b.split(term.operand) and b.split(term.operand)[1] is not None
                operand = _generic(b, term.operand, rel(term.operand)) if timed else printer.q(term.operand)
            terms.append(_generic_term(printer, b, step, term, g, operand))
        lhs = _generic(b, "grad_" + step.of, "t")
        rows.append((lhs, " + ".join(terms)))
    for step in main.steps:     # a shared parameter: one term per time step, summed
        if not (isinstance(step, ThroughTime) and step.time is None and len(step.terms) > 1):
            continue
        kinds = {t.kind for t in step.terms}
        term = step.terms[0]
        g = _generic(b, "grad_" + term.consumer, "t")
        if kinds == {"outer"}:
            v = _generic(b, term.operand, _rel(b, term.operand, b.split(term.consumer)[1]))
            rows.append((printer.q(step.name), rf"\sum_{{t}} {g} {_transpose(v)}"))
        elif kinds == {"identity"}:
            rows.append((printer.q(step.name), rf"\sum_{{t}} {g}"))
    return rows


def _rel(b: _Builder, name: str, t: int) -> str:
    split = b.split(name)
    return _time("t", split[1] - t) if split and split[1] is not None else "t"


def _generic_term(printer, b, step, term, g, operand) -> str:
    if term.kind == "transpose":
        return f"{_transpose(operand)} {g}"
    if term.kind == "hadamard":
        return rf"{g} \odot {operand}"
    if term.kind == "derivative":
        act = primitives.ACTIVATIONS[term.operand]
        return rf"{g} \odot {act.latex}'\left({_generic(b, step.of, 't')}\right)"
    if term.kind == "select":
        return rf"\left({g}\right)_{{1:n}}"
    if term.kind == "identity":
        return g
    partial = printer.names.partial(_generic(b, term.consumer, _rel(b, term.consumer, step.time)),
                                    _generic(b, step.of, "t"))
    consumer = printer.quantities[term.consumer]
    return rf"{g}\, {partial}" if not consumer.shape else rf"\left({partial}\right)^{{\top}} {g}"


def sections(spec, derivations, printer) -> list:
    from derive.printing.sections import Section
    from derive.printing.worked import Group
    main = derivations[0]
    problem = spec.problem
    given = [s for s in main.steps if isinstance(s, Given) and s.role != "param"]
    problem_items = [caption(_intro(problem)), printer.doprint(Group(tuple(given)))]
    params = {s.name: s for s in main.steps if isinstance(s, Given) and s.role == "param"}
    groups = [("W_hh", "W_xh", "b_h")] + [(f"W_{g}", f"b_{g}") for g in "fico"] + [("W_hy", "b_y")]
    for k, group in enumerate(g for g in groups if g[0] in params):   # one row per layer or gate
        block = printer.doprint(Group(tuple(params[n] for n in group)))
        problem_items.append(Block(caption("The parameters, shared by every time step.") if k == 0 else (),
                                   block.chains, columns=True))

    forward = []
    for t in range(1, problem.steps + 1):
        at = [s for s in main.steps if isinstance(s, (RecurrentAffine, TimeActivation, Concat, Hadamard))
              and s.time == t]
        forward.append(caption(f"Time step t = {t}."))
        forward += [printer.doprint(s) for s in at]
    forward += [printer.doprint(s) for s in main.steps if isinstance(s, (StepLoss, TotalLoss))]

    recursions = _recursions(printer, main)
    backward = [caption("Backpropagation through time: the chain rule on the network unrolled over the time steps, "
                        "from the loss back to the first step. Every gradient sums over the quantities that read "
                        "its variable; a hidden state is read by the next time step as well as by its own output, "
                        "so its gradient is a recursion in t.")]
    if recursions:
        backward.append(Table(caption("The recursions, read off the steps below and written for any time step t "
                                      "(at the last step the terms of step t + 1 are absent):"),
                              ("gradient", "", "in terms of time step t"),
                              tuple((Math(lhs), Math("="), Math(rhs)) for lhs, rhs in recursions), ("r", "c", "l")))
    backward += [printer.doprint(s) for s in main.steps if isinstance(s, Seed) or
                 (isinstance(s, ThroughTime) and s.time is not None)]
    shared = [printer.doprint(s) for s in main.steps if isinstance(s, ThroughTime) and s.time is None]
    updates = [s for s in main.steps if isinstance(s, Update)]
    update = [printer.doprint(Group(tuple(updates)))] if updates else []
    return [Section("The problem", tuple(problem_items)), Section("Forward pass through time", tuple(forward)),
            Section("Backpropagation through time", tuple(backward)),
            Section("Gradients of the shared parameters", tuple(shared)),
            Section("Gradient-descent update", tuple(update))]
