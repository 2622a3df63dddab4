"""A derivation as a straight-line program: one assignment per element, in the derivation's order.

``build`` turns the steps of a derivation into statements ``symbol := expression`` with the
stable forms put in (activations from the registry's stable forms, the rewrites of
``kernels.stable`` everywhere else) and every ``Piecewise`` lifted into a small helper function,
so that common-subexpression elimination never hoists work out of an untaken branch.  ``emit``
prints the statements needed for some targets, through ``sympy.cse``, as lines of Python.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import sympy as sp
from sympy.core.function import AppliedUndef

from derive.core import primitives
from derive.core.steps import (Activate, DeltaOutput, Derivation, Given, LocalDerivative, LossValue, Node,
    OutputGradient, Probabilities, Quantity, Recompute, Step)

import kernels.stable as stable
from .printer import KernelPrinter
from .text import fit


@dataclass(frozen=True)
class Helper:
    """A generated scalar function ``name(args) = body``; a Piecewise body prints as if/else."""

    name: str
    args: tuple[sp.Symbol, ...]
    body: sp.Expr


@dataclass
class Program:
    """Statements of one derivation, with the given quantities it reads and its helpers."""

    given: list[Given]
    statements: list[tuple[sp.Symbol, sp.Expr]]
    quantities: list[Quantity]                      # the derived ones, in order
    helpers: dict[str, Helper] = field(default_factory=dict)

    def defining(self) -> dict[sp.Symbol, sp.Expr]:
        return dict(self.statements)


class _Helpers:
    """Helpers deduplicated by their body up to the names of their arguments, named after the
    registry entry they compute (``sigmoid``, ``relu_prime``, ``log1pexp``)."""

    def __init__(self):
        self.by_key: dict[str, Helper] = {}
        self.table: dict[str, Helper] = {}

    def call(self, body: sp.Expr, args: list[sp.Expr], params: list[sp.Symbol], name: str) -> sp.Expr:
        """``name(args)`` for the helper ``name(params) = body`` (``name_2``, ... for another body)."""
        key = sp.srepr((tuple(params), body))
        helper = self.by_key.get(key)
        if helper is None:
            name = _known_name(body, params) or name
            unique, k = name, 1
            while unique in self.table:
                k += 1
                unique = f"{name}_{k}"
            helper = Helper(unique, tuple(params), body)
            self.by_key[key] = helper
            self.table[helper.name] = helper
        return sp.Function(helper.name)(*args)

    def lift(self, expr: sp.Expr, name: str = "branch", whole: str | None = None) -> sp.Expr:
        """Every Piecewise of ``expr`` (innermost first) as a call of a helper of its free symbols,
        named ``name`` (``whole`` when the Piecewise is all of ``expr``) unless the registry knows it."""
        def one(pw):
            free = sorted(pw.free_symbols, key=lambda s: s.name)
            params = [sp.Symbol(f"a{k}", real=True) for k in range(len(free))]
            label = whole if whole is not None and pw == expr else name
            return self.call(pw.xreplace(dict(zip(free, params))), free, params, label)
        return expr.replace(lambda e: isinstance(e, sp.Piecewise), one)


_X = sp.Symbol("a0", real=True)


def _registry_forms() -> dict[str, str]:
    """srepr of the stable form of every scalar registry entry without parameters, of its
    derivative, and of ``log1pexp``, in ``a0`` → the entry's name (``sigmoid``, ``sigmoid_prime``)."""
    global _FORMS
    if _FORMS is None:
        _FORMS = {sp.srepr(primitives.log1pexp(_X)): "log1pexp"}
        for name, entry in primitives.ACTIVATIONS.items():
            if entry.vector or entry.params:
                continue
            body = primitives.stable_activation(name, _X)
            _FORMS.setdefault(sp.srepr(body), name)
            _FORMS.setdefault(sp.srepr(sp.diff(body, _X)), name + "_prime")
    return _FORMS


_FORMS: dict[str, str] | None = None


def _known_name(body: sp.Expr, params: list[sp.Symbol]) -> str | None:
    return _registry_forms().get(sp.srepr(body)) if list(params) == [_X] else None


def _activation_call(helpers: _Helpers, name: str, params: dict, derivative: bool = False):
    """The helper ``name(a0)`` (``name_prime``) of an activation's stable form (of its derivative)."""
    body = primitives.stable_activation(name, _X, params)
    if derivative:
        body = sp.diff(body, _X)
    label = name + ("_prime" if derivative else "")
    body = helpers.lift(body, label + "_branch", whole=label)
    if isinstance(body, sp.Function) and body.args == (_X,) and body.func.__name__ in helpers.table:
        return body.func                                   # a Piecewise: already a helper
    return helpers.call(body, [_X], [_X], label).func


def build(derivation: Derivation) -> Program:
    """The derivation's steps as statements with stable forms (see the module docstring)."""
    helpers = _Helpers()
    given: list[Given] = []
    statements: list[tuple[sp.Symbol, sp.Expr]] = []
    quantities: list[Quantity] = []
    activation: dict[str, tuple[str, dict]] = {}       # output quantity -> (activation, params)
    by_layer: dict[int, tuple[str, dict]] = {}
    exp_defined: dict[sp.Symbol, sp.Expr] = {}         # outputs whose definition has exponentials
    definitions: dict[sp.Symbol, sp.Expr] = {}         # ∇_y L and g' as derived, for DeltaOutput

    for step in derivation.steps:
        if isinstance(step, Given):
            given.append(step)
            continue
        syms = step.target.symbols()
        act = _activation_of(step, activation)
        if act is not None:
            name, params = act
            entry = primitives.ACTIVATIONS[name]
            xs = _input_symbols(step, derivation)
            if entry.vector:
                exprs = primitives.stable_activation(name, xs, params)
                defs = entry.define(xs, **params)
            else:
                g = _activation_call(helpers, name, params)
                exprs = [g(x) for x in xs]
                defs = [entry.define(x, **params) for x in xs]
            activation[step.name] = act
            if isinstance(step, Activate):
                by_layer[step.layer] = act
            if any(d.has(sp.exp) for d in defs):
                exp_defined.update(zip(syms, defs))
        elif isinstance(step, LocalDerivative) and step.form == "input":
            name, params = by_layer[step.layer]
            dg = _activation_call(helpers, name, params, derivative=True)
            exprs = [dg(x) for x in _input_symbols(step, derivation)]
        elif isinstance(step, LossValue) or (isinstance(step, Recompute) and step.of == "loss"):
            exprs = [helpers.lift(stable.rewrite(stable.inline_logs(e, exp_defined))) for e in step.exprs]
        elif isinstance(step, DeltaOutput):
            exprs = []
            for e in step.exprs:
                cancelled = stable.cancel_singular(e.xreplace(definitions))
                exprs.append(helpers.lift(stable.rewrite(cancelled)) if cancelled is not None else e)
        else:
            label = _label(step, by_layer)
            exprs = [helpers.lift(stable.rewrite(e), label, whole=label) for e in step.exprs]
        statements.extend(zip(syms, exprs))
        if isinstance(step, (OutputGradient, LocalDerivative)):
            definitions.update(zip(syms, step.exprs))
        quantities.append(step.target)
    return Program(given, statements, quantities, helpers.table)


def _label(step: Step, by_layer: dict) -> str:
    """A helper's name for a Piecewise of ``step``: ``<activation>_prime`` for a local derivative,
    else the step's rule (``max_pool``), which names the registry entry or engine rule it applies."""
    if isinstance(step, LocalDerivative) and getattr(step, "layer", None) in by_layer:
        return by_layer[step.layer][0] + "_prime"
    rule = str(step.rule)
    return rule if re.fullmatch(r"[a-z][a-z0-9_]{0,40}", rule) else "branch"


def _input_symbols(step: Step, derivation: Derivation) -> list[sp.Symbol]:
    """The elements of the one quantity an activation-type step reads (z^l, or a graph node's argument)."""
    name = step.args[0] if isinstance(step, Node) else step.inputs[0]
    return list(derivation.quantity(name).symbols())


def _activation_of(step: Step, known: dict) -> tuple[str, dict] | None:
    """(activation, params) when ``step`` applies a registry activation to one quantity, else None."""
    if isinstance(step, Activate):
        return step.activation, dict(step.params)
    if isinstance(step, Probabilities):
        return "softmax", {}
    if isinstance(step, Recompute) and step.of in known:
        return known[step.of]
    if isinstance(step, Node) and step.op in primitives.ACTIVATIONS and len(step.args) == 1:
        entry = primitives.ACTIVATIONS[step.op]
        params = dict(step.params)
        x = sp.Symbol(step.args[0], real=True)
        if not entry.vector and entry.define(x, **params) == step.exprs[0]:
            return step.op, params
    return None


# ----------------------------------------------------------------------------- emission

def needed(program: Program, targets: Iterable[sp.Symbol], available: Iterable[sp.Symbol]) -> list[tuple[sp.Symbol, sp.Expr]]:
    """The statements, in order, that compute ``targets`` from ``available`` symbols."""
    want = set(targets)
    have = set(available)
    chosen = []
    for sym, expr in reversed(program.statements):
        if sym in want and sym not in have:
            chosen.append((sym, expr))
            want |= expr.free_symbols
    missing = {s for s in want if s not in have} - {s for s, _ in chosen}
    if missing:
        raise ValueError(f"cannot compute from the given inputs: {sorted(map(str, missing))[:5]}")
    return list(reversed(chosen))


def emit(program: Program, targets: Iterable[sp.Symbol], names: Mapping[sp.Symbol, str],
         available: Iterable[sp.Symbol], indent: str, prefix: str = "c", printer=KernelPrinter,
         folded: dict | None = None) -> list[str]:
    """Lines assigning every target (and what it needs) by its identifier in ``names``, CSE'd
    (``printer``: the printer class, ``VectorPrinter`` for the vectorised many-problems kernel).

    A statement whose value is a number or another symbol is not printed: it is substituted into
    the statements after it (constants folded, no ``h3_0 = z3_0`` copies), and recorded in
    ``folded`` (symbol → that value) for the caller, which may need the value itself.
    """
    targets = list(targets)
    chosen = needed(program, targets, available)
    kept, subst = [], {}
    for sym, expr in chosen:
        expr = expr.xreplace(subst) if subst else expr
        if expr.is_Number or expr.is_Symbol:
            subst[sym] = expr
        else:
            kept.append((sym, expr))
    if folded is not None:
        folded.update(subst)
    else:   # a caller that reads the targets by name (the loops and BLAS shapes): they are assigned
        kept += [(t, subst[t]) for t in targets if t in subst]
    if not kept:
        return []
    replacements, reduced = sp.cse([e for _, e in kept], symbols=sp.numbered_symbols(prefix, real=True),
                                    order="none")
    names = dict(names)
    names.update({s: s.name for s, _ in replacements})
    pending = dict(replacements)
    # a statement that CSE reduced to a bare temporary names that temporary (no ``grad_y_0 = c0``);
    # a second one that reduces to the same temporary is a copy of the first, folded
    owner: dict = {}
    copies: dict = {}
    for (sym, _), expr in zip(kept, reduced):
        if expr in pending and expr not in owner:
            owner[expr] = sym
            names[expr] = names[sym]
        elif expr in owner and folded is not None:
            copies[sym] = owner[expr]
    if copies:
        reduced = [e.xreplace(copies) for e in reduced]
        pending = {s: e.xreplace(copies) for s, e in pending.items()}
        if folded is not None:
            folded.update(copies)
            # a value folded earlier may name a copy (e_1_new = e_new, where e_new is a copy of e)
            folded.update({s: v.xreplace(copies) for s, v in folded.items()})
    printer = printer(names, frozenset(program.helpers))
    order = [s for s, _ in replacements]
    lines: list[str] = []

    def put(sym, expr):
        lines.extend(fit(f"{indent}{names[sym]} = {printer.doprint(expr)}"))

    def define(sym):
        expr = pending.pop(sym)
        for dep in sorted(expr.free_symbols & pending.keys(), key=order.index):
            if dep in pending:
                define(dep)
        put(sym, expr)

    for (sym, _), expr in zip(kept, reduced):
        for dep in sorted(expr.free_symbols & pending.keys(), key=order.index):
            if dep in pending:
                define(dep)
        if owner.get(expr) == sym:
            if expr in pending:
                define(expr)                      # printed under this statement's name
            continue
        if sym in copies:
            continue                              # folded: the caller has its value
        put(sym, expr)
    return lines


def helper_source(helper: Helper, all_helpers: Mapping[str, Helper], printer=KernelPrinter) -> str:
    """``def name(a0, ...):`` with a CSE'd body; a Piecewise body as if/elif/else (printed by
    ``printer``: ``VectorPrinter`` writes exp and log as vexp and vlog).

    In a Piecewise, the exponentials of each branch are written in |x| where its condition fixes
    the sign of x (``signed_exponentials``), and what two branches share is computed once, before
    the ``if``: the stable sigmoid's branches 1/(1 + e^{−x}) (x ≥ 0) and e^{x}/(1 + e^{x}) share
    e^{−|x|}, so a vectorised loop, which computes every branch and blends, takes one exponential."""
    names = {a: a.name for a in helper.args}
    suffix = getattr(printer, "suffix", "")           # the float32 twins: sigmoid_f32
    lines = [f"def {helper.name}{suffix}({', '.join(a.name for a in helper.args)}):"]
    body = helper.body
    if isinstance(body, sp.Piecewise):
        cond_printer = printer(names, frozenset(all_helpers))
        branches = signed_exponentials(body).args
        shared = _shared_calls([e for e, _ in branches])
        symbols = sp.numbered_symbols("c", real=True)
        replacements, hoisted = sp.cse(shared, symbols=symbols, order="none") if shared else ([], [])
        put = [(s, e) for s, e in replacements] + [(next(symbols), h) for h in hoisted]
        common = dict(zip(shared, [s for s, _ in put[len(replacements):]]))
        names.update({s: s.name for s, _ in put})
        lines += _assignments(put, names, all_helpers, "    ", printer)
        for k, (expr, cond) in enumerate(branches):
            own, (value,) = sp.cse([expr.xreplace(common)], symbols=symbols, order="none")
            names.update({s: s.name for s, _ in own})
            if cond == sp.true:
                lines += _return_lines(own, value, names, all_helpers, "    ", printer)
                break
            lines.append(f"    {'if' if k == 0 else 'elif'} {cond_printer.doprint(cond)}:")
            lines += _return_lines(own, value, names, all_helpers, "        ", printer)
        else:
            lines.append("    return math.nan")
    else:
        replacements, (value,) = sp.cse([body], symbols=sp.numbered_symbols("c", real=True), order="none")
        names.update({s: s.name for s, _ in replacements})
        lines += _return_lines(replacements, value, names, all_helpers, "    ", printer)
    return "\n".join(lines)


def _shared_calls(exprs: list[sp.Expr]) -> list[sp.Expr]:
    """The function calls (e^u, log1p, a helper) found in two or more of ``exprs``, the outermost
    only, in a fixed order."""
    found = [set(e.atoms(sp.Function)) for e in exprs]
    common = {f for f in set().union(*found) if sum(f in calls for calls in found) > 1}
    outer = [f for f in common if not any(g != f and g.has(f) for g in common)]
    return sorted(outer, key=sp.default_sort_key)


def signed_exponentials(pw: sp.Piecewise) -> sp.Piecewise:
    """``pw`` with x written as |x| (or −|x|) inside the exponentials of a branch whose condition
    says x ≥ 0 (or x < 0), for a Piecewise of one sign test ``x ≥ 0``, ``x > 0``, ``x < 0`` or
    ``x ≤ 0`` and an otherwise branch.  An identity on every branch; it lets the branches share
    their exponential (the stable sigmoid's e^{−x} and e^{x} both become e^{−|x|})."""
    if len(pw.args) != 2 or pw.args[1][1] != sp.true:
        return pw
    cond = pw.args[0][1]
    if not (isinstance(cond, sp.core.relational.Relational) and cond.rhs == 0 and cond.lhs.is_Symbol):
        return pw
    if isinstance(cond, (sp.GreaterThan, sp.StrictGreaterThan)):
        first = 1
    elif isinstance(cond, (sp.LessThan, sp.StrictLessThan)):
        first = -1
    else:
        return pw
    x = cond.lhs

    def signed(expr, sign):
        return expr.replace(lambda e: e.func is sp.exp,
                            lambda e: sp.exp(e.args[0].xreplace({x: sign * sp.Abs(x)})))
    (a, c), (b, _) = pw.args
    return sp.Piecewise((signed(a, first), c), (signed(b, -first), True), evaluate=False)


def _assignments(replacements, names: Mapping, all_helpers, indent: str, printer) -> list[str]:
    show = printer(names, frozenset(all_helpers))
    return [part for s, e in replacements for part in fit(f"{indent}{s.name} = {show.doprint(e)}")]


def _return_lines(replacements, value: sp.Expr, names: Mapping, all_helpers, indent: str,
                  printer=KernelPrinter) -> list[str]:
    """The assignments of ``replacements`` (CSE; ``names`` names their symbols), then ``return value``."""
    out = _assignments(replacements, names, all_helpers, indent, printer)
    show = printer(names, frozenset(all_helpers))
    text = show.number(value) if value.is_Number else show.doprint(value)    # a float: one return type
    return out + fit(f"{indent}return {text}")


def helper_order(helpers: Mapping[str, Helper]) -> list[str]:
    """Helper names with every helper after the helpers it calls."""
    done: list[str] = []

    def visit(name):
        if name in done:
            return
        for f in helpers[name].body.atoms(AppliedUndef):
            if f.func.__name__ in helpers:
                visit(f.func.__name__)
        done.append(name)
    for name in helpers:
        visit(name)
    return done
