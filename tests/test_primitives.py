"""The registry against independent checks: textbook derivative forms, SymPy diff, central differences."""
from __future__ import annotations

import random

import mpmath
import pytest
import sympy as sp

from derive.core import primitives
from derive.core.primitives import ACTIVATIONS, FUNCTIONS, LOSSES, X
import oracles

mpmath.mp.dps = 40
SCALAR = [name for name, a in ACTIVATIONS.items() if not a.vector]


def _params(name):
    return {k: sp.Rational(3, 10) if k == "alpha" else sp.Rational(17, 10) for k, _ in ACTIVATIONS[name].params}


def _mp(expr, x):
    """Evaluate a SymPy expression of X at an mpf point through mpmath (40 digits)."""
    return mpmath.mpf(sp.N(expr.subs(X, sp.Rational(x)), 40))


# Textbook derivatives, typed from the formulas (not from the registry).
def _sig(x):
    return 1 / (1 + mpmath.exp(-x))


TEXTBOOK = {
    "identity": lambda x, p: 1,
    "sigmoid": lambda x, p: _sig(x) * (1 - _sig(x)),
    "tanh": lambda x, p: 1 - mpmath.tanh(x) ** 2,
    "relu": lambda x, p: 1 if x > 0 else 0,
    "leaky_relu": lambda x, p: 1 if x > 0 else p["alpha"],
    "elu": lambda x, p: 1 if x > 0 else p["alpha"] * mpmath.exp(x),
    "softplus": lambda x, p: _sig(x),
    "swish": lambda x, p: _sig(p["beta"] * x) + p["beta"] * x * _sig(p["beta"] * x) * (1 - _sig(p["beta"] * x)),
    "bipolar_sigmoid": lambda x, p: (1 - ((1 - mpmath.exp(-x)) / (1 + mpmath.exp(-x))) ** 2) / 2,
    "sign": lambda x, p: 0,
    "step": lambda x, p: 0,
}

POINTS = ["-2.7", "-1.3", "-0.4", "0.35", "1.1", "3.2"]


def test_every_scalar_activation_has_a_textbook_derivative_here():
    assert set(TEXTBOOK) == set(SCALAR)


@pytest.mark.parametrize("name", SCALAR)
@pytest.mark.parametrize("x", POINTS)
def test_diff_of_the_definition_matches_the_textbook_derivative(name, x):
    params = _params(name)
    d = primitives.derivative(name, params)
    p = {k: mpmath.mpf(sp.N(v, 40)) for k, v in params.items()}
    assert abs(_mp(d, x) - TEXTBOOK[name](mpmath.mpf(x), p)) < mpmath.mpf(10) ** -30


@pytest.mark.parametrize("name", SCALAR)
@pytest.mark.parametrize("x", POINTS)
def test_diff_matches_central_differences(name, x):
    params = _params(name)
    g = ACTIVATIONS[name].define(X, **params)
    h = mpmath.mpf(10) ** -12
    xm = mpmath.mpf(x)
    f = lambda v: mpmath.mpf(sp.N(g.subs(X, sp.Float(v, 40)), 40))
    fd = oracles.central_difference(lambda delta: f(xm + delta), h)
    assert abs(_mp(primitives.derivative(name, params), x) - fd) < mpmath.mpf(10) ** -15


@pytest.mark.parametrize("name", [n for n in SCALAR if ACTIVATIONS[n].from_output is not None])
def test_output_form_of_the_derivative_equals_diff(name):
    params = _params(name)
    g = ACTIVATIONS[name].define(X, **params)
    out_form = ACTIVATIONS[name].from_output(g, **params)
    for x in POINTS + ["0"]:
        assert abs(_mp(out_form - primitives.derivative(name, params), x)) < mpmath.mpf(10) ** -30, x


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu"])
def test_kink_convention_at_zero(name):
    """ReLU'(0) = 0, leaky ReLU'(0) = α, ELU'(0) = α: PyTorch's and JAX's choices, documented."""
    params = _params(name)
    expected = {"relu": 0, "leaky_relu": params.get("alpha"), "elu": params.get("alpha")}[name]
    assert primitives.derivative(name, params).subs(X, 0) == expected


def test_sign_and_step_at_zero():
    assert ACTIVATIONS["sign"].define(sp.Integer(0)) == 1
    assert ACTIVATIONS["step"].define(sp.Integer(0)) == 1
    assert ACTIVATIONS["sign"].define(sp.Rational(-1, 3)) == -1


@pytest.mark.parametrize("n", [2, 3, 5])
def test_softmax_jacobian_output_form_equals_diff(n):
    zs = [sp.Symbol(f"z{i}", real=True) for i in range(n)]
    ys = ACTIVATIONS["softmax"].define(zs)
    jac = ACTIVATIONS["softmax"].jacobian_from_output(ys)
    rng = random.Random(n)
    point = {z: sp.Rational(rng.randint(-300, 300), 100) for z in zs}
    for i in range(n):
        for j in range(n):
            diff = sp.diff(ys[i], zs[j]) - jac[i][j]
            assert abs(sp.N(diff.subs(point), 30)) < 1e-25


def _loss_point(name, n, rng):
    y = [sp.Rational(rng.randint(5, 95), 100) for _ in range(n)]
    if name in ("hinge", "cross_entropy", "softmax_cross_entropy"):
        t = [0] * n
        t[rng.randrange(n)] = 1
    else:
        t = [sp.Rational(rng.randint(0, 100), 100) for _ in range(n)]
    return y, [sp.Integer(v) if isinstance(v, int) else v for v in t]


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_gradient_by_diff_matches_central_differences(name):
    rng = random.Random(hash(name) % 1000)
    n = 3
    ys = [sp.Symbol(f"y{i}", real=True) for i in range(n)]
    ts = [sp.Symbol(f"t{i}", real=True) for i in range(n)]
    loss = LOSSES[name].define(ys, ts)
    y, t = _loss_point(name, n, rng)
    env = dict(zip(ts, t))
    h = sp.Rational(1, 10**15)
    for i in range(n):
        grad = sp.diff(loss, ys[i]).subs(env).subs(dict(zip(ys, y)))
        fd = oracles.central_difference(
            lambda delta: loss.subs(env).subs(dict(zip(ys, [v + (delta if k == i else 0) for k, v in enumerate(y)]))), h)
        assert abs(sp.N(grad - fd, 40)) < 1e-12, (name, i)


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_softmax_cross_entropy_on_logits_simplifies_to_softmax_minus_t_under_sum_one(n):
    ys = [sp.Symbol(f"y{i}", real=True) for i in range(n)]
    ts = [sp.Symbol(f"t{i}", real=True) for i in range(n)]
    entry = LOSSES["softmax_cross_entropy"]
    raw = [sp.diff(entry.define(ys, ts), v) for v in ys]
    total = sum(sp.exp(v) for v in ys)
    for i in range(n):
        d = (raw[i] - (sp.exp(ys[i]) / total - ts[i])).subs(ts[-1], 1 - sum(ts[:-1]))
        assert sp.simplify(d) == 0


def test_elementary_functions_max_min():
    a, b = sp.Rational(3, 2), sp.Rational(-1, 4)
    assert FUNCTIONS["max"].build(a, b) == a and FUNCTIONS["min"].build(a, b) == b
    assert FUNCTIONS["max"].build(b, a) == a and FUNCTIONS["min"].build(b, a) == b


def test_nothing_outside_the_registry_defines_a_primitive():
    """Activation definitions live only in primitives.py: other modules do not write exp-forms of σ."""
    import pathlib
    root = pathlib.Path(primitives.__file__).parent
    for path in root.glob("*.py"):
        if path.name == "primitives.py":
            continue
        text = path.read_text()
        assert "1 / (1 + sp.exp(" not in text and "1/(1 + sp.exp(" not in text, path.name
