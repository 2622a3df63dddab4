"""The registry's stable forms equal the definitions; the generator's rewrites are identities.

Checked at 60 significant digits (mpmath through SymPy's evalf), at points from −800 to 800 where
the float forms differ most, and at random points for the rewrites of ``kernels.stable``.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from derive.core import primitives
from kernels import stable

X = sp.Symbol("x", real=True)
POINTS = [-800, -30, -1, sp.Rational(-1, 10**8), 0, sp.Rational(1, 10**8), sp.Rational(1, 2), 30, 800]
PARAMS = {"alpha": sp.Rational(7, 10), "beta": sp.Rational(3, 2)}


def value(expr, at: dict):
    return sp.N(expr.xreplace(at).rewrite(sp.log), 60)     # log1p/expm1 as log/exp, evaluated at 60 digits


def same(a, b):
    a, b = sp.N(a, 60), sp.N(b, 60)
    return abs(a - b) <= sp.Float("1e-45", 60) * max(1, abs(b))


@pytest.mark.parametrize("name", [n for n, a in primitives.ACTIVATIONS.items() if a.stable and not a.vector])
def test_scalar_stable_forms_equal_the_definitions(name):
    entry = primitives.ACTIVATIONS[name]
    params = {k: PARAMS[k] for k, _ in entry.params}
    define, stable_form = entry.define(X, **params), entry.stable(X, **params)
    assert define != stable_form                              # a different expression ...
    for p in POINTS:
        assert same(value(stable_form, {X: p}), value(define, {X: p})), (name, p)   # ... of the same function


def test_softmax_stable_form_equals_the_definition():
    xs = sp.symbols("x0:4", real=True)
    entry = primitives.ACTIVATIONS["softmax"]
    rng = np.random.default_rng(0)
    for _ in range(5):
        at = dict(zip(xs, [sp.Integer(int(v)) for v in rng.integers(-1000, 1000, 4)]))
        for s, d in zip(entry.stable(xs), entry.define(xs)):
            assert same(value(s, at), value(d, at))


A, B, C = sp.symbols("a b c", real=True)
REWRITES = [sp.log(sp.exp(A) + sp.exp(B) + sp.exp(C)), sp.log(1 + sp.exp(A)), sp.log(2 + 3 * sp.exp(A)),
            sp.exp(A) / (sp.exp(A) + sp.exp(B)) - C, 1 / (1 + sp.exp(-A)) ** 2 + B,
            A * sp.exp(-A) / (1 + sp.exp(-A)) ** 2]


@pytest.mark.parametrize("expr", REWRITES, ids=str)
def test_rewrites_are_identities(expr):
    out = stable.rewrite(expr)
    assert out != expr
    rng = np.random.default_rng(1)
    for _ in range(6):
        at = {s: sp.Rational(int(v), 7) for s, v in zip((A, B, C), rng.integers(-7000, 7000, 3))}
        assert same(value(out, at), value(expr, at))


def test_logs_of_activation_outputs_are_taken_of_their_definitions():
    z = sp.symbols("z0:3", real=True)
    h = sp.symbols("h0:3", real=True)
    defs = dict(zip(h, primitives.ACTIVATIONS["softmax"].define(list(z))))
    loss = -sp.log(h[1])
    out = stable.rewrite(stable.inline_logs(loss, defs))
    assert not out.has(*h)                                   # no log of a probability that may be 0.0
    at = {z[0]: 0, z[1]: -800, z[2]: 5}
    assert same(value(out, at), value(loss.xreplace(defs), at))


def test_removable_singularities_are_cancelled():
    y, t = sp.symbols("y t", real=True)
    bce_grad = (-(t / y) + (1 - t) / (1 - y)) / 3
    out = stable.cancel_singular(bce_grad * y * (1 - y))
    assert sp.simplify(out - (y - t) / 3) == 0
    assert stable.cancel_singular(sp.exp(A) / (sp.exp(A) + sp.exp(B))) is None    # nothing to cancel


# ----------------------------------------------------------------------------- shared exponentials

A0 = sp.Symbol("a0", real=True)


def _piecewise_forms():
    """Every Piecewise a helper prints: the registry's stable scalar forms and their derivatives."""
    out = []
    for name, entry in primitives.ACTIVATIONS.items():
        if entry.vector:
            continue
        params = {k: PARAMS[k] for k, _ in entry.params}
        body = primitives.stable_activation(name, A0, params)
        for form, label in [(body, name), (sp.diff(body, A0), name + "'")]:
            out += [(label, pw) for pw in form.atoms(sp.Piecewise)]
    return out


@pytest.mark.parametrize("label,pw", _piecewise_forms(), ids=lambda v: v if isinstance(v, str) else "")
def test_signed_exponentials_are_identities(label, pw):
    """Each branch, with x written as ±|x| inside its exponentials where its condition fixes the
    sign, equals the branch as derived, on its own side of 0 (60 digits)."""
    from kernels.program import signed_exponentials
    out = signed_exponentials(pw)
    assert len(out.args) == len(pw.args)
    for p in POINTS:
        assert same(value(out, {A0: p}), value(pw, {A0: p})), (label, p)


def test_the_stable_sigmoid_helper_computes_one_exponential():
    """The vectorised loop computes every branch: the sigmoid's two branches share e^{−|x|}
    (before the change each had its own exponential)."""
    from kernels.printer import KernelPrinter, VectorPrinter
    from kernels.program import Helper, helper_source
    body = primitives.stable_activation("sigmoid", A0)
    for printer, call in [(VectorPrinter, "vexp("), (KernelPrinter, "math.exp(")]:
        text = helper_source(Helper("sigmoid", (A0,), body), {}, printer)
        assert text.count(call) == 1, text
        assert text.index(call) < text.index("if ")          # computed once, before the branches
