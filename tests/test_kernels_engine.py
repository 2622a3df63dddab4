"""The generated kernels against the engine's exact values (``derive.core.evaluate``), to 1e-12.

Every bundled example with numbers is compared quantity by quantity (``trace`` prints every step
of the derivation), and through the entry points a user calls (``sgd_step``, ``loss_and_grad``,
``forward``, ``many_sgd_step``).  The bundled examples that leave their numbers symbolic are
instantiated with random exact numbers and compared the same way.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import kernels
import worked_examples
from derive import kinds
from derive.core import evaluate
from derive.kinds.graph.spec import Graph
from derive.kinds.network.spec import Layer, Network
from derive.kinds import load
from kernel_fixtures import CACHE

TOL = 1e-12


def close(got, ref):
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    assert np.all(np.abs(got - ref) <= TOL * np.maximum(1, np.abs(ref))), (got, ref)


def _examples():
    numeric, symbolic = [], []
    for name in worked_examples.names():
        spec = load(worked_examples.path(name))
        d = kinds.derive(spec)
        if d is None:
            continue
        (numeric if evaluate.is_numeric(d) else symbolic).append(name)
    return numeric, symbolic


NUMERIC, SYMBOLIC = _examples()


def test_the_examples_are_all_covered():
    assert len(NUMERIC) >= 6 and set(SYMBOLIC) >= {"000_4_backprop_formulas", "002_2_net_232_softmax",
                                                   "003_4_bp_formulas"}


def engine_values(problem):
    from derive.kinds import of
    d = of(problem).derive(problem)
    return d, evaluate.evaluate(d)


def compare_trace(trace: dict, derivation, values) -> int:
    compared = 0
    for step in derivation.steps:
        if step.name in trace:
            got = np.asarray(trace[step.name]).ravel()
            close(got, [float(values[s]) for s in step.target.symbols()])
            compared += len(got)
    return compared


def trace_of(k, problem):
    if isinstance(problem, Network):
        theta = k.params_from_spec()
        x, t, lr = k.spec_sample()
        return k.trace(theta, x, t, lr or 0.0)
    return k.trace(k.values_from_spec(), k.spec_learning_rate() or 0.0)


OTHER_KINDS = [n for n in NUMERIC if not isinstance(load(worked_examples.path(n)).problem, (Network, Graph))]


def test_the_other_kinds_are_covered():
    found = {kinds.derive(load(worked_examples.path(n))).kind for n in OTHER_KINDS}
    assert {"cnn", "recurrent", "perceptron"} <= found


@pytest.mark.parametrize("name", [n for n in OTHER_KINDS if "loss" in kinds.derive(load(worked_examples.path(n))).names])
def test_other_kinds_loss_gradient_and_step(name):
    """Convolutional and recurrent kernels: loss, gradient and update through the API, to 1e-12."""
    problem = load(worked_examples.path(name)).problem
    d, values = engine_values(problem)
    k = kernels.compile(problem, cache_dir=CACHE)
    v = k.values_from_spec()
    loss, grad = k.loss_and_grad(v)
    close(loss, float(values[d.quantity("loss").symbol()]))
    views = k.unpack(grad)
    for name_, view in views.items():
        if "grad_" + name_ in d:
            close(view.ravel(), [float(values[s]) for s in d.quantity("grad_" + name_).symbols()])
    if hasattr(k.raw, "sgd_step"):
        new = v.copy()
        k.sgd_step(new, k.spec_learning_rate())
        for name_, view in k.unpack(new).items():
            if k.roles[name_] == "param" and name_ + "_new" in d:
                close(view.ravel(), [float(values[s]) for s in d.quantity(name_ + "_new").symbols()])


@pytest.mark.parametrize("name", NUMERIC)
def test_every_quantity_of_every_numeric_example(name):
    problem = load(worked_examples.path(name)).problem
    d, values = engine_values(problem)
    k = kernels.compile(problem, cache_dir=CACHE)
    compared = compare_trace(trace_of(k, problem), d, values)
    derived = sum(s.target.size for s in d.steps if s.rule != "given")
    assert compared == derived        # every derived quantity of the engine has its printed twin


def _instantiate(net: Network, seed: int) -> Network:
    """The same structure with random exact numbers (one-hot targets where the loss wants Σt = 1)."""
    rng = np.random.default_rng(seed)
    r = lambda: sp.Rational(int(rng.integers(-9, 10)), 10)
    sizes = net.sizes
    layers = tuple(Layer(l.size, l.activation, tuple(tuple(r() for _ in range(sizes[i])) for _ in range(l.size)),
                         () if l.bias == () else tuple(r() for _ in range(l.size)))
                   for i, l in enumerate(net.layers))
    n_out = sizes[-1]
    if net.loss in ("cross_entropy", "softmax_cross_entropy"):
        target = tuple(sp.Integer(int(i == seed % n_out)) for i in range(n_out))
    else:
        target = tuple(r() for _ in range(n_out))
    return Network(sizes[0], tuple(r() for _ in range(sizes[0])), target, layers, net.loss, sp.Rational(1, 2))


@pytest.mark.parametrize("name", [n for n in SYMBOLIC if isinstance(load(worked_examples.path(n)).problem, Network)])
def test_symbolic_examples_at_random_numbers(name):
    problem = load(worked_examples.path(name)).problem
    numeric = _instantiate(problem, seed=3)
    d, values = engine_values(numeric)
    k = kernels.compile(numeric, cache_dir=CACHE)
    assert compare_trace(trace_of(k, numeric), d, values) == sum(s.target.size for s in d.steps if s.rule != "given")


def _network_checks(k, d, values):
    theta = k.params_from_spec()
    x, t, lr = k.spec_sample()
    sym = lambda name: [float(values[s]) for s in d.quantity(name).symbols()]
    L = len(k.sizes) - 1
    params = [p for p in k.layout.names]
    loss, grad = k.loss_and_grad(theta, x, t)
    close(loss, float(values[d.quantity("loss").symbol()]))
    close(grad, np.concatenate([sym("grad_" + p) for p in params]))
    close(k.forward(theta, x)[0], sym(f"h{L}"))
    new = theta.copy()
    close(k.sgd_step(new, x, t, lr), float(values[d.quantity("loss").symbol()]))
    close(new, np.concatenate([sym(p + "_new") for p in params]))
    return theta, x, t, lr, new


def test_entry_points_of_the_mlp_example():
    problem = load(worked_examples.path("000_3_mlp_3333")).problem
    d, values = engine_values(problem)
    k = kernels.compile(problem, cache_dir=CACHE)
    assert k.shape == "unrolled"
    theta, x, t, lr, new = _network_checks(k, d, values)
    Theta = np.tile(theta, (3, 1))
    losses = k.many_sgd_step(Theta, np.tile(x, (3, 1)), np.tile(t, (3, 1)), lr)
    close(losses, [float(values[d.quantity("loss").symbol()])] * 3)
    for row in Theta:
        close(row, new)


@pytest.mark.parametrize("shape, product", [("blas", "np.dot("), ("loops", "mm_abt(")])
def test_blas_and_loops_shapes_agree_with_the_engine(shape, product):
    problem = load(worked_examples.path("000_3_mlp_3333")).problem
    d, values = engine_values(problem)
    k = kernels.compile(problem, shape=shape, cache_dir=CACHE)
    assert k.shape == shape and product in k.source
    _network_checks(k, d, values)


@pytest.mark.parametrize("name", [n for n in NUMERIC if isinstance(load(worked_examples.path(n)).problem, Graph)])
def test_graph_entry_points(name):
    problem = load(worked_examples.path(name)).problem
    d, values = engine_values(problem)
    k = kernels.compile(problem, cache_dir=CACHE)
    v = k.values_from_spec()
    loss, grad = k.loss_and_grad(v)
    close(loss, float(values[d.quantity(problem.loss).symbol()]))
    close(grad, [float(values[d.quantity("grad_" + n).symbol()]) for n in k.names])
    if problem.learning_rate is not None and problem.params:
        new = v.copy()
        k.sgd_step(new, float(problem.learning_rate))
        close(new, [float(values[d.quantity(n + "_new").symbol()]) if n in k.params else v[i]
                    for i, n in enumerate(k.names)])
