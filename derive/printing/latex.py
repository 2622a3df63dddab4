"""LaTeX of derivation steps: a printer that dispatches on the step's class, as SymPy's Printer does.

``HandoutPrinter.doprint(item)`` calls ``_print_<ClassName>`` (walking the class's MRO), so a new
step class needs one new method and nothing else changes.  Every method returns a :class:`Block`:
a caption (our own English, naming the rule and what it reads) and a tuple of :class:`Chain`
rows ``lhs = form = form ≈ value``.  Expressions are printed by :class:`ExprPrinter`, a subclass of
SymPy's ``LatexPrinter`` that writes each element symbol in the notation profile's LaTeX, or, for
the substituted form, as its value rounded for display.  Values are exact or certified
(:mod:`derive.core.evaluate`); only the display rounds them (:mod:`derive.core.rounding`).

Sign conventions (deck 003's δ = −∂E/∂net) are handled here: a quantity the notation prints
negated stands for −(the engine's quantity), in formulas and in numbers alike.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import sympy as sp
from sympy.printing.latex import LatexPrinter

from derive.core import primitives
from derive.core.evaluate import Num
from derive.printing.names import Names
from derive.printing.notation import scalar_name
from derive.core.rounding import DEFAULT_DECIMALS, Shown, show
from derive.core.steps import Activate, Derivation, Given, Quantity, Seed, Step
from derive.printing.worked import (Evaluation, Partial, PathChain, PathSum, Product, Substitution,
    softmax_derivation, step_inputs_of, substitute)


# ----------------------------------------------------------------------------- display records

@dataclass(frozen=True)
class Math:
    """Inline maths inside a caption."""

    tex: str


Caption = tuple  # of str (prose, escaped by the writer) and Math pieces


@dataclass(frozen=True)
class Terms:
    """A sum printed term by term, so a long one can be broken across lines: ((sign, tex), ...)."""

    terms: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        out = self.terms[0][1] if self.terms[0][0] == "+" else "-" + self.terms[0][1]
        return out + "".join(f" {s} {t}" for s, t in self.terms[1:])


@dataclass(frozen=True)
class Chain:
    """``lhs rel₁ form₁ rel₂ form₂ ...``; rel is ``=``, ``\\approx``, ``\\in`` ..."""

    lhs: str
    rhs: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Block:
    caption: Caption
    chains: tuple[Chain, ...]
    columns: bool = False    # short chains that may stand side by side (given values)


def caption(*pieces) -> Caption:
    return tuple(pieces)


@dataclass(frozen=True)
class Code:
    """Text shown as code: a formula as the spec file writes it."""

    text: str


@dataclass(frozen=True)
class Table:
    caption: Caption
    header: tuple
    rows: tuple[tuple, ...]        # cells: prose (str), Math or Code
    columns: tuple[str, ...]       # LaTeX column types
    groups: tuple = ()             # a group key per row: a page may break only between groups (none: anywhere)


# ----------------------------------------------------------------------------- expressions

_DIGITS = re.compile(r"\d+")
_LONG_INDEX = re.compile(r"\d{2,}")


class ExprPrinter(LatexPrinter):
    """SymPy's LaTeX printer with the notation's symbols, or their displayed values."""

    def __init__(self, names: Names, values: Mapping[str, str] | None = None, times: str = r"\cdot"):
        mul = {r"\cdot": "dot", r"\times": "times"}.get(times, "dot") if values is not None else None
        super().__init__({"mul_symbol": mul, "fold_short_frac": False})
        self.names, self.values = names, values

    def _print_Symbol(self, expr, style="plain"):
        if self.values is not None and expr.name in self.values:
            return self.values[expr.name]
        try:
            return self.names(expr.name)
        except KeyError:
            return scalar_name(expr.name) if expr.name.replace("_", "").isalnum() else super()._print_Symbol(expr)

    def _print_exp(self, expr, exp=None):
        arg = expr.args[0]
        inner = self.values[arg.name] if isinstance(arg, sp.Symbol) and self.values is not None \
            and arg.name in self.values else self._print(arg)
        if isinstance(arg, sp.Symbol) and inner.startswith(r"\left(") and inner.endswith(r"\right)"):
            inner = inner[len(r"\left("):-len(r"\right)")]
        tex = rf"{primitives.FUNCTIONS['exp'].latex}\left({inner}\right)"
        return tex if exp is None else rf"{tex}^{{{exp}}}"

    def _as_ordered_terms(self, expr, order=None):
        """SymPy's order of terms, with indices compared as numbers (x₂ before x₁₀, not after)."""
        syms = expr.free_symbols
        if not any(_LONG_INDEX.search(s.name) for s in syms):
            return super()._as_ordered_terms(expr, order)
        padded = {s: sp.Symbol(_DIGITS.sub(lambda m: m.group().zfill(6), s.name), **s.assumptions0) for s in syms}
        back = {v: k for k, v in padded.items()}
        return [t.xreplace(back) for t in super()._as_ordered_terms(expr.xreplace(padded), order)]

    def _print_Piecewise(self, expr):
        """``1`` where a condition holds, else ``0``, as the indicator ``𝟏[condition]``."""
        if len(expr.args) == 2 and expr.args[0].expr == 1 and expr.args[1] == (0, True):
            return rf"\mathbf{{1}}\left[{self._print(expr.args[0].cond)}\right]"
        return super()._print_Piecewise(expr)

    def _print_ITE(self, expr):
        """SymPy's ITE(a, b, c) of a nested max/min: (a ∧ b) ∨ (¬a ∧ c), in the usual connectives."""
        a, b, c = (self._print(x) for x in expr.args)
        return rf"\left({a} \wedge {b}\right) \vee \left(\neg\left({a}\right) \wedge {c}\right)"

    def terms(self, expr: sp.Expr) -> Terms | str:
        """The printed terms of a sum, in the order ``_print_Add`` prints them."""
        if not isinstance(expr, sp.Add):
            return self.doprint(expr)
        out = []
        for i, term in enumerate(self._as_ordered_terms(expr)):
            sign = "+"
            if i > 0 and term.could_extract_minus_sign():
                sign, term = "-", -term
            tex = self._print(term)
            if self._needs_add_brackets(term):
                tex = rf"\left({tex}\right)"
            out.append((sign, tex))
        return Terms(tuple(out))


def bmatrix(rows: Sequence[Sequence[str]]) -> str:
    body = r" \\ ".join(" & ".join(row) for row in rows)
    return rf"\begin{{bmatrix}} {body} \end{{bmatrix}}"


def negate(v: Num) -> Num:
    return Num(-v.enclosure, None if v.exact is None else -v.exact)


# ----------------------------------------------------------------------------- the printer core

class _NoNames:
    """Names for printing registry definitions: every symbol by its own name."""

    def __call__(self, name: str) -> str:
        raise KeyError(name)


class PrinterCore:
    """Dispatch, numbers, and the forms every step method uses."""

    def __init__(self, names: Names, derivations: Sequence[Derivation], values: Mapping[sp.Symbol, Num] | None = None,
                 decimals: int = DEFAULT_DECIMALS, max_matrix: int = 8):
        self.names, self.values = names, values
        self.decimals, self.max_matrix = decimals, max_matrix
        self.derivations = tuple(derivations)
        steps = [s for d in self.derivations for s in d.steps]
        self.quantities: dict[str, Quantity] = {s.name: s.target for s in steps}
        self.activations = {s.name: s.activation for s in steps if isinstance(s, Activate)}
        self.symbolic = ExprPrinter(names)
        self.numeric = ExprPrinter(names, _NumberTexts(self), names.profile.times) if values is not None else None
        self._shown: dict[sp.Symbol, Shown] = {}

    def doprint(self, item) -> Block:
        """The block of ``item``, by the first ``_print_<Class>`` along its class's MRO."""
        for cls in type(item).__mro__:
            method = getattr(self, f"_print_{cls.__name__}", None)
            if method is not None:
                return method(item)
        raise TypeError(f"no LaTeX printer for {type(item).__name__}")

    # -- numbers
    def shown(self, sym: sp.Symbol) -> Shown:
        if sym not in self._shown:
            v = self.values[sym]
            self._shown[sym] = show(negate(v) if self.names.sign(sym.name) < 0 else v, self.decimals)
        return self._shown[sym]

    def has_values(self, syms) -> bool:
        return self.values is not None and all(s in self.values for s in syms)

    def rel(self, syms) -> str:
        return "=" if all(self.shown(s).exact for s in syms) else r"\approx"

    # -- expressions
    def display(self, expr: sp.Expr, target: str | None = None) -> sp.Expr:
        """The expression in printed quantities: each negated one stands for minus the engine's."""
        flip = {s: -s for s in expr.free_symbols if self.names.sign(s.name) < 0}
        out = expr.xreplace(flip) if flip else expr
        return -out if target is not None and self.names.sign(target) < 0 else out

    def sym(self, expr: sp.Expr, target: str | None = None):
        return self.symbolic.terms(self.display(expr, target))

    def num(self, expr: sp.Expr, target: str | None = None):
        return self.numeric.terms(self.display(expr, target))

    def q(self, name: str) -> str:
        return self.names.quantities[name]

    def e(self, sym: sp.Symbol | str) -> str:
        return self.names(sym if isinstance(sym, str) else sym.name)

    def number(self, sym: sp.Symbol) -> str:
        return self.numeric.doprint(sym)

    # -- matrices
    def matrix_of(self, q: Quantity, cell, transpose: bool = False) -> str:
        cells = [cell(s) for s in q.symbols()]
        if len(q.shape) == 2:
            rows, cols = q.shape
            grid = [cells[r * cols:(r + 1) * cols] for r in range(rows)]
            return bmatrix([list(c) for c in zip(*grid)] if transpose else grid)
        return bmatrix([[c] for c in cells])

    def values_of(self, q: Quantity | str, transpose: bool = False) -> str:
        q = self.quantities[q] if isinstance(q, str) else q
        return self.matrix_of(q, lambda s: self.shown(s).text, transpose)

    def fits(self, q: Quantity) -> bool:
        return all(d <= self.max_matrix for d in q.shape)

    def numeric_step(self, q: Quantity) -> bool:
        return self.has_values(q.symbols())

    # -- element lines
    def element(self, sym: sp.Symbol, expr: sp.Expr, head: tuple[str, str] | None = None) -> Chain:
        """``e = head = expr = (numbers) ≈ value``, leaving out forms that would repeat.

        ``head`` is a (symbolic, substituted) pair such as (``σ(z₁)``, ``σ(2.731)``) that stands in
        for the expression.  The numbers come from the :class:`Substitution` and :class:`Evaluation`
        records of the element.
        """
        work = substitute(sym, expr, self.values or {})
        rhs: list[tuple[str, object]] = []
        if head is not None:
            rhs.append(("=", head[0]))
        elif expr != sym and not (work and not expr.free_symbols):
            rhs.append(("=", self.sym(expr, sym.name)))
        if work is not None:
            sub, ev = work
            if head is not None:
                rhs.append(("=", head[1]))
            elif sub.values and not isinstance(expr, sp.Symbol):
                rhs.append(("=", self.substituted(sub)))
            value = self.evaluated(ev)
            if not rhs or str(rhs[-1][1]) != value.text:
                rhs.append(("=" if value.exact else r"\approx", value.text))
        return Chain(self.e(sym), tuple(rhs))

    def substituted(self, sub: Substitution):
        """The expression of a substitution with its values as displayed (negative ones bracketed)."""
        texts = {}
        for s, v in sub.values:
            text = show(negate(v) if self.names.sign(s.name) < 0 else v, self.decimals).text
            texts[s.name] = rf"\left({text}\right)" if text.startswith("-") else text
        printer = ExprPrinter(self.names, texts, self.names.profile.times)
        return printer.terms(self.display(sub.expr, sub.target.name))

    def evaluated(self, ev: Evaluation) -> Shown:
        v = ev.value
        return show(negate(v) if self.names.sign(ev.target.name) < 0 else v, self.decimals)

    def elements(self, step: Step, heads=None) -> tuple[Chain, ...]:
        """One line per element; for a large quantity the first few, then a row of dots."""
        heads = heads or [None] * step.target.size
        items = list(zip(step.items(), heads))
        shown = items if len(items) <= 3 * self.max_matrix else items[: self.max_matrix]
        lines = tuple(self.element(s, e, h) for (s, e), h in shown)
        return lines if len(shown) == len(items) else lines + (Chain(r"\vdots", ()),)

    def value_form(self, q: Quantity, transpose: bool = False) -> tuple[str, str]:
        """(relation, matrix of displayed values) of a whole quantity; a scalar's value for shape ()."""
        if not q.shape:
            return self.rel(q.symbols()), self.shown(q.symbol()).text
        return self.rel(q.symbols()), self.values_of(q, transpose)

    def matrix_forms(self, step: Step, formula: str, substituted=None) -> tuple:
        """``formula = (matrices written out) ≈ (values)``: the quantity-level chain of a step."""
        rhs = [("=", formula)]
        if self.numeric_step(step.target) and self.fits(step.target):
            reads = [self.quantities[n] for n in step.inputs if n in self.quantities]
            if substituted is not None and all(self.fits(q) for q in reads):
                rhs.append(("=", substituted()))
            rhs.append(self.value_form(step.target))
        return tuple(rhs)

    def expression_forms(self, step: Step, exprs=None, first: str | None = None, transpose=False) -> Chain:
        """``lhs = first = [expressions] = [numbers] ≈ [values]``, for element-wise steps."""
        q = step.target
        exprs = dict(zip(q.symbols(), exprs or step.exprs))
        cells = lambda fn: self.matrix_of(q, lambda s: str(fn(exprs[s], s.name)), transpose)
        rhs = [("=", first)] if first else []
        free = set().union(*(e.free_symbols for e in exprs.values()))
        numeric = self.numeric_step(q) and self.has_values(free)
        if free or not numeric:        # constants (the identity's g' = 1) are shown once, as values
            rhs.append(("=", cells(self.sym)))
        if numeric:
            if free:
                rhs.append(("=", cells(self.num)))
            rhs.append(self.value_form(q, transpose))
        return Chain(self.q(q.name), tuple(rhs))


class _NumberTexts(Mapping):
    """Symbol name → the text of its displayed value, parenthesised when negative (for substitution)."""

    def __init__(self, printer: PrinterCore):
        self.p = printer
        self.by_name = {s.name: s for s in printer.values}

    def __getitem__(self, name: str) -> str:
        text = self.p.shown(self.by_name[name]).text
        return rf"\left({text}\right)" if text.startswith("-") else text

    def __contains__(self, name) -> bool:
        return name in self.by_name

    def __iter__(self):
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)


def _dims(shape: tuple[int, ...]) -> str:
    return r"\mathbb{R}" if not shape else r"\mathbb{R}^{%s}" % r" \times ".join(map(str, shape))


def _signed(sign: int, tex: str) -> str:
    return tex if sign > 0 else f"-{tex}"


def _index(q: Quantity, sym: sp.Symbol) -> tuple[int, ...]:
    return q.indices()[q.symbols().index(sym)]


# ----------------------------------------------------------------------------- the step printer

class HandoutPrinter(PrinterCore):
    """``_print_<Class>`` for every step of :mod:`derive.core.steps` and every record of :mod:`derive.printing.worked`."""

    # -- any step without a printer of its own (a step class added later)
    def _print_Step(self, step) -> Block:
        """The rule in words, what it reads, and every element worked out: correct for any step, if plain."""
        words = step.rule.replace("_", " ").capitalize()
        reads = [Math(self.q(n)) if n in self.names.quantities else n for n in step.inputs]
        cap = caption(f"{words}, reading ", *_listing(reads), ".") if reads else caption(f"{words}.")
        return Block(cap, self.elements(step))

    # -- given values
    def _print_Given(self, step) -> Block:
        q = step.target
        if self.numeric_step(q) and not self.fits(q):
            return Block(caption("Given values."), self.elements(step))
        if self.numeric_step(q):
            form = self.value_form(q) if q.shape else (self.rel([q.symbol()]), self.shown(q.symbol()).text)
            return Block(caption("Given values."), (Chain(self.q(q.name), (form,)),))
        rel, form = (">", "0") if step.role == "hyper" else (r"\in", _dims(q.shape))
        return Block(caption("Given values."), (Chain(self.q(q.name), ((rel, form),)),))

    # -- forward pass of a layered network
    def _affine_formula(self, inputs: Sequence[str]) -> str:
        W, h, *b = inputs
        return f"{self.q(W)} {self.q(h)}" + (f" + {self.q(b[0])}" if b else "")

    def _print_Affine(self, step) -> Block:
        W, h, *b = step.inputs
        subst = lambda: f"{self.values_of(W)} {self.values_of(h)}" + (f" + {self.values_of(b[0])}" if b else "")
        head = Chain(self.q(step.name), self.matrix_forms(step, self._affine_formula(step.inputs), subst))
        reads = [Math(self.q(n)) for n in step.inputs]
        cap = caption(f"Layer {step.layer}, pre-activation: the affine map, reading ",
                      *_listing(reads), ".")
        return Block(cap, (head,) + self.elements(step))

    def _activation_heads(self, step, act) -> list:
        if act.vector:
            return None
        heads = []
        for s in self.quantities[step.inputs[0]].symbols():
            num = self.shown(s).text if self.has_values([s]) else None
            heads.append((rf"{act.latex}\left({self.e(s)}\right)", rf"{act.latex}\left({num}\right)"))
        return heads

    def _print_Activate(self, step) -> Block:
        act = primitives.ACTIVATIONS[step.activation]
        z = step.inputs[0]
        formula = rf"{act.latex}\left({self.q(z)}\right)"
        head = Chain(self.q(step.name), self.matrix_forms(step, formula, None))
        params = "".join(f", {k} = {v}" for k, v in step.params)
        cap = caption(f"Layer {step.layer}, activation {act.words}{params}, element by element: ",
                      Math(definition(act, step.params)), ".")
        return Block(cap, (head,) + self.elements(step, self._activation_heads(step, act)))

    def _print_Probabilities(self, step) -> Block:
        act = primitives.ACTIVATIONS["softmax"]
        formula = rf"{act.latex}\left({self.q(step.inputs[0])}\right)"
        head = Chain(self.q(step.name), self.matrix_forms(step, formula, None))
        cap = caption("The probabilities the loss reads from the logits (rule: softmax_probabilities): ",
                      Math(definition(act)), ".")
        return Block(cap, (head,) + self.elements(step))

    def _print_LossValue(self, step) -> Block:
        return Block(caption(f"The loss: {primitives.LOSSES[step.loss].words}."), self.elements(step))

    # -- backward pass of a layered network
    def _print_OutputGradient(self, step) -> Block:
        loss = primitives.LOSSES[step.loss]
        cap = caption(f"Gradient of the loss with respect to the output: "
                      f"the derivative of {loss.words}, element by element.")
        if step.raw is None:
            return Block(cap, (self.expression_forms(step),))
        raw = self.expression_forms(step, step.raw)
        cap += (" It simplifies when ", Math(step.assumption), ".")
        return Block(cap, (Chain(raw.lhs, raw.rhs[:1]), self.expression_forms(step)))

    def _print_LocalDerivative(self, step) -> Block:
        act = primitives.ACTIVATIONS[step.activation]
        how = "written with the layer's output" if step.form == "output" else "by differentiating its definition"
        cap = caption(f"Layer {step.layer}, local derivative of {act.words}, {how}.")
        transpose = len(step.target.shape) == 2 and self.names.profile.layout == "denominator"
        if transpose:
            cap += (" In denominator layout this matrix is the transpose of the numerator-layout Jacobian.",)
        return Block(cap, (self.expression_forms(step, transpose=transpose),))

    def _sign(self, *names: str) -> int:
        out = 1
        for n in names:
            out *= self.names.sign(n)
        return out

    def _hadamard(self, step, a: str, b: str) -> Chain:
        sign = self._sign(step.name, a, b)
        formula = _signed(sign, rf"{self.q(a)} \odot {self.q(b)}")
        subst = lambda: _signed(sign, rf"{self.values_of(a)} \odot {self.values_of(b)}")
        return Chain(self.q(step.name), self.matrix_forms(step, formula, subst))

    def _jacobian_product(self, step, jac: str, grad: str) -> Chain:
        """Jᵀ g in numerator layout, (∂y/∂z) ∂L/∂y in denominator layout: the same numbers."""
        sign = self._sign(step.name, grad)
        if self.names.profile.layout == "denominator":
            formula = f"{self.q(jac)} {self.q(grad)}"
            subst = lambda: f"{self.values_of(jac, True)} {self.values_of(grad)}"
        else:
            formula = f"{self.names.transpose(jac)} {self.q(grad)}"
            subst = lambda: rf"{self.values_of(jac)}^{{\top}} {self.values_of(grad)}"
        return Chain(self.q(step.name), self.matrix_forms(step, _signed(sign, formula),
                                                          lambda: _signed(sign, subst())))

    def _print_DeltaOutput(self, step) -> Block:
        cap = caption("Error term of the output layer: the output gradient times the "
                      "local derivative.")
        if step.jacobian:
            jac, grad = step.inputs
            return Block(cap, (self._jacobian_product(step, jac, grad),))
        return Block(cap, (self._hadamard(step, *step.inputs),))

    def _print_DeltaHidden(self, step) -> Block:
        l = step.layer
        cap = caption(f"Layer {l}, error term: the δ recursion, the error sent back "
                      "times the local derivative.")
        if step.jacobian:
            jac, grad = step.inputs
            return Block(cap, (self._jacobian_product(step, jac, grad),))
        up, gp = step.inputs
        chain = self._hadamard(step, up, gp)
        W, delta = f"W{l + 1}", f"delta{l + 1}"
        if W in self.quantities and delta in self.quantities:
            rec = _signed(self._sign(step.name, delta),
                          rf"\left({self.names.transpose(W)} {self.q(delta)}\right) \odot {self.q(gp)}")
            chain = Chain(chain.lhs, (("=", rec),) + chain.rhs)
        return Block(cap, (chain,))

    def _print_SoftmaxCrossEntropy(self, step) -> Block:
        derivation = next(d for d in self.derivations if step.name in d)
        return self.doprint(softmax_derivation(step, derivation))

    def _print_BackError(self, step) -> Block:
        W, delta = step.inputs
        sign = self._sign(step.name, delta)
        formula = _signed(sign, f"{self.names.transpose(W)} {self.q(delta)}")
        subst = lambda: _signed(sign, rf"{self.values_of(W)}^{{\top}} {self.values_of(delta)}")
        cap = caption(f"Error sent back to layer {step.layer}: the transposed weights times "
                      "the next layer's error term.")
        head = Chain(self.q(step.name), self.matrix_forms(step, formula, subst))
        return Block(cap, (head,) + self.elements(step))

    def _print_WeightGradient(self, step) -> Block:
        delta, h = step.inputs
        sign = self._sign(step.name, delta)
        formula = _signed(sign, f"{self.q(delta)} {self.names.transpose(h)}")
        subst = lambda: _signed(sign, rf"{self.values_of(delta)} {self.values_of(h)}^{{\top}}")
        cap = caption(f"Layer {step.layer}, gradient of the weights: the outer product "
                      "of the error term and the layer's input.")
        chain = Chain(self.q(step.name), self.matrix_forms(step, formula, subst))
        if not self.numeric_step(step.target) and self.fits(step.target):
            q = step.target
            cells = self.matrix_of(q, lambda s: str(self.sym(step.expr(_index(q, s)), s.name)))
            chain = Chain(chain.lhs, chain.rhs + (("=", cells),))
        return Block(cap, (chain,))

    def _print_BiasGradient(self, step) -> Block:
        (delta,) = step.inputs
        rhs = [("=", _signed(self._sign(step.name, delta), self.q(delta)))]
        if self.numeric_step(step.target) and self.fits(step.target):
            rhs.append(self.value_form(step.target))
        cap = caption(f"Layer {step.layer}, gradient of the biases: the error term.")
        return Block(cap, (Chain(self.q(step.name), tuple(rhs)),))

    # -- a mini-batch's mean
    def _print_BatchMean(self, step) -> Block:
        m = len(step.inputs)
        cap = caption(f"The mean over the mini-batch of {m} samples, reading ",
                      *_listing([Math(self.q(n)) for n in step.inputs]), ".")
        if not step.target.shape:
            return Block(cap, (self.element(step.target.symbol(), step.exprs[0]),))
        formula = rf"\frac{{1}}{{{m}}}\left({' + '.join(self.q(n) for n in step.inputs)}\right)"
        subst = lambda: rf"\frac{{1}}{{{m}}}\left({' + '.join(self.values_of(n) for n in step.inputs)}\right)"
        return Block(cap, (Chain(self.q(step.name), self.matrix_forms(step, formula, subst)),))

    # -- one step of gradient descent, and the forward pass again
    def _print_Update(self, step) -> Block:
        p, lr, g = step.inputs
        cap = caption("One step of gradient descent: ",
                      Math(rf"\theta \leftarrow \theta - {self.q(lr)}\,\partial {self.names.loss}/\partial\theta"), ".")
        if not step.target.shape:
            return Block(cap, (self.element(step.target.symbol(), step.exprs[0]),))
        formula = f"{self.q(p)} - {self.q(lr)} {self.q(g)}"
        eta = self.quantities[lr].symbol()
        subst = lambda: f"{self.values_of(p)} - {self.number(eta)} {self.values_of(g)}"
        return Block(cap, (Chain(self.q(step.name), self.matrix_forms(step, formula, subst)),))

    def _print_Recompute(self, step) -> Block:
        cap = caption("The forward pass again, with the updated parameters.")
        if not step.target.shape:
            return Block(cap, (self.element(step.target.symbol(), step.exprs[0]),))
        if step.of.startswith("z"):
            formula = self._affine_formula(step.inputs)
        else:
            act = primitives.ACTIVATIONS[self.activations[step.of]]
            formula = rf"{act.latex}\left({self.q(step.inputs[0])}\right)"
        return Block(cap, (Chain(self.q(step.name), self.matrix_forms(step, formula)),))

    # -- scalar graphs
    def _print_Node(self, step) -> Block:
        act = primitives.ACTIVATIONS.get(step.op)
        sym, expr = step.target.symbol(), step.exprs[0]
        head = None
        if act is not None and not act.vector and len(step.args) == 1:
            arg = sp.Symbol(step.args[0], real=True)
            num = self.shown(arg).text if self.has_values([arg]) else None
            head = (rf"{act.latex}\left({self.e(arg)}\right)", rf"{act.latex}\left({num}\right)")
        return Block(caption("The forward pass, node by node."), (self.element(sym, expr, head),))

    def _print_Seed(self, step) -> Block:
        return Block(caption("The backward pass starts at the loss."),
                     (Chain(self.q(step.name), (("=", "1"),)),))

    def _print_ChainRule(self, step) -> Block:
        """∂L/∂v = Σ_c ∂L/∂c ∂c/∂v; the factor ∂L/∂L = 1 of the loss's own inputs is left out."""
        prefix = step.name[: len(step.name) - len(step.of)]
        seeds = {s.target.symbol() for d in self.derivations for s in d.steps if isinstance(s, Seed)}
        chain = self.element(step.target.symbol(), step.exprs[0].xreplace({s: sp.S.One for s in seeds}))
        if step.terms:
            upstream = lambda c: "" if sp.Symbol(prefix + c, real=True) in seeds else self.e(prefix + c) + " "
            partials = Terms(tuple(("+", upstream(c) + self.names.partial(self.e(c), self.e(step.of)))
                                   for c, _ in step.terms))
            if str(partials) != chain.lhs:
                chain = Chain(chain.lhs, (("=", partials),) + chain.rhs)
        L = self.names.loss
        cap = caption("The backward pass, node by node: ",
                      Math(rf"\frac{{\partial {L}}}{{\partial v}} = \sum_{{c}} \frac{{\partial {L}}}{{\partial c}}\,"
                           r"\frac{\partial c}{\partial v}"), " over the nodes c that read v.")
        return Block(cap, (chain,))

    # -- perceptrons (derive/perceptron.py)
    def _print_PerceptronNet(self, step) -> Block:
        """net = W(t−1)ᵀ X for a weight vector, net = W x − T for a layer's weight matrix."""
        W, x, *T = step.inputs
        vector = len(self.quantities[W].shape) == 1
        product = f"{self.names.transpose(W)} {self.q(x)}" if vector else f"{self.q(W)} {self.q(x)}"
        formula = product + (f" - {self.q(T[0])}" if T else "")
        subst = lambda: (rf"{self.values_of(W)}^{{\top}} {self.values_of(x)}" if vector else
                         f"{self.values_of(W)} {self.values_of(x)}") + (f" - {self._value_text(T[0])}" if T else "")
        cap = caption("The weighted sum of the unit's inputs" +
                      (", the threshold subtracted." if T else "."))
        return Block(cap, (Chain(self.q(step.name), self.matrix_forms(step, formula, subst)),))

    def _print_PerceptronOutput(self, step) -> Block:
        act = primitives.ACTIVATIONS[step.activation]
        cap = caption(f"The unit's output, {act.words} of the weighted sum: ",
                      Math(definition(act)), ".")
        return Block(cap, self.elements(step, self._activation_heads(step, act)))

    def _print_PerceptronUpdate(self, step) -> Block:
        W, lr, d, o, X = step.inputs
        formula = rf"{self.q(W)} + {self.q(lr)} \left({self.q(d)} - {self.q(o)}\right) {self.q(X)}"
        num = self._value_text
        subst = lambda: rf"{self.values_of(W)} + {num(lr)} \left({num(d)} - {num(o)}\right) {self.values_of(X)}"
        cap = caption("The perceptron learning rule: ",
                      Math(r"W \leftarrow W + \eta\,(d - o)\,X"), ", no change when the output is the desired one.")
        return Block(cap, (Chain(self.q(step.name), self.matrix_forms(step, formula, subst)),))

    def _value_text(self, name: str) -> str:
        """A quantity's displayed value inside a substituted formula: a matrix, or a number (bracketed if negative)."""
        q = self.quantities[name]
        return self.values_of(q) if q.shape else self.number(q.symbol())

    def _print_PassErrors(self, step) -> Block:
        cap = caption(f"Pass {step.epoch} over the samples: the number of presentations whose output differs from "
                      "the desired one.")
        return Block(cap, self.elements(step))

    def _print_Converged(self, step) -> Block:
        cap = caption("Training stops after the first pass without an error: the number of "
                      "passes made.")
        return Block(cap, self.elements(step))

    # -- symbolic matrix graphs (derive/matrices.py)
    def _print_MatrixNode(self, step) -> Block:
        return Block(caption(f"The node {step.name} = {step.text}, element by element."),
                     self.elements(step))

    def _print_MatrixGradient(self, step) -> Block:
        L = self.names.loss
        cap = caption(f"The gradient with respect to {step.of}, element by element: ",
                      Math(rf"\frac{{\partial {L}}}{{\partial v}} = \sum_{{c}} \frac{{\partial {L}}}{{\partial c}}\,"
                           r"\frac{\partial c}{\partial v}"), " over the elements c that read v.")
        return Block(cap, self.elements(step))

    # -- records of derive.printing.worked
    def _print_Substitution(self, sub) -> Block:
        return Block(caption("The values substituted."),
                     (Chain(self.e(sub.target), (("=", self.sym(sub.expr, sub.target.name)),
                                                 ("=", self.substituted(sub)))),))

    def _print_Evaluation(self, ev) -> Block:
        value = self.evaluated(ev)
        return Block(caption("The value."),
                     (Chain(self.e(ev.target), (("=" if value.exact else r"\approx", value.text),)),))

    def _print_Group(self, group) -> Block:
        blocks = [self.doprint(s) for s in group.steps]
        columns = all(isinstance(s, Given) for s in group.steps)
        return Block(blocks[0].caption if blocks else (), tuple(c for b in blocks for c in b.chains), columns)

    def _print_SoftmaxDerivation(self, work) -> Block:
        step = work.step
        h, t = step.inputs
        sign = self._sign(step.name)
        # the Jacobian and the output gradient it multiplies, as the raw product names them
        # (gprime2 and grad_y; gprime2_s1 and grad_y_s1 for a mini-batch's sample 1)
        read = step_inputs_of(step.raw)
        jac, grad = (next(n for n in read if n.startswith(p)) for p in ("gprime", "grad_y"))
        if self.names.profile.layout == "denominator":
            rule = f"{self.q(jac)} {self.q(grad)}"
        else:
            rule = f"{self.names.transpose(jac)} {self.q(grad)}"
        result = f"{self.q(h)} - {self.q(t)}" if sign > 0 else f"{self.q(t)} - {self.q(h)}"
        head = Chain(self.q(step.name), (("=", _signed(sign, rule)), ("=", result)) +
                     ((self.value_form(step.target),) if self.numeric_step(step.target) else ()))
        rows = []
        for i, s in enumerate(step.target.symbols()):
            raw = self.sym(step.raw[i], s.name)
            written = Terms(tuple(("+", rf"{self._factor(j)} {self.names.profile.times} {self._factor(g)}")
                                  for j, g in work.written[i]))
            forms = [("=", raw), ("=", written)] + [("=", self.sym(f[i], s.name)) for f in work.forms]
            if self.numeric_step(step.target):
                forms += [("=", self.num(step.exprs[i], s.name)), (self.rel([s]), self.shown(s).text)]
            rows.append(Chain(self.e(s), tuple(forms)))
        cap = caption("Softmax with cross-entropy: the Jacobian product, with the "
                      "softmax Jacobian and the loss gradient substituted, expanded, collected, and simplified "
                      "using ", Math(step.assumption), ".")
        return Block(cap, (head, *rows))

    def _print_PathChain(self, chain) -> Block:
        target = chain.target
        of = target.name[len(target.name) - len(_of(chain)):]
        lhs = self.e(target)
        rhs = []
        plain = self.names.partial(self.names.loss, self.e(of))
        if plain != lhs:
            rhs.append(("=", plain))
        rhs.append(("=", self._tree(chain.tree, lambda p: self.names.partial(self.e(p.of), self.e(p.wrt)))))
        rhs.append(("=", self._tree(chain.tree, lambda p: self._factor(p.local))))
        if self.has_values([target]) and self.has_values(_locals(chain.tree)):
            rhs.append(("=", self._tree(chain.tree, lambda p: self._factor(p.local, numeric=True))))
            value = self.shown(target)
            rhs.append(("=" if value.exact else r"\approx", value.text))
        cap = caption("The gradient along every path from the parameter to the loss, a product of local "
                      "derivatives per path, factored where paths share a stretch.")
        return Block(cap, (Chain(lhs, tuple(rhs)),))

    def _factor(self, expr: sp.Expr, numeric: bool = False) -> str:
        """A factor of a product in print: parenthesised when it is a sum or carries a minus sign."""
        tex = str(self.num(expr) if numeric else self.sym(expr))
        bare = isinstance(expr, sp.Add) or expr.could_extract_minus_sign()
        return rf"\left({tex}\right)" if bare else tex

    def _tree(self, tree, leaf, top: bool = True):
        """A factored path tree in print; a sum at the top or heading the top product stays breakable."""
        times = f" {self.names.profile.times} "
        if isinstance(tree, Partial):
            return leaf(tree)
        if isinstance(tree, PathSum):
            terms = [str(self._tree(t, leaf, False)) for t in tree.terms]
            return Terms(tuple(("+", t) for t in terms)) if top else rf"\left({' + '.join(terms)}\right)"
        first, rest = tree.factors[0], tree.factors[1:]
        tail = times.join(str(self._tree(f, leaf, False)) for f in rest)
        if top and isinstance(first, PathSum):
            terms = [str(self._tree(t, leaf, False)) for t in first.terms]
            terms[0], terms[-1] = r"\bigl(" + terms[0], terms[-1] + r"\bigr)" + times + tail
            return Terms(tuple(("+", t) for t in terms))
        return times.join(str(self._tree(f, leaf, False)) for f in tree.factors)


def _of(chain: PathChain) -> str:
    tree = chain.tree
    while not isinstance(tree, Partial):
        tree = tree.factors[-1] if isinstance(tree, Product) else tree.terms[0]
    return tree.wrt


def _locals(tree) -> set:
    if isinstance(tree, Partial):
        return tree.local.free_symbols
    parts = tree.factors if isinstance(tree, Product) else tree.terms
    return set().union(*(_locals(p) for p in parts))


def _listing(items: list) -> list:
    out = []
    for i, item in enumerate(items):
        if i:
            out.append(" and " if i == len(items) - 1 else ", ")
        out.append(item)
    return out


def definition(act, params=()) -> str:
    """The registry's definition of an activation, ``g(x) = …``."""
    if act.vector:
        return rf"{act.latex}(\mathbf{{x}})_i = \frac{{\exp(x_i)}}{{\sum_j \exp(x_j)}}"
    x = sp.Symbol("x", real=True)
    expr = act.define(x, **dict(params))
    if isinstance(expr, sp.Function) and expr.args == (x,):   # tanh is defined as itself: show its formula
        expr = expr.rewrite(sp.exp)
    return rf"{act.latex}(x) = {ExprPrinter(_NoNames()).doprint(expr)}"
