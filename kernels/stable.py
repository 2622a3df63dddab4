"""Numerically stable rewrites of derived expressions, before they are printed as code.

Each rewrite is an identity of real functions, applied to SymPy trees:

* ``log(Σ_j c_j e^{u_j})`` → log-sum-exp (``primitives.logsumexp``; ``log1pexp`` for ``1 + e^u``),
  so ``log(e^{1000} + e^{−1000})`` is 1000, not inf;
* ``e^a / (Σ_j c_j e^{u_j})^p`` → ``e^{a − p·lse(u)}``: a softmax that neither overflows nor
  divides inf by inf;
* ``log(h)`` of an activation output is taken of the activation's definition and expanded, so the
  log of a softmax or sigmoid output is ``z_i − lse(z)`` or ``−log(1 + e^{−z})``: finite when the
  probability itself rounds to exactly 0 (cross-entropy on saturated outputs);
* a product with removable singularities such as ``(−t/y + (1 − t)/(1 − y)) · y(1 − y)`` (BCE on a
  sigmoid) is cancelled to ``y − t``.

Activations themselves are printed from the registry's stable forms (``primitives``); this module
names no primitive.
"""
from __future__ import annotations

from typing import Mapping

import sympy as sp

from derive.core.primitives import log1pexp, logsumexp


def _exponents(s: sp.Expr) -> list[sp.Expr] | None:
    """The u_j when ``s = Σ_j c_j e^{u_j}`` with rational c_j > 0 and at least one exponential; else None.

    A positive constant c counts as c·e^0, so ``1 + e^u`` gives [0, u].
    """
    terms = s.args if s.is_Add else (s,)
    us, seen_exp = [], False
    for term in terms:
        c, rest = term.as_coeff_Mul()
        if not (c.is_Rational and c > 0):
            return None
        shift = sp.log(c) if c != 1 else sp.Integer(0)
        if rest == 1:
            us.append(shift)
        elif rest.func is sp.exp:
            us.append(rest.args[0] + shift)
            seen_exp = True
        else:
            return None
    return us if seen_exp and len(us) >= 2 else None


def lse(us: list[sp.Expr]) -> sp.Expr:
    """log Σ e^{u}: log1pexp for two terms of which one is e^0, else the max-shifted form."""
    if len(us) == 2 and 0 in us:
        return log1pexp(us[1] if us[0] == 0 else us[0])
    return logsumexp(us)


def _log_of_sum(e: sp.Expr) -> sp.Expr:
    us = _exponents(e.args[0])
    return lse(us) if us is not None else e


def _inverse_power_of_sum(e: sp.Expr) -> sp.Expr:
    base, p = e.args
    if not (p.is_Rational and p < 0):
        return e
    us = _exponents(base)
    return sp.exp(p * lse(us)) if us is not None else e


def _merge_exponentials(e: sp.Expr) -> sp.Expr:
    exps = [f for f in e.args if f.func is sp.exp]
    if len(exps) < 2:
        return e
    return sp.Mul(*[f for f in e.args if f.func is not sp.exp], sp.exp(sp.Add(*[f.args[0] for f in exps])))


def rewrite(expr: sp.Expr) -> sp.Expr:
    """The log-sum-exp rewrites of ``expr`` (an identity), then products of exponentials merged."""
    expr = expr.replace(lambda e: e.func is sp.log, _log_of_sum)
    expr = expr.replace(lambda e: e.is_Pow and e.args[0].is_Add, _inverse_power_of_sum)
    # e^a · e^{−lse} → e^{a − lse}: one exponential, never inf · 0
    return expr.replace(lambda e: e.is_Mul, _merge_exponentials)


def inline_logs(expr: sp.Expr, definitions: Mapping[sp.Symbol, sp.Expr]) -> sp.Expr:
    """``log(...)`` of activation outputs taken of their definitions and expanded (then ``rewrite``).

    ``definitions`` maps an output symbol (``h2[0]``) to its definition in the pre-activation
    (``e^{z_0}/Σ e^{z_j}``); only outputs defined with exponentials are given.
    """
    def expand(e):
        arg = e.args[0]
        if not arg.free_symbols & definitions.keys():
            return e
        return sp.expand_log(sp.log(sp.together(arg.xreplace(dict(definitions)))))
    return expr.replace(lambda e: e.func is sp.log, expand)


def _denominators(expr: sp.Expr) -> set:
    return {p.base for p in expr.atoms(sp.Pow) if p.exp.is_negative and p.base.free_symbols}


def cancel_singular(expr: sp.Expr) -> sp.Expr | None:
    """``expr`` with removable singularities cancelled, or None when there is none to cancel.

    Only a cancellation that removes a denominator counts: ``(−t/y + (1 − t)/(1 − y))·y(1 − y)``
    (BCE through a sigmoid) becomes ``y − t``; ``e^{y}/Σ e^{u}`` is left alone (the log-sum-exp
    rewrite handles it).
    """
    before = _denominators(expr)
    if not before:
        return None
    cancelled = sp.cancel(sp.together(expr))
    if len(expr.free_symbols) <= FACTOR_SYMBOLS:
        # factored, as a reader writes it (y − t, not an expanded quotient); factoring a polynomial in
        # the 40 outputs of a wide softmax took 5 s per output, so wider ones keep cancel's form
        cancelled = sp.factor(cancelled)
    return cancelled if len(_denominators(cancelled)) < len(before) else None


FACTOR_SYMBOLS = 16
