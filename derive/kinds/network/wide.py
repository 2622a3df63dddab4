"""Wide layers in index form: a network too large to write out element by element.

The element engine (:func:`derive.kinds.network.derivation.derive_network`) writes one SymPy expression per element
of every quantity, which is ``O(width²)`` work and memory per layer.  Here the same derivation is
written once per *layer*, in index form (vectors and matrices, as the BLAS kernels do):

    z^l = W^l h^{l−1} + b^l,   h^l = g(z^l),   δ^L = ∇_y L ⊙ g'(z^L),
    δ^l = (W^{l+1 T} δ^{l+1}) ⊙ g'(z^l),   ∂L/∂W^l = δ^l h^{l−1 T},   ∂L/∂b^l = δ^l,
    W^l_new = W^l − η ∂L/∂W^l,   b^l_new = b^l − η ∂L/∂b^l,  and the forward pass again.

Element-wise parts (``g``, ``g'``, ``δ``, ``∂L/∂y`` of a loss that is a sum over the outputs) are
the engine's own element expressions (the registry's, built as ``derive_network`` builds them)
evaluated by :func:`derive.core.evaluate.value_of`, one element at a time: ``O(width)``.  The products
are evaluated over whole rows in exact integer arithmetic:

* exactly (rationals with a common denominator) when every input is exact;
* otherwise as a certified enclosure: each input enclosure is widened to a fixed-point interval
  ``[lo, hi]·2^−p`` (p = the enclosure precision + 32 bits), the row's sum of products is computed
  exactly as a midpoint ``Σ a·m`` and radius ``Σ |a|·r`` in integers, and the exact result interval
  is rounded outward into an mpmath enclosure.  So every value is exact or a rigorous enclosure, and
  the one rounding rule (:mod:`derive.core.rounding`) and the precision escalation of ``verify`` apply
  unchanged.

``∂L/∂W`` and ``W_new`` are never stored: their element ``(i, j)`` is ``δ_i h_j`` and
``W_ij − η δ_i h_j``, computed when asked for, and the recomputed forward pass uses
``W_new v = W v − η δ (hᵀ v)`` (the same number; a stated element of ``∂L/∂W`` or ``W_new`` that a
recomputation reads is added back as a correction).  The cost grows with the number of weights
for the two products per layer (integer arithmetic) and with the widths for everything else.

Used by ``derive_network`` for numeric single-sample networks above the element engine's limit
(``MAX_EXACT_PARAMS``) whose activations are element-wise and whose loss is a sum of one
term per output; see docs/guide.md ("Wide layers").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from operator import mul
from typing import Iterator, Mapping

import sympy as sp
from mpmath import iv
from mpmath import libmp as mlib

from derive.core import primitives
from derive.core.errors import SpecError
from derive.core.evaluate import Num, _finite, _known_exactly, precision, rational, value_of, DEFAULT_PREC
from derive.kinds.network.spec import MAX_EXACT_PARAMS, Network
from derive.core.steps import LR, Quantity, vector_symbols

MAX_WIDE_PARAMS = 20_000_000
HEADROOM = 32                      # fixed-point bits beyond the enclosure precision


# ----------------------------------------------------------------------------- the derivation

@dataclass(frozen=True)
class LayerStep:
    """One quantity of a wide network, defined once for the whole layer.

    ``rule`` is the element engine's rule name (``affine``, ``activation``, ...), ``form`` the
    formula in vector form (plain text), ``latex`` the same in LaTeX, ``element`` one element in
    index form (``z1[i] = Σ_j W1[i,j] x[j] + b1[i]``).
    """

    target: Quantity
    rule: str
    inputs: tuple[str, ...]
    form: str
    latex: str
    element: str
    layer: int = 0
    role: str = ""                 # a given quantity's role (input, target, param, hyper)

    @property
    def name(self) -> str:
        return self.target.name


@dataclass(frozen=True)
class WideDerivation:
    """The layer-level derivation of a wide network: the element engine's names, shapes and aliases."""

    steps: tuple[LayerStep, ...]
    aliases: tuple[tuple[str, str], ...]
    net: Network = field(compare=False, repr=False)
    kind: str = "network"
    wide: bool = True

    def resolve(self, name: str) -> str:
        return dict(self.aliases).get(name, name)

    def __contains__(self, name: str) -> bool:
        return any(s.name == self.resolve(name) for s in self.steps)

    def step(self, name: str) -> LayerStep:
        want = self.resolve(name)
        for s in self.steps:
            if s.name == want:
                return s
        raise KeyError(name)

    def quantity(self, name: str) -> Quantity:
        return self.step(name).target

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    # what the engine asks of a derivation that evaluates itself (core/evaluate.py, verify/report.py)
    # instead of element by element; its handout is the network kind's `document` (wide_printing.py)
    def evaluate_itself(self, bits: int = DEFAULT_PREC) -> "WideValues":
        return evaluate(self, bits)

    def carry_itself(self, stated, bits: int = DEFAULT_PREC):
        return carry(self, stated, bits)

    def solve_itself(self, name: str) -> dict:
        return solve_dict(name, self)


def unsupported(net: Network) -> str | None:
    """Why the index form cannot take this network (None when it can)."""
    if net.samples:
        return "a mini-batch"
    if net.input is None or net.target is None or any(l.weights is None or l.bias is None for l in net.layers):
        return "a symbolic network (the index form evaluates numbers; symbolic formulas need the element engine)"
    if net.learning_rate is not None and not net.learning_rate.is_number:
        return "a symbolic learning rate"
    for l, layer in enumerate(net.layers, start=1):
        if primitives.ACTIVATIONS[layer.activation.name].vector:
            return f"layer {l}'s activation {layer.activation.name} (it couples the units)"
    if _loss_terms(net.loss, 3) is None:
        return f"the loss {net.loss} (not a sum of one term per output)"
    return None


def _loss_terms(loss: str, n: int, y_name: str = "h"):
    """(coefficient, the terms of output 0) of the loss at width n when it is ``c·Σ_k ℓ(y_k, t_k)``:
    every term reads one output's y_k and t_k only, and output k's terms are output 0's renamed; else None."""
    if n > 3 and _loss_terms(loss, 3, y_name) is None:
        return None      # outputs coupled at width 3 are coupled at any width (hinge: n² terms, not built)
    y, t = vector_symbols(y_name, n), vector_symbols("t", n)
    expr = primitives.LOSSES[loss].define(y, t)
    coeff, rest = expr.as_coeff_Mul()
    index = {s: k for k, s in enumerate(y)} | {s: k for k, s in enumerate(t)}
    groups: dict[int, list] = {}
    for term in sp.Add.make_args(rest):
        ks = {index[s] for s in term.free_symbols if s in index}
        if len(ks) != 1:
            return None
        groups.setdefault(ks.pop(), []).append(term)
    if sorted(groups) != list(range(n)) or any(not any(g.has(y[k]) for g in groups[k]) for k in range(n)):
        return None
    first = sp.Add(*groups[0])
    for k in range(1, n):
        if first.xreplace({y[0]: y[k], t[0]: t[k]}) != sp.Add(*groups[k]):
            return None
    return coeff, first


def output_gradient(loss: str, y_name: str, n: int) -> list[sp.Expr]:
    """∂L/∂y_k for every output: ``diff`` of the loss's term of y_k once, renamed for each k.  The
    same expressions as ``backprop.loss_gradient`` (checked here at the first and last output)."""
    found = _loss_terms(loss, n, y_name)
    if found is None:
        raise SpecError("network.loss", f"{loss} is not a sum of one term per output")
    coeff, first = found
    y, t = vector_symbols(y_name, n), vector_symbols("t", n)
    grad0 = sp.diff(coeff * first, y[0])
    out = [grad0.xreplace({y[0]: y[k], t[0]: t[k]}) for k in range(n)]
    for k in {0, n - 1}:
        if sp.diff(coeff * first.xreplace({y[0]: y[k], t[0]: t[k]}), y[k]) != out[k]:
            raise ArithmeticError(f"the gradient of {loss} at output {k} is not the first one renamed")
    return out



def derive_wide(net: Network) -> WideDerivation:
    """The layer-level steps of a numeric single-sample network (in ``derive_network``'s order)."""
    why = unsupported(net)
    if why is not None:
        raise SpecError("network", f"{net.param_count} parameters is too many for the exact engine element by "
                                   f"element (at most {_max_exact()}), and its index form for wide layers does not "
                                   f"take {why}; the kernels handle large networks")
    if net.param_count > MAX_WIDE_PARAMS:
        raise SpecError("network", f"{net.param_count} parameters is too many (at most {MAX_WIDE_PARAMS})")
    L, sizes = len(net.layers), net.sizes
    has_bias = [layer.bias != () for layer in net.layers]
    steps: list[LayerStep] = [
        LayerStep(Quantity("x", (sizes[0],)), "given", (), "x", "x", "x[j]", role="input"),
        LayerStep(Quantity("t", (sizes[-1],)), "given", (), "t", "t", "t[k]", role="target")]
    for l in range(1, L + 1):
        steps.append(LayerStep(Quantity(f"W{l}", (sizes[l], sizes[l - 1])), "given", (), f"W{l}", f"W^{{({l})}}",
                               f"W{l}[i,j]", l, "param"))
        if has_bias[l - 1]:
            steps.append(LayerStep(Quantity(f"b{l}", (sizes[l],)), "given", (), f"b{l}", f"b^{{({l})}}",
                                   f"b{l}[i]", l, "param"))
    if net.learning_rate is not None:
        steps.append(LayerStep(Quantity(LR), "given", (), "η", r"\eta", "η", role="hyper"))
    steps += _forward(net, "")
    y = f"h{L}"
    steps.append(LayerStep(Quantity("grad_y", (sizes[-1],)), "output_gradient", (y, "t"), f"∇_y L = ∂{net.loss}(y, t)/∂y",
                           r"\nabla_{y} L", f"grad_y[k] = ∂L/∂y[k] ({net.loss}: one term per output)", L))
    for l in range(L, 0, -1):
        act = net.layers[l - 1].activation.name
        entry = primitives.ACTIVATIONS[act]
        reads = f"h{l}" if entry.from_output is not None else f"z{l}"
        steps.append(LayerStep(Quantity(f"gprime{l}", (sizes[l],)), "local_derivative", (reads,),
                               f"g'{l} = {act}'(z{l})", rf"g'^{{({l})}}", f"gprime{l}[i] = {act}'(z{l}[i])", l))
        upstream = "grad_y" if l == L else f"grad_h{l}"
        steps.append(LayerStep(Quantity(f"delta{l}", (sizes[l],)), "delta_output" if l == L else "delta_hidden",
                               (upstream, f"gprime{l}"), f"δ{l} = {upstream} ⊙ g'{l}",
                               rf"\delta^{{({l})}}", f"delta{l}[i] = {upstream}[i] gprime{l}[i]", l))
        prev = "x" if l == 1 else f"h{l - 1}"
        steps.append(LayerStep(Quantity(f"grad_W{l}", (sizes[l], sizes[l - 1])), "weight_gradient",
                               (f"delta{l}", prev), f"∂L/∂W{l} = δ{l} {prev}ᵀ", rf"\frac{{\partial L}}{{\partial W^{{({l})}}}}",
                               f"grad_W{l}[i,j] = delta{l}[i] {prev}[j]", l))
        if has_bias[l - 1]:
            steps.append(LayerStep(Quantity(f"grad_b{l}", (sizes[l],)), "bias_gradient", (f"delta{l}",),
                                   f"∂L/∂b{l} = δ{l}", rf"\frac{{\partial L}}{{\partial b^{{({l})}}}}",
                                   f"grad_b{l}[i] = delta{l}[i]", l))
        if l > 1:
            steps.append(LayerStep(Quantity(f"grad_h{l - 1}", (sizes[l - 1],)), "back_error", (f"W{l}", f"delta{l}"),
                                   f"∂L/∂h{l - 1} = W{l}ᵀ δ{l}", rf"\frac{{\partial L}}{{\partial h^{{({l - 1})}}}}",
                                   f"grad_h{l - 1}[j] = Σ_i W{l}[i,j] delta{l}[i]", l - 1))
    if net.learning_rate is not None:
        for l in range(1, L + 1):
            for p, shape in [(f"W{l}", (sizes[l], sizes[l - 1]))] + ([(f"b{l}", (sizes[l],))] if has_bias[l - 1] else []):
                idx = "[i,j]" if len(shape) == 2 else "[i]"
                steps.append(LayerStep(Quantity(p + "_new", shape), "update", (p, LR, "grad_" + p),
                                       f"{p}_new = {p} − η ∂L/∂{p}", rf"{p[0]}^{{({l})}}_{{\text{{new}}}}",
                                       f"{p}_new{idx} = {p}{idx} − η grad_{p}{idx}", l))
        steps += _forward(net, "_new")
    aliases = [("y", f"h{L}"), ("h0", "x"), (f"grad_h{L}", "grad_y")] + \
              [(f"grad_z{l}", f"delta{l}") for l in range(1, L + 1)]
    if net.learning_rate is not None:
        aliases.append(("y_new", f"h{L}_new"))
    return WideDerivation(tuple(steps), tuple(aliases), net)


def _max_exact() -> int:
    return MAX_EXACT_PARAMS


def _forward(net: Network, suffix: str) -> list[LayerStep]:
    out, sizes, prev = [], net.sizes, "x"
    rule = "recompute" if suffix else None
    for l, layer in enumerate(net.layers, start=1):
        bias = layer.bias != ()
        plus, plus_i = (f" + b{l}{suffix}", f" + b{l}{suffix}[i]") if bias else ("", "")
        inputs = (f"W{l}{suffix}", prev) + ((f"b{l}{suffix}",) if bias else ())
        out.append(LayerStep(Quantity(f"z{l}{suffix}", (sizes[l],)), rule or "affine", inputs,
                             f"z{l}{suffix} = W{l}{suffix} {prev}{plus}", f"z^{{({l})}}",
                             f"z{l}{suffix}[i] = Σ_j W{l}{suffix}[i,j] {prev}[j]{plus_i}", l))
        act = layer.activation.name
        out.append(LayerStep(Quantity(f"h{l}{suffix}", (sizes[l],)), rule or "activation", (f"z{l}{suffix}",),
                             f"h{l}{suffix} = {act}(z{l}{suffix})", f"h^{{({l})}}",
                             f"h{l}{suffix}[i] = {act}(z{l}{suffix}[i])", l))
        prev = f"h{l}{suffix}"
    out.append(LayerStep(Quantity("loss" + suffix), rule or "loss", (prev, "t"), f"loss{suffix} = {net.loss}({prev}, t)",
                         "L", f"loss{suffix} = {net.loss}({prev}, t)"))
    return out


# ----------------------------------------------------------------------------- arithmetic on Nums

def _exact(n: Num) -> sp.Rational | None:
    return _known_exactly(n)


def same(num: Num) -> Num:
    """``num`` as ``value_of`` gives a copy of it: an enclosure of width zero becomes exact."""
    e = _exact(num)
    return num if e is None or num.exact is not None else rational(e)


def _num_exact(q) -> Num:
    return rational(sp.Rational(q.numerator, q.denominator) if isinstance(q, Fraction) else q)


_BAD = (mlib.finf, mlib.fninf, mlib.fnan)
_SMALL_EXP = 996          # 2^996 < 1e300 = evaluate.FLOAT_MAX: below it, no check of the midpoint is needed


def _made(mpi) -> Num:
    """A Num from an mpmath interval (a pair of mpfs), checked finite and below 1e300 as
    :func:`derive.core.evaluate._finite` checks (which it calls when the quick test cannot tell)."""
    a, b = mpi
    if a in _BAD or b in _BAD:
        raise ArithmeticError("not a finite real number (division by zero or overflow?)")
    num = Num(iv.make_mpf(mpi))
    if (a[1] and a[2] + a[3] > _SMALL_EXP) or (b[1] and b[2] + b[3] > _SMALL_EXP):
        return _finite(num)
    return num


def add(a: Num, b: Num, ea=False, eb=False) -> Num:
    """``a + b`` as :func:`derive.core.evaluate.value_of` gives it (``ea``, ``eb``: the exact values when known)."""
    ea = _exact(a) if ea is False else ea
    eb = _exact(b) if eb is False else eb
    if ea is not None and eb is not None:
        return rational(ea + eb)
    return _made(mlib.mpi_add(a.enclosure._mpi_, b.enclosure._mpi_, iv.prec))


def times(a: Num, b: Num, ea=False, eb=False) -> Num:
    """``a · b`` as :func:`derive.core.evaluate.value_of` gives it."""
    ea = _exact(a) if ea is False else ea
    eb = _exact(b) if eb is False else eb
    if ea is not None and eb is not None:
        return rational(ea * eb)
    return _made(mlib.mpi_mul(a.enclosure._mpi_, b.enclosure._mpi_, iv.prec))


def update(w: Num, lr: Num, g: Num, ew=False, el=False, eg=False) -> Num:
    """``w − η g`` as the element engine evaluates ``W − learning_rate·grad_W``."""
    ew = _exact(w) if ew is False else ew
    el = _exact(lr) if el is False else el
    eg = _exact(g) if eg is False else eg
    if ew is not None and el is not None and eg is not None:
        return rational(ew - el * eg)
    prec = iv.prec
    step = mlib.mpi_mul(mlib.mpi_neg(g.enclosure._mpi_), lr.enclosure._mpi_, prec)
    return _made(mlib.mpi_add(w.enclosure._mpi_, step, prec))


def _fraction(q: sp.Rational) -> Fraction:
    return Fraction(int(q.p), int(q.q))


def _fixed(num: Num, p: int) -> tuple[int, int]:
    """Integers (lo, hi) with lo·2^−p ≤ the value ≤ hi·2^−p."""
    a, b = num.enclosure._mpi_
    return _floor_scaled(a, p), -_floor_scaled(mlib.mpf_neg(b), p)


def _floor_scaled(x, p: int) -> int:
    sign, man, exp, _ = x
    if x in (mlib.finf, mlib.fninf, mlib.fnan):
        raise ArithmeticError("not a finite real number")
    v = -int(man) if sign else int(man)
    shift = exp + p
    return v << shift if shift >= 0 else v >> -shift      # >> floors, for negative numbers too


def _interval(lo_num: int, hi_num: int, den: int) -> Num:
    """The enclosure of [lo_num/den, hi_num/den], rounded outward."""
    lo = iv.mpf(lo_num) / den
    hi = iv.mpf(hi_num) / den
    return _finite(Num(iv.mpf([lo.a, hi.b])))


class Rows:
    """An exact matrix as integer rows over one denominator, with element overrides (a stated value,
    or an entry that is not rational) kept apart: ``value = base + Σ corrections``."""

    def __init__(self, rows: list[list[int]], den: int, shape: tuple[int, int], extra: dict | None = None):
        self.rows, self.den, self.shape = rows, den, shape
        self.extra: dict[tuple[int, int], Num] = dict(extra or {})   # (i, j) -> value there (base is 0 there)

    @classmethod
    def of(cls, weights) -> "Rows":
        n, m = len(weights), len(weights[0])
        den, odd = 1, {}
        for i, row in enumerate(weights):
            for j, w in enumerate(row):
                if w.is_Rational:
                    den = math.lcm(den, int(w.q))
                else:
                    odd[(i, j)] = w
        rows = [[int(w.p) * (den // int(w.q)) if w.is_Rational else 0 for w in row] for row in weights]
        extra = {ij: value_of(w, {}) for ij, w in odd.items()}
        return cls(rows, den, (n, m), extra)

    def base(self, i: int, j: int) -> Num:
        return rational(sp.Rational(self.rows[i][j], self.den))

    def element(self, i: int, j: int) -> Num:
        return self.extra.get((i, j)) or self.base(i, j)

    def override(self, values: dict) -> "Rows":
        """The same matrix with some elements replaced (the base there is kept, the correction is the difference)."""
        out = Rows(self.rows, self.den, self.shape, self.extra)
        for (i, j), v in values.items():
            out.extra[(i, j)] = v
        return out

    def _corrections(self, v: list[Num], transpose: bool) -> dict[int, list[Num]]:
        out: dict[int, list[Num]] = {}
        for (i, j), val in self.extra.items():
            base = self.base(i, j)         # 0 where the entry is not rational
            diff = add(val, times(rational(sp.Integer(-1)), base))
            r, c = (j, i) if transpose else (i, j)
            out.setdefault(r, []).append(times(diff, v[c]))
        return out

    def matvec(self, v: list[Num]) -> list[Num]:
        """W v, row by row."""
        return self._product(v, transpose=False)

    def rmatvec(self, v: list[Num]) -> list[Num]:
        """Wᵀ v, column by column."""
        return self._product(v, transpose=True)

    def _product(self, v: list[Num], transpose: bool) -> list[Num]:
        exact = [_exact(x) for x in v]
        n_out = self.shape[1] if transpose else self.shape[0]
        if all(e is not None for e in exact):
            fr = [_fraction(e) for e in exact]
            den = 1
            for f in fr:
                den = math.lcm(den, f.denominator)
            vec = [f.numerator * (den // f.denominator) for f in fr]
            sums = self._sums(vec, transpose)
            result = [_num_exact(Fraction(s, self.den * den)) for s in sums]
        else:
            p = iv.prec + HEADROOM
            ends = [_fixed(x, p) for x in v]
            mid = [lo + hi for lo, hi in ends]              # scale 2^(p+1)
            rad = [hi - lo for lo, hi in ends]
            s_mid = self._sums(mid, transpose)
            s_rad = self._sums(rad, transpose, absolute=True)
            den = self.den << (p + 1)
            result = [_interval(s - r, s + r, den) for s, r in zip(s_mid, s_rad)]
        for r, terms in self._corrections(v, transpose).items():
            for term in terms:       # exact only when the row's inputs are (not a sum that happens to have width 0)
                result[r] = add(result[r], term, result[r].exact, term.exact)
        assert len(result) == n_out
        return result

    def _sums(self, vec: list[int], transpose: bool, absolute: bool = False) -> list[int]:
        rows = self.rows if not absolute else self._abs()
        if not transpose:
            return [sum(map(mul, row, vec)) for row in rows]
        acc = [0] * self.shape[1]
        for row, x in zip(rows, vec):
            if x:
                acc = [a + w * x for a, w in zip(acc, row)]
        return acc

    def _abs(self) -> list[list[int]]:
        if not hasattr(self, "_abs_rows"):
            self._abs_rows = [[abs(w) for w in row] for row in self.rows]
        return self._abs_rows


class Outer:
    """``δ hᵀ`` (∂L/∂W), element by element when asked; stated elements override."""

    def __init__(self, left: list[Num], right: list[Num], extra: dict | None = None):
        self.left, self.right = left, right
        self.shape = (len(left), len(right))
        self.extra = dict(extra or {})
        self.left_exact, self.right_exact = [_exact(x) for x in left], [_exact(x) for x in right]

    def formula(self, i: int, j: int) -> Num:
        return times(self.left[i], self.right[j], self.left_exact[i], self.right_exact[j])

    def element(self, i: int, j: int) -> Num:
        return self.extra.get((i, j)) or self.formula(i, j)

    def override(self, values: dict) -> "Outer":
        return Outer(self.left, self.right, {**self.extra, **values})


def _product_exact(g: Outer, i: int, j: int):
    """The exact value of δ_i h_j when both are exact, else False (let ``update`` look at the
    product's enclosure: one of width zero is exact too, as ``value_of`` takes it)."""
    a, b = g.left_exact[i], g.right_exact[j]
    return False if a is None or b is None else a * b


class Updated:
    """``W − η G`` for an exact-matrix ``W`` and ``G = δ hᵀ``; stated elements override."""

    def __init__(self, w: Rows, lr: Num, g: Outer, extra: dict | None = None):
        self.w, self.lr, self.g = w, lr, g
        self.shape = w.shape
        self.extra = dict(extra or {})
        self.lr_exact = _exact(lr)

    def formula(self, i: int, j: int) -> Num:
        w = self.w.element(i, j)
        g = self.g.element(i, j)
        return update(w, self.lr, g, w.exact if (i, j) not in self.w.extra else False, self.lr_exact,
                      False if (i, j) in self.g.extra else _product_exact(self.g, i, j))

    def element(self, i: int, j: int) -> Num:
        return self.extra.get((i, j)) or self.formula(i, j)

    def override(self, values: dict) -> "Updated":
        return Updated(self.w, self.lr, self.g, {**self.extra, **values})

    def matvec(self, v: list[Num]) -> list[Num]:
        """(W − η δ hᵀ) v = W v − η δ (hᵀ v), plus the difference at every element that is not the
        rank-one form (a stated element of W_new or of ∂L/∂W)."""
        wv = self.w.matvec(v)
        s = dot(self.g.right, v)
        neg_lr = times(rational(sp.Integer(-1)), self.lr)
        out = [add(a, times(neg_lr, times(d, s))) for a, d in zip(wv, self.g.left)]
        for (i, j) in set(self.g.extra) | set(self.extra):
            rank_one = update(self.w.element(i, j), self.lr, self.g.formula(i, j))
            diff = add(self.element(i, j), times(rational(sp.Integer(-1)), rank_one))
            out[i] = add(out[i], times(diff, v[j]))
        return [self._exact_row(i, num, v) for i, num in enumerate(out)]

    def _row_known(self, i: int, v: list[Num]) -> bool:
        """Whether v and every W_new[i, j] = W[i, j] − η δ_i h_j are known exactly (δ_i h_j is when
        both are, or when either is exactly 0: an enclosure of width zero)."""
        if not hasattr(self, "_known"):
            he = self.g.right_exact
            self._known = (all(_exact(x) is not None for x in v) and _exact(self.lr) is not None,
                           all(e is not None for e in he), all(e is not None and e == 0 for e in he))
        v_lr, h_all, h_zero = self._known
        if not v_lr:
            return False
        d = _exact(self.g.left[i])
        if not ((d is not None and (d == 0 or h_all)) or h_zero):
            return False
        extra = [j for (r, j) in set(self.g.extra) | set(self.extra) | set(self.w.extra) if r == i]
        return all(_exact(self.element(i, j)) is not None for j in extra)

    def _exact_row(self, i: int, num: Num, v: list[Num]) -> Num:
        """Row i of ``W_new v`` is exact exactly when every element it reads is known exactly (as
        ``value_of`` decides for Σ_j W_new[i,j] v[j]): then its exact value, else an enclosure."""
        if not self._row_known(i, v):
            return Num(num.enclosure) if num.exact is not None else num
        if num.exact is not None:
            return num
        total = sum((_fraction(_exact(self.element(i, j))) * _fraction(_exact(x)) for j, x in enumerate(v)),
                    Fraction(0))
        return _num_exact(total)


def dot(a: list[Num], b: list[Num]) -> Num:
    """Σ a_k b_k: exact when both are exact, else an enclosure from fixed-point integers."""
    ea, eb = [_exact(x) for x in a], [_exact(x) for x in b]
    if all(e is not None for e in ea) and all(e is not None for e in eb):
        return _num_exact(sum((_fraction(x) * _fraction(y) for x, y in zip(ea, eb)), Fraction(0)))
    p = iv.prec + HEADROOM
    fa, fb = [_fixed(x, p) for x in a], [_fixed(x, p) for x in b]
    lo = hi = 0
    for (al, ah), (bl, bh) in zip(fa, fb):
        prods = (al * bl, al * bh, ah * bl, ah * bh)
        lo += min(prods)
        hi += max(prods)
    return _interval(lo, hi, 1 << (2 * p))


# ----------------------------------------------------------------------------- evaluation

def _parse(sym: sp.Symbol) -> tuple[str, tuple[int, ...]]:
    name = sym.name
    if "[" not in name:
        return name, ()
    base, rest = name.split("[", 1)
    return base, tuple(int(i) for i in rest[:-1].split(","))


class WideValues(Mapping):
    """``{symbol: Num}`` for every element of a wide derivation, computed when asked for (at the
    precision it was evaluated at)."""

    def __init__(self, derivation: WideDerivation, store: dict, bits: int = DEFAULT_PREC):
        self.derivation, self.store, self.bits = derivation, store, bits

    def quantity(self, name: str):
        return self.store[self.derivation.resolve(name)]

    def __getitem__(self, sym: sp.Symbol) -> Num:
        name, index = _parse(sym)
        if name not in self.store:
            raise KeyError(sym)
        value = self.store[name]
        if isinstance(value, Num):
            if index:
                raise KeyError(sym)
            return value
        if isinstance(value, list):
            if len(index) != 1 or not 0 <= index[0] < len(value):
                raise KeyError(sym)
            return value[index[0]]
        if len(index) != 2 or not (0 <= index[0] < value.shape[0] and 0 <= index[1] < value.shape[1]):
            raise KeyError(sym)
        with precision(self.bits):
            return value.element(*index)

    def __iter__(self) -> Iterator[sp.Symbol]:
        for step in self.derivation.steps:
            yield from step.target.symbols()

    def __len__(self) -> int:
        return sum(s.target.size for s in self.derivation.steps)


class Hot:
    """The elements of a quantity whose value reads a stated number: explicit index tuples, plus
    for a matrix whole rows and columns (``rows``, ``cols``) or everything (``every``), unlisted."""

    def __init__(self, items=(), rows=(), cols=(), every: bool = False):
        self.items, self.rows, self.cols, self.every = set(items), set(rows), set(cols), every

    def __contains__(self, index) -> bool:
        return (self.every or index in self.items or
                (len(index) == 2 and (index[0] in self.rows or index[1] in self.cols)))

    def __bool__(self) -> bool:
        return bool(self.every or self.items or self.rows or self.cols)

    def __or__(self, other: "Hot") -> "Hot":
        return Hot(self.items | other.items, self.rows | other.rows, self.cols | other.cols, self.every or other.every)

    def vector(self) -> set[int]:
        """The positions of a vector's elements."""
        return {i for (i,) in self.items}

    def any_in_row(self, i: int) -> bool:
        return self.every or bool(self.cols) or i in self.rows or any(ij[0] == i for ij in self.items)

    def any_in_column(self, j: int) -> bool:
        return self.every or bool(self.rows) or j in self.cols or any(ij[1] == j for ij in self.items)


NONE = Hot()


class _Run:
    """One pass over the steps.  ``stated`` maps (quantity, index) to a Rational: a step reads the
    stated value of an input element when one is given (the carried values of ``verify``), and
    computes its own value from what it reads."""

    def __init__(self, d: WideDerivation, stated: dict[tuple[str, tuple], sp.Rational]):
        self.d, self.net = d, d.net
        self.stated: dict[str, dict[tuple, Num]] = {}
        for (name, idx), v in stated.items():
            self.stated.setdefault(d.resolve(name), {})[idx] = rational(v)
        self.carried: dict = {}          # name -> what the step computes
        self.env: dict = {}              # name -> what later steps read
        self.touched: dict[str, Hot] = {}

    def put(self, name: str, value, touched: Hot = NONE) -> None:
        self.carried[name] = value
        self.touched[name] = touched
        over = self.stated.get(name)
        if not over:
            self.env[name] = value
        elif isinstance(value, Num):
            self.env[name] = over[()]
        elif isinstance(value, list):
            value = list(value)
            for (i,), v in over.items():
                value[i] = v
            self.env[name] = value
        else:
            self.env[name] = value.override(over)

    def hot(self, name: str) -> Hot:
        """The elements of ``name`` that carry a stated number (stated, or computed from one)."""
        return self.touched.get(name, NONE) | Hot(self.stated.get(name, {}))

    def run(self) -> None:
        net, L = self.net, len(self.net.layers)
        sizes = net.sizes
        self.put("x", [given_value(v) for v in net.input])
        self.put("t", [given_value(v) for v in net.target])
        for l, layer in enumerate(net.layers, start=1):
            self.put(f"W{l}", Rows.of(layer.weights))
            if layer.bias != ():
                self.put(f"b{l}", [given_value(v) for v in layer.bias])
        if net.learning_rate is not None:
            self.put(LR, given_value(net.learning_rate))
        self.forward("")
        # ∇_y L, one term of the loss per output
        y, t = self.env[f"h{L}"], self.env["t"]
        ys, ts = vector_symbols(f"h{L}", sizes[-1]), vector_symbols("t", sizes[-1])
        grads = output_gradient(net.loss, f"h{L}", sizes[-1])
        hy, ht = self.hot(f"h{L}"), self.hot("t")
        self.put("grad_y", [value_of(g, {ys[k]: y[k], ts[k]: t[k]}) for k, g in enumerate(grads)],
                 Hot((k,) for k, g in enumerate(grads) if (ys[k] in g.free_symbols and (k,) in hy) or
                     (ts[k] in g.free_symbols and (k,) in ht)))
        for l in range(L, 0, -1):
            layer = net.layers[l - 1]
            act = primitives.ACTIVATIONS[layer.activation.name]
            n = sizes[l]
            if act.from_output is not None:        # g' from the output h, as derive_network writes it
                src, syms = f"h{l}", vector_symbols(f"h{l}", n)
                exprs = [act.from_output(h, **layer.activation.kwargs) for h in syms]
            else:
                src, syms = f"z{l}", vector_symbols(f"z{l}", n)
                dg = primitives.derivative(act.name, layer.activation.kwargs)
                exprs = [dg.xreplace({primitives.X: z}) for z in syms]
            values = self.env[src]
            hot = self.hot(src)          # (g' of the identity is the constant 1: it reads nothing)
            self.put(f"gprime{l}", [value_of(e, {sym: values[i]}) for i, (e, sym) in enumerate(zip(exprs, syms))],
                     Hot((i,) for i, e in enumerate(exprs) if e.free_symbols and (i,) in hot))
            up = "grad_y" if l == L else f"grad_h{l}"
            self.put(f"delta{l}", [times(a, b) for a, b in zip(self.env[up], self.env[f"gprime{l}"])],
                     self.hot(up) | self.hot(f"gprime{l}"))
            prev = "x" if l == 1 else f"h{l - 1}"
            delta = self.env[f"delta{l}"]
            self.put(f"grad_W{l}", Outer(delta, self.env[prev]),
                     Hot(rows=self.hot(f"delta{l}").vector(), cols=self.hot(prev).vector()))
            if layer.bias != ():
                self.put(f"grad_b{l}", [same(v) for v in delta], self.hot(f"delta{l}"))
            if l > 1:
                hot_w, hot_d = self.hot(f"W{l}"), self.hot(f"delta{l}")
                self.put(f"grad_h{l - 1}", self.env[f"W{l}"].rmatvec(delta),
                         Hot((j,) for j in range(sizes[l - 1]) if hot_d or hot_w.any_in_column(j)))
        if net.learning_rate is not None:
            lr = self.env[LR]
            every = bool(self.hot(LR))
            for l, layer in enumerate(net.layers, start=1):
                self.put(f"W{l}_new", Updated(self.env[f"W{l}"], lr, self.env[f"grad_W{l}"]),
                         self.hot(f"W{l}") | self.hot(f"grad_W{l}") | Hot(every=every))
                if layer.bias != ():
                    b, gb = self.env[f"b{l}"], self.env[f"grad_b{l}"]
                    hot = self.hot(f"b{l}") | self.hot(f"grad_b{l}")
                    self.put(f"b{l}_new", [update(a, lr, c) for a, c in zip(b, gb)],
                             Hot((i,) for i in range(len(b)) if every or (i,) in hot))
            self.forward("_new")

    def forward(self, suffix: str) -> None:
        net, prev = self.net, "x"
        for l, layer in enumerate(net.layers, start=1):
            zs = self.env[f"W{l}{suffix}"].matvec(self.env[prev])
            n = len(zs)
            hot_w, hot_v = self.hot(f"W{l}{suffix}"), bool(self.hot(prev))
            hot = Hot((i,) for i in range(n) if hot_v or hot_w.any_in_row(i))
            if layer.bias != ():     # a row of W v is exact when its inputs are, as value_of decides
                zs = [add(a, c, a.exact) for a, c in zip(zs, self.env[f"b{l}{suffix}"])]
                hot = hot | self.hot(f"b{l}{suffix}")
            self.put(f"z{l}{suffix}", zs, hot)
            act = primitives.ACTIVATIONS[layer.activation.name]
            z_syms, z = vector_symbols(f"z{l}{suffix}", n), self.env[f"z{l}{suffix}"]
            self.put(f"h{l}{suffix}", [value_of(act.define(s, **layer.activation.kwargs), {s: z[i]})
                                       for i, s in enumerate(z_syms)], self.hot(f"z{l}{suffix}"))
            prev = f"h{l}{suffix}"
        y, t = self.env[prev], self.env["t"]
        ys, ts = vector_symbols(prev, len(y)), vector_symbols("t", len(t))
        expr = primitives.LOSSES[net.loss].define(ys, ts)
        self.put("loss" + suffix, value_of(expr, dict(zip(ys, y)) | dict(zip(ts, t))),
                 Hot([()]) if self.hot(prev) or self.hot("t") else NONE)


def given_value(v: sp.Expr) -> Num:
    """A given number as the element engine evaluates it."""
    return rational(v) if v.is_Rational else value_of(v, {})


class Touched:
    """``symbol in touched``: the symbols whose carried value reads a stated number."""

    def __init__(self, d: WideDerivation, touched: dict[str, Hot]):
        self.d, self.touched = d, touched

    def __contains__(self, sym) -> bool:
        name, index = _parse(sym)
        hot = self.touched.get(self.d.resolve(name))
        return hot is not None and index in hot


def evaluate(d: WideDerivation, bits: int = DEFAULT_PREC) -> WideValues:
    """Every value of a wide derivation (computed lazily for ∂L/∂W and W_new elements)."""
    with precision(bits):
        run = _Run(d, {})
        run.run()
    return WideValues(d, run.carried, bits)


def carry(d: WideDerivation, stated: Mapping[sp.Symbol, sp.Rational], bits: int = DEFAULT_PREC):
    """:func:`derive.core.evaluate.carry` for a wide derivation: (carried values, touched symbols)."""
    with precision(bits):
        run = _Run(d, {_parse(s): v for s, v in stated.items()})
        run.run()
    return WideValues(d, run.carried, bits), Touched(d, run.touched)


# ----------------------------------------------------------------------------- solve

EXACT_LIMIT = 100_000      # elements of a quantity that solve writes exactly (all of them as floats)


def _float(num: Num) -> float:
    """``float(num)`` (what ``report.solve_dict`` writes), at the precision in force when it is called."""
    if num.exact is not None:
        return float(num.exact)
    return mlib.to_float(mlib.mpi_mid(num.enclosure._mpi_, iv.prec))


def _rows_of(d: WideDerivation, values: WideValues, value) -> Iterator[list[Num]]:
    """The rows of a matrix quantity as Nums, computed at the evaluation's precision."""
    for i in range(value.shape[0]):
        with precision(values.bits):
            row = [value.element(i, j) for j in range(value.shape[1])]
        yield row


def _given_rows(value: Rows) -> Iterator[tuple[list[float], list[str]]]:
    """Floats and exact texts of a given matrix, from its integers (entries that are not rational: their Nums)."""
    from derive.core.rounding import exact_text
    for i, row in enumerate(value.rows):
        fr = [Fraction(a, value.den) for a in row]
        floats, texts = [float(f) for f in fr], [str(f) for f in fr]
        for (r, j), num in value.extra.items():
            if r == i:
                floats[j], texts[j] = _float(num), exact_text(num)
        yield floats, texts


def _fast_float_rows(value, bits: int) -> Iterator[list[float]]:
    """Floats of ∂L/∂W = δ hᵀ or W_new = W − η δ hᵀ without a Num per element: each element's
    certified interval in fixed-point integers (as ``Rows`` products are), its midpoint rounded to
    the nearest float (an exact element: its value, correctly rounded)."""
    with precision(bits):
        p = iv.prec + HEADROOM
        outer = value if isinstance(value, Outer) else value.g
        if isinstance(value, Outer):
            left = outer.left
        else:
            neg_lr = times(rational(sp.Integer(-1)), value.lr)
            left = [times(neg_lr, d) for d in outer.left]       # −η δ_i, one Num per row
        right = [_fixed(h, p) for h in outer.right]
        right_exact = [_exact(h) for h in outer.right]
        scale = 1 << (2 * p + 1)
        for i, c in enumerate(left):
            cl, ch = _fixed(c, p)
            ce = _exact(c)
            w = value.w.rows[i] if isinstance(value, Updated) else None
            den = value.w.den if w is not None else 1
            row = []
            for j, ((hl, hh), he) in enumerate(zip(right, right_exact)):
                if ce is not None and he is not None:
                    q = _fraction(ce) * _fraction(he) + (Fraction(w[j], den) if w is not None else 0)
                    row.append(float(q))
                    continue
                a, b, e, f = cl * hl, cl * hh, ch * hl, ch * hh
                mid2 = min(a, b, e, f) + max(a, b, e, f)            # 2·mid at scale 2^(2p)
                row.append((w[j] * scale + den * mid2) / (den * scale) if w is not None else mid2 / scale)
            for (r, j) in set(getattr(value, "extra", {})) | set(outer.extra) | \
                    (set(value.w.extra) if isinstance(value, Updated) else set()):
                if r == i:
                    row[j] = _float(value.element(i, j))
            yield row


def solve_dict(name: str, d: WideDerivation) -> dict:
    """``report.solve_dict`` for a wide derivation: every element as a float (``quantities``), and
    exactly (``exact``) every element of each quantity of at most ``EXACT_LIMIT`` elements; a larger
    matrix's exact entry is None and its name is listed under ``exact_omitted``."""
    from derive.core.rounding import exact_text
    values = evaluate(d)
    out, exact, omitted = {}, {}, []
    for step in d.steps:
        v = values.store[step.name]
        with_exact = step.target.size <= EXACT_LIMIT
        if isinstance(v, Num):
            out[step.name], exact[step.name] = _float(v), exact_text(v)
        elif isinstance(v, list):
            out[step.name], exact[step.name] = [_float(x) for x in v], [exact_text(x) for x in v]
        elif isinstance(v, Rows):
            rows = list(_given_rows(v))
            out[step.name] = [f for f, _ in rows]
            exact[step.name] = [t for _, t in rows] if with_exact else None
        elif not with_exact:
            out[step.name], exact[step.name] = list(_fast_float_rows(v, values.bits)), None
        else:
            floats, texts = [], []
            for row in _rows_of(d, values, v):
                floats.append([_float(x) for x in row])
                if with_exact:
                    texts.append([exact_text(x) for x in row])
            out[step.name], exact[step.name] = floats, (texts if with_exact else None)
        if not with_exact:
            omitted.append(step.name)
    for alias, target in d.aliases:
        if target in out and alias not in out:
            out[alias], exact[alias] = out[target], exact[target]
    result = {"name": name, "quantities": out, "exact": exact}
    if omitted:
        result["exact_omitted"] = omitted
    return result
