"""Check stated formulas against the derivation: proved equal, differs (with the difference), or undetermined.

A claim is two expressions in a small matrix language over the derivation's quantities
(``delta2``, ``W3.T @ delta3``, ``outer(delta1, x)``, ``grad_y * gprime3``, ``sigmoid(2*x)``,
``concat(h1, x2)`` for the stacked vector [h1; x2]...).
Both sides are unfolded into the derivation's definitions and their difference is simplified;
when that does not reach zero, the difference is evaluated at random points of the declared
domain: a nonzero value proves the formulas differ, and is reported with the point.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive.core.errors import SpecError
from derive.core.expressions import parse_expression
from derive import kinds
from derive.core.algebra import MatrixAlgebra, Unfolder, _is_mat, _scalar, claim_functions
from derive.core.spec import Claim, Spec
from derive.core.steps import Affine, Derivation, Given
from derive.verify.decide import EQUIVALENT, NOT_EQUIVALENT, Decision, Instances, decide_zero

PROVED, DIFFERS, UNDETERMINED = "proved", "differs", "undetermined"
SCREEN_POINTS = 3    # random instances tried before any simplification
RANDOM_POINTS = 12   # tried when simplification did not reach 0


@dataclass(frozen=True)
class ClaimResult:
    """A claim and the decider's :class:`~derive.verify.decide.Decision` on lhs − rhs, in the report's
    words: proved (symbolically), differs (a certified counterexample), undetermined."""

    label: str
    lhs: str
    rhs: str
    decision: Decision

    @property
    def verdict(self) -> str:
        d = self.decision
        return PROVED if d.verdict == EQUIVALENT else DIFFERS if d.verdict == NOT_EQUIVALENT else UNDETERMINED

    @property
    def difference(self) -> str:      # the simplified difference lhs − rhs (or the shapes), when it differs
        return self.decision.detail

    @property
    def counterexample(self) -> str:  # a point where the difference is nonzero
        return self.decision.counterexample

    @property
    def method(self) -> str:          # how the verdict was reached
        return self.decision.method


# ----------------------------------------------------------------------------- matrix algebra


# ----------------------------------------------------------------------------- proving

def _names(spec: Spec, derivation: Derivation | None) -> dict[str, Any]:
    names: dict[str, Any] = {}
    assumptions = {"real": {"real": True}, "positive": {"positive": True}, "negative": {"negative": True},
                   "nonnegative": {"nonnegative": True}, "nonpositive": {"nonpositive": True}}
    for name, dom in spec.symbols:
        names[name] = sp.Symbol(name, **assumptions[dom])
    if derivation is not None:
        for step in derivation.steps:
            q = step.target
            names[q.name] = q.matrix() if q.shape else q.symbol()
        for alias, target in derivation.aliases:
            if target in names:
                names[alias] = names[target]
        names.update(kinds.claim_names(derivation))
    return names


def _definitions(derivations, keep_affine: bool) -> dict:
    """symbol -> defining expression over all steps; ``keep_affine`` leaves z^l as atoms."""
    defs = {}
    for derivation in derivations:
        for step in derivation.steps:
            affine = isinstance(step, Affine) or getattr(step, "op", None) == "affine"
            if isinstance(step, Given) or (keep_affine and affine):
                continue
            for sym, expr in step.items():
                defs.setdefault(sym, expr)
    return defs


def _assumptions(claim: Claim, names, funcs) -> dict:
    subs = {}
    for j, text in enumerate(claim.assume):
        path = f"{claim.path}.assume[{j}]"
        if text.count("==") != 1:
            raise SpecError(path, "expected an equation 'lhs == rhs'")
        lhs, rhs = (parse_expression(s, names=names, functions=funcs, path=path, algebra=MatrixAlgebra(True))
                    for s in text.split("=="))
        eq = sp.expand(_scalar(lhs, "an assumption") - _scalar(rhs, "an assumption"))
        free = sorted(eq.free_symbols, key=lambda s: s.name)
        for s in reversed(free):
            if sp.degree(eq, s) == 1 if eq.is_polynomial(s) else False:
                subs[s] = sp.expand(s - eq / sp.diff(eq, s))   # eq = a·s + b, so s = −b/a
                break
        else:
            raise SpecError(path, "the assumption must be linear in one of its symbols")
    return subs


def check_claim(claim: Claim, names, funcs, derivations, instances: "Instances | None" = None,
                unfolders: dict | None = None) -> ClaimResult:
    alg = MatrixAlgebra(broadcast=True)
    lhs = parse_expression(claim.lhs, names=names, functions=funcs, path=f"{claim.path}.lhs", algebra=alg)
    rhs = parse_expression(claim.rhs, names=names, functions=funcs, path=f"{claim.path}.rhs", algebra=alg)
    shape = lambda v: v.shape if _is_mat(v) else (1, 1)
    if shape(lhs) != shape(rhs):
        return ClaimResult(claim.label, claim.lhs, claim.rhs, Decision(
            NOT_EQUIVALENT, "shape", f"shapes differ: {shape(lhs)} and {shape(rhs)}"))
    subs = _assumptions(claim, names, funcs)
    diffs = list(lhs - rhs) if _is_mat(lhs) else [lhs - rhs]
    instances = instances if instances is not None else Instances(derivations)
    unfolders = unfolders or {k: Unfolder(_definitions(derivations, k)) for k in (True, False)}
    unfold = lambda d, keep_affine: unfolders[keep_affine](d.xreplace(subs)).xreplace(subs)

    # A numeric screen first (a certified nonzero value at a random instance settles "differs"
    # without any simplification); then the zero test with forward quantities z^l kept as atoms,
    # then fully unfolded; then more instances and a case split.  Slides are trusted: no budget.
    def sample(count):
        return instances.counterexample(diffs, subs, count or RANDOM_POINTS), 0
    decision = decide_zero(diffs, [lambda d: unfold(d, True), lambda d: unfold(d, False)], sample,
                           screen=SCREEN_POINTS)
    if decision.verdict == EQUIVALENT:
        how = decision.method + (" with " + ", ".join(claim.assume) if claim.assume else "")
        decision = Decision(EQUIVALENT, how, proved=True)
    elif decision.verdict == NOT_EQUIVALENT:
        parts, size = [], 0
        for d in diffs:             # the nonzero differences, until the text shown is long enough
            shown = unfold(d, True)
            if shown != 0:
                parts.append(sp.sstr(shown))
                size += len(parts[-1])
                if size > 600:
                    break
        text = "; ".join(parts)
        decision = Decision(NOT_EQUIVALENT, decision.method, text if len(text) <= 600 else text[:600] + " …",
                            decision.counterexample)
    else:
        decision = Decision(UNDETERMINED, f"not simplified to 0; equal at {RANDOM_POINTS} random points")
    return ClaimResult(claim.label, claim.lhs, claim.rhs, decision)


def check_claims(spec: Spec, derivation: Derivation | None) -> list[ClaimResult]:
    if not spec.claims:
        return []
    if getattr(derivation, "wide", False):
        raise SpecError("claim", "formula claims are proved by the element engine, which takes networks of at "
                                 "most 20000 parameters (this one has wide layers)")
    derivations = kinds.companions(spec, derivation)      # with a network's element-wise form
    names = _names(spec, derivation)
    funcs = {**claim_functions(_definitions(derivations, keep_affine=False)), **kinds.claim_functions(derivation)}
    instances = Instances(derivations, symbols=[v for v in names.values() if isinstance(v, sp.Symbol)])
    unfolders = {k: Unfolder(_definitions(derivations, k)) for k in (True, False)}
    return [check_claim(c, names, funcs, derivations, instances, unfolders) for c in spec.claims]
