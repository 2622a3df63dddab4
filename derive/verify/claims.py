"""Check stated formulas against the derivation: proved equal, differs (with the difference), or undetermined.

A claim is two expressions in a small matrix language over the derivation's quantities
(``delta2``, ``W3.T @ delta3``, ``outer(delta1, x)``, ``grad_y * gprime3``, ``sigmoid(2*x)``,
``concat(h1, x2)`` for the stacked vector [h1; x2]...).
Both sides are unfolded into the derivation's definitions and their difference is simplified;
when that does not reach zero, the difference is evaluated at random points of the declared
domain: a nonzero value proves the formulas differ, and is reported with the point.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive.core.errors import SpecError
from derive.core.evaluate import Num, precision, rational, value_of
from derive.core.expressions import parse_expression
from derive import kinds
from derive.core.algebra import MatrixAlgebra, Unfolder, _is_mat, _scalar, claim_functions
from derive.core.spec import Claim, Spec
from derive.core.steps import Affine, Derivation, Given

PROVED, DIFFERS, UNDETERMINED = "proved", "differs", "undetermined"
SCREEN_POINTS = 3    # random instances tried before any simplification
RANDOM_POINTS = 12   # tried when simplification did not reach 0


@dataclass(frozen=True)
class ClaimResult:
    label: str
    lhs: str
    rhs: str
    verdict: str
    difference: str = ""       # the simplified difference lhs − rhs, when it differs
    counterexample: str = ""   # a point where the difference is nonzero
    method: str = ""           # how the verdict was reached


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


def _zero(e: sp.Expr) -> str | None:
    """How ``e`` was proved identically zero, or None: successively stronger SymPy normalisations."""
    if e == 0:
        return "identical"
    if e.has(sp.Piecewise, sp.Abs, sp.sign):
        return "case split" if _zero_by_cases(e) else None
    # A polynomial is zero exactly when its expansion is, a rational function exactly when its
    # cancelled form is: for those, the later, slower normalisations cannot succeed.
    rational = e.is_rational_function()
    for name, attempt in (("expansion", sp.expand), ("cancellation", lambda v: sp.cancel(sp.together(v))),
                          ("simplification", lambda v: sp.simplify(v.rewrite(sp.exp)))):
        try:
            if attempt(e) == 0:
                return name
        except (TypeError, ValueError, NotImplementedError, RecursionError):
            continue
        if rational and name == "cancellation":
            return None
    return None


def _zero_by_cases(e: sp.Expr) -> bool:
    """Zero on each sign case of the real symbols a Piecewise/Abs/sign depends on."""
    return _case_split(e) == (True, None)


def _case_split(e: sp.Expr) -> tuple[bool, str | None]:
    """(zero on every case, a counterexample where a case is a nonzero constant).

    A real s is replaced by log(1 + q), −log(1 + q) (q > 0) and 0: each a bijection onto its
    half-line, under which e^s is rational in q, so SymPy can decide the branch conditions.  A
    convention that differs at a single point (ReLU'(0)) shows up in the case s = 0, which random
    points would never hit.
    """
    if not e.has(sp.Piecewise, sp.Max, sp.Min, sp.Abs, sp.sign, sp.Heaviside):
        return False, None
    reals = sorted((s for s in e.free_symbols if s.is_real and not s.is_positive and not s.is_negative),
                   key=lambda s: s.name)
    if not reals or len(reals) > 2:
        return False, None
    cases, dummies = [{}], []
    for s in reals:
        q = sp.Dummy("q", positive=True)
        dummies.append(q)
        cases = [{**c, s: v} for c in cases for v in (sp.log(1 + q), -sp.log(1 + q), sp.Integer(0))]
    for case in cases:
        v = sp.piecewise_fold(e.xreplace(case))
        if v != 0:
            v = sp.simplify(v)
        if v == 0:
            continue
        at = {q: 1 for q in dummies}
        w = v.xreplace(at)
        if w.is_number and w != 0:
            where = ", ".join(f"{s} = {sp.N(val.xreplace(at), 6) if val != 0 else 0}" for s, val in case.items())
            return False, f"{where}: lhs − rhs = {sp.N(w, 6)}"
        return False, None
    return True, None


def _random_point(symbols, rng: random.Random) -> dict:
    point = {}
    for s in symbols:
        v = sp.Rational(rng.randint(1, 400), 100)
        if s.is_positive or s.is_nonnegative:
            point[s] = v
        elif s.is_negative or s.is_nonpositive:
            point[s] = -v
        else:
            point[s] = v if rng.random() < 0.5 else -v
    return point


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
        return ClaimResult(claim.label, claim.lhs, claim.rhs, DIFFERS,
                           difference=f"shapes differ: {shape(lhs)} and {shape(rhs)}", method="shape")
    subs = _assumptions(claim, names, funcs)
    diffs = list(lhs - rhs) if _is_mat(lhs) else [lhs - rhs]
    instances = instances if instances is not None else Instances(derivations)
    unfolders = unfolders or {k: Unfolder(_definitions(derivations, k)) for k in (True, False)}
    unfold = lambda d, keep_affine: unfolders[keep_affine](d.xreplace(subs)).xreplace(subs)

    def differs(counter: str) -> ClaimResult:
        parts, size = [], 0
        for d in diffs:             # the nonzero differences, until the text shown is long enough
            shown = unfold(d, True)
            if shown != 0:
                parts.append(sp.sstr(shown))
                size += len(parts[-1])
                if size > 600:
                    break
        text = "; ".join(parts)
        return ClaimResult(claim.label, claim.lhs, claim.rhs, DIFFERS,
                           difference=text if len(text) <= 600 else text[:600] + " …",
                           counterexample=counter, method="evaluation")

    # A numeric screen first: a certified nonzero value at a random instance of the derivation
    # settles "differs" without any simplification.
    counter = instances.counterexample(diffs, subs, SCREEN_POINTS)
    if counter is not None:
        return differs(counter)
    for keep_affine in (True, False):
        methods = []
        for d in diffs:
            how = _zero(unfold(d, keep_affine))
            if how is None:
                break
            methods.append(how)
        else:
            how = ", ".join(dict.fromkeys(methods)) + (" with " + ", ".join(claim.assume) if claim.assume else "")
            return ClaimResult(claim.label, claim.lhs, claim.rhs, PROVED, method=how)
    counter = instances.counterexample(diffs, subs, RANDOM_POINTS) or next(
        (c for d in diffs if (c := _case_split(unfold(d, False))[1]) is not None), None)
    if counter is not None:
        return differs(counter)
    return ClaimResult(claim.label, claim.lhs, claim.rhs, UNDETERMINED,
                       method=f"not simplified to 0; equal at {RANDOM_POINTS} random points")


class Instances:
    """Random numeric instances of the derivations, evaluated step by step with certified enclosures.

    Every given (and declared) symbol gets a random value of its domain; the symbols an assumption
    solves for get their value from it.  Instances are cached per assumption, so the claims of a
    spec share them.
    """

    def __init__(self, derivations, seed: int = 0, symbols=()):
        self.derivations = derivations
        self.seed = seed
        self.defined = {sym for d in derivations for step in d.steps if not isinstance(step, Given)
                        for sym, _ in step.items()}
        self.given = {sym for d in derivations for step in d.steps if isinstance(step, Given)
                      for sym, _ in step.items()} | set(symbols)
        self.cache: dict = {}

    def _instances(self, subs: dict, base: list, count: int) -> list:
        key = (tuple(sorted(subs.items(), key=str)), tuple(base))
        done = self.cache.setdefault(key, [])
        rng = random.Random(self.seed + 7919 * len(done))
        with precision(96):
            while len(done) < count:
                point = _random_point(base, rng)
                # enclosures only: an instance needs no exact arithmetic, and intervals are fast
                env = {s: Num(rational(v).enclosure) for s, v in point.items()}
                try:
                    for s, e in subs.items():
                        env[s] = value_of(e, env)
                    for d in self.derivations:
                        for step in d.steps:
                            if not isinstance(step, Given):
                                for sym, e in step.items():
                                    env.setdefault(sym, value_of(e, env))
                except (ArithmeticError, ValueError, KeyError):
                    env = None  # outside the domain of a log or a division: not an instance
                done.append((point, env))
        return done[:count]

    def counterexample(self, diffs: list, subs: dict, count: int) -> str | None:
        """A random instance where some difference is certainly nonzero, as text; None if none found."""
        free = set().union(*[d.free_symbols for d in diffs])
        base = sorted((self.given | free) - self.defined - set(subs), key=lambda s: s.name)
        for point, env in self._instances(subs, base, count):
            if env is None:
                continue
            try:
                with precision(96):
                    values = [value_of(d, env) for d in diffs]
            except (ArithmeticError, ValueError, KeyError):
                continue
            for v in values:
                if not (v.enclosure.a <= 0 <= v.enclosure.b):
                    where = ", ".join(f"{s} = {point[s]}" for s in base if s in free) or "a random instance"
                    return f"{where}: lhs − rhs = {float(v):.6g}"
        return None


def check_claims(spec: Spec, derivation: Derivation | None) -> list[ClaimResult]:
    if not spec.claims:
        return []
    derivations = kinds.companions(spec, derivation)      # with a network's element-wise form
    names = _names(spec, derivation)
    funcs = {**claim_functions(_definitions(derivations, keep_affine=False)), **kinds.claim_functions(derivation)}
    instances = Instances(derivations, symbols=[v for v in names.values() if isinstance(v, sp.Symbol)])
    unfolders = {k: Unfolder(_definitions(derivations, k)) for k in (True, False)}
    return [check_claim(c, names, funcs, derivations, instances, unfolders) for c in spec.claims]
