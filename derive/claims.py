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

from . import primitives
from .errors import SpecError
from .evaluate import Num, precision, rational, value_of
from .safeexpr import parse_expression
from .spec import Claim, Spec
from .backprop import ELEMENTWISE, LR, derive_elementwise
from .steps import Activate, Affine, ChainRule, Derivation, Given, Quantity

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

def _is_mat(v: Any) -> bool:
    return isinstance(v, sp.MatrixBase)


class MatrixAlgebra:
    """Scalars are SymPy expressions, vectors are columns, ``*`` is element-wise, ``@`` is the matrix product.

    With ``broadcast`` (claims and ``[matrices]`` nodes, not answers), a row ``1×n`` meets an ``m×n``
    matrix row by row, as a bias row ``b`` in the row-vector form ``X W + b`` of a batch.
    """

    def __init__(self, broadcast: bool = False):
        self.broadcast = broadcast

    def number(self, value):
        return value

    def _rows(self, a, b):
        """``a`` and ``b`` with a 1×n row repeated to the other's rows, when broadcasting."""
        if self.broadcast and a.cols == b.cols and 1 in (a.rows, b.rows) and a.rows != b.rows:
            if a.rows == 1:
                return sp.Matrix.vstack(*[a] * b.rows), b
            return a, sp.Matrix.vstack(*[b] * a.rows)
        return a, b

    def _elementwise(self, a, b, op, sym):
        if _is_mat(a) and _is_mat(b):
            a, b = self._rows(a, b)
            if a.shape != b.shape:
                raise ValueError(f"'{sym}' needs equal shapes, got {a.shape} and {b.shape}")
            return sp.Matrix(a.rows, a.cols, [op(x, y) for x, y in zip(a, b)])
        if _is_mat(a):
            return a.applyfunc(lambda x: op(x, b))
        if _is_mat(b):
            return b.applyfunc(lambda y: op(a, y))
        return op(a, b)

    def add(self, a, b):
        return self._elementwise(a, b, lambda x, y: x + y, "+")

    def sub(self, a, b):
        return self._elementwise(a, b, lambda x, y: x - y, "-")

    def mul(self, a, b):
        return self._elementwise(a, b, lambda x, y: x * y, "*")

    def div(self, a, b):
        return self._elementwise(a, b, lambda x, y: x / y, "/")

    def pow(self, a, b):
        return a.applyfunc(lambda x: x**b) if _is_mat(a) else a**b

    def neg(self, a):
        return -a

    def matmul(self, a, b):
        if not (_is_mat(a) and _is_mat(b)):
            raise ValueError("'@' needs two matrices or vectors")
        if a.cols != b.rows:
            raise ValueError(f"'@' shapes {a.shape} and {b.shape} do not fit")
        return a * b

    def attribute(self, a, name):
        if name == "T" and _is_mat(a):
            return a.T
        raise ValueError(f"attribute '.{name}' is not allowed (only '.T' of a matrix)")

    def index(self, a, idx):
        if not _is_mat(a):
            raise ValueError("only a vector or matrix can be subscripted")
        if len(idx) == 1 and a.cols == 1:
            idx = (idx[0], 0)
        if len(idx) != 2 or not (idx[0] < a.rows and idx[1] < a.cols):
            raise ValueError(f"subscript {idx} out of range for shape {a.shape}")
        return a[idx[0], idx[1]]

    def exponent_value(self, b):
        return b if isinstance(b, sp.Expr) and b.is_number else None

    def list(self, items):
        if items and all(isinstance(row, list) for row in items):
            if len({len(row) for row in items}) != 1:
                raise ValueError("matrix rows differ in length")
            return sp.Matrix(items)
        if any(isinstance(v, list) or _is_mat(v) for v in items):
            raise ValueError("a list holds scalars, or lists of scalars for a matrix")
        return sp.Matrix(len(items), 1, items)


def _lift(f):
    """A scalar function applied element-wise to a matrix."""
    def g(v, *rest, **kw):
        if _is_mat(v):
            return v.applyfunc(lambda x: f(x, *rest, **kw))
        return f(v, *rest, **kw)
    return g


def _scalar(v, what):
    if _is_mat(v):
        raise ValueError(f"{what} needs a scalar")
    return v


def _size(n):
    if not (isinstance(n, sp.Integer) and 1 <= n <= 64):
        raise ValueError("a size must be an integer from 1 to 64")
    return int(n)


def claim_functions(derivation: Derivation | None, defs: dict | None = None) -> dict:
    from .graph import NODE_FUNCTIONS

    funcs: dict = {name: _lift(f) for name, f in NODE_FUNCTIONS.items()}
    funcs["max"] = lambda a, b: MatrixAlgebra()._elementwise(a, b, primitives.FUNCTIONS["max"].build, "max")
    funcs["min"] = lambda a, b: MatrixAlgebra()._elementwise(a, b, primitives.FUNCTIONS["min"].build, "min")
    funcs.update({name: _loss(loss) for name, loss in primitives.LOSSES.items()})
    funcs.update(
        softmax=lambda v: sp.Matrix(primitives.ACTIVATIONS["softmax"].define(list(v))),
        softmax_rows=_softmax_rows,
        outer=lambda a, b: a * b.T,
        concat=_concat,
        diag=lambda v: sp.diag(*list(v)),
        sum=lambda v: sp.Add(*list(v)) if _is_mat(v) else v,
        dot=lambda a, b: (a.T * b)[0, 0],
        ones=lambda n: sp.ones(_size(n), 1),
        eye=lambda n: sp.eye(_size(n)),
        diff=lambda f, x: (f.applyfunc(lambda e: sp.diff(e, _symbol_arg(x))) if _is_mat(f)
                           else sp.diff(f, _symbol_arg(x))),
        jacobian=lambda f, v: _jacobian(f, v, defs or {}),
    )
    from .conv import claim_functions as map_functions   # flip, pad, dilate, correlate, convolve
    funcs.update(map_functions())
    if derivation is not None and derivation.kind == "graph":
        locals_ = _graph_locals(derivation)

        def local(node, arg):
            """∂node/∂arg, the local derivative; 0 when the node does not read arg."""
            key = (_symbol_arg(node).name, _symbol_arg(arg).name)
            if key[0] not in derivation or key[1] not in derivation:
                raise ValueError(f"d({key[0]}, {key[1]}) needs two quantities of the graph")
            return locals_.get(key, sp.Integer(0))
        funcs["d"] = local
    return funcs


def _loss(loss):
    """A registry loss L(y, t) of two vectors (or scalars) of one sample."""
    def f(y, t):
        ys, ts = (list(v) if _is_mat(v) else [v] for v in (y, t))
        if len(ys) != len(ts):
            raise ValueError(f"{loss.name}(y, t) needs y and t of one size, got {len(ys)} and {len(ts)}")
        return loss.define(ys, ts)
    return f


def _softmax_rows(m):
    """softmax of each row (the row-vector form: one sample per row)."""
    if not _is_mat(m):
        raise ValueError("softmax_rows needs a matrix")
    define = primitives.ACTIVATIONS["softmax"].define
    return sp.Matrix([define(list(m.row(i))) for i in range(m.rows)])


def _concat(*vs):
    """[u; v; ...]: vectors (and scalars) stacked into one column."""
    parts = [v if _is_mat(v) else sp.Matrix([v]) for v in vs]
    if not parts or any(p.cols != 1 for p in parts):
        raise ValueError("concat(...) stacks one or more vectors")
    return sp.Matrix.vstack(*parts)


def _jacobian(f, v, defs):
    """∂f/∂v (numerator layout) after unfolding f's definitions down to v's level."""
    f = f if _is_mat(f) else sp.Matrix([f])
    v = v if _is_mat(v) else sp.Matrix([v])
    if any(not isinstance(s, sp.Symbol) for s in v):
        raise ValueError("jacobian(f, v) needs a vector of names as v")
    unfold = Unfolder({k: e for k, e in defs.items() if k not in set(v)})
    return sp.Matrix(f.rows, v.rows, lambda i, j: sp.diff(unfold(f[i, 0]), v[j, 0]))


def _symbol_arg(x):
    if not isinstance(x, sp.Symbol):
        raise ValueError("expected a name")
    return x


def _graph_locals(derivation: Derivation) -> dict:
    out = {}
    for step in derivation.steps:
        if isinstance(step, ChainRule):
            for consumer, local in step.terms:
                out[(consumer, step.of)] = local
    return out


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
        if derivation.kind == "network":
            for step in derivation.steps:
                q = step.target
                if isinstance(step, (Given, Affine, Activate)) and step.name != LR:
                    g = Quantity(ELEMENTWISE + q.name, q.shape)
                    names[g.name] = g.matrix() if q.shape else g.symbol()
            names[ELEMENTWISE + "y"] = names[ELEMENTWISE + derivation.resolve("y")]
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


class Unfolder:
    """Replaces derived symbols by their definitions, recursively, each symbol unfolded once."""

    def __init__(self, defs: dict):
        self.defs = defs
        self.cache: dict = {}

    def symbol(self, sym: sp.Symbol) -> sp.Expr:
        if sym not in self.cache:
            expr = self.defs[sym]
            self.cache[sym] = expr.xreplace({s: self.symbol(s) for s in expr.free_symbols if s in self.defs})
        return self.cache[sym]

    def __call__(self, expr: sp.Expr) -> sp.Expr:
        return expr.xreplace({s: self.symbol(s) for s in expr.free_symbols if s in self.defs})


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
    if getattr(derivation, "wide", False):
        raise SpecError("claim", "formula claims are proved by the element engine, which takes networks of at "
                                 "most 20000 parameters (this one has wide layers)")
    derivations = [] if derivation is None else [derivation]
    if derivation is not None and derivation.kind == "network" and not spec.problem.samples:
        derivations.append(derive_elementwise(spec.problem))   # (a mini-batch has no element-wise form)
    names = _names(spec, derivation)
    funcs = claim_functions(derivation, _definitions(derivations, keep_affine=False))
    instances = Instances(derivations, symbols=[v for v in names.values() if isinstance(v, sp.Symbol)])
    unfolders = {k: Unfolder(_definitions(derivations, k)) for k in (True, False)}
    return [check_claim(c, names, funcs, derivations, instances, unfolders) for c in spec.claims]
