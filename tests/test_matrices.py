"""Symbolic matrix graphs (derive/matrices.py) and the claim language's additions: the derived
gradients of the code-analysis network against finite differences of a NumPy loss written apart,
row broadcasting only where asked, the registry's losses, and ∂node/∂arg = 0 off the graph's edges."""
from __future__ import annotations

import random

import numpy as np
import pytest
import sympy as sp

import worked_examples
from derive.kinds import derive
from derive.core.algebra import MatrixAlgebra
from derive.verify.claims import check_claims
from derive.core.errors import SpecError
from derive.core.evaluate import rational, value_of
from derive.core.spec import Claim
from derive.kinds import load, loads
from derive.core.steps import Given
import oracles


def _loss(x, W1, b1, W2, b2, y):
    """−(1/N) Σ y log softmax(tanh(x W1 + b1) W2 + b2), rows are examples (NumPy, written apart)."""
    z2 = np.tanh(x @ W1 + b1) @ W2 + b2
    z2 = z2 - z2.max(axis=1, keepdims=True)
    logp = z2 - np.log(np.exp(z2).sum(axis=1, keepdims=True))
    return -(y * logp).sum() / x.shape[0]


def test_code_analysis_gradients_match_finite_differences():
    d = derive(load(worked_examples.path("003_6_code_analysis")))
    rng = random.Random(3)
    point = {s: sp.Rational(rng.randint(-150, 150), 100)
             for g in d.steps if isinstance(g, Given) for s in g.target.symbols()}
    env = {s: rational(v) for s, v in point.items()}
    for step in d.steps:
        if not isinstance(step, Given):
            for s, e in step.items():
                env[s] = value_of(e, env)
    arrays = {g.name: np.array([float(point[s]) for s in g.target.symbols()]).reshape(g.target.shape)
              for g in d.steps if isinstance(g, Given)}
    order = ["x", "W1", "b1", "W2", "b2", "y"]
    assert abs(float(env[d.quantity("L").symbol()]) - _loss(*(arrays[n] for n in order))) < 1e-12
    h = 1e-6
    for name in order:
        grad = np.array([float(env[s]) for s in d.quantity("grad_" + name).symbols()]).reshape(arrays[name].shape)
        for idx in np.ndindex(arrays[name].shape):
            def at(delta):
                moved = {**arrays, name: arrays[name].copy()}
                moved[name][idx] += delta
                return _loss(*(moved[n] for n in order))
            fd = oracles.central_difference(at, h)
            assert abs(grad[idx] - fd) < 1e-7, (name, idx, grad[idx], fd)


def test_a_bias_row_is_broadcast_only_where_asked():
    row, m = sp.Matrix([[1, 2]]), sp.Matrix([[1, 1], [3, 3]])
    assert MatrixAlgebra(broadcast=True).add(m, row) == sp.Matrix([[2, 3], [4, 5]])
    with pytest.raises(ValueError):
        MatrixAlgebra().add(m, row)                      # answers keep exact shapes
    with pytest.raises(ValueError):
        MatrixAlgebra(broadcast=True).add(sp.Matrix([[1, 2, 3]]), m)


def _claims(spec_text, *pairs):
    spec = loads(spec_text)
    claims = tuple(Claim(f"c{i}", lhs, rhs, (), f"claim[{i}]") for i, (lhs, rhs) in enumerate(pairs))
    spec = type(spec)(**{**spec.__dict__, "claims": claims})
    return [c.verdict for c in check_claims(spec, derive(spec))]


def test_registry_losses_and_row_softmax_in_claims():
    text = '[matrices]\nvalues = { y = [3], p = [3], Z = [2, 2] }\nnodes = ["S = softmax_rows(Z)"]'
    assert _claims(text, ("mse(p, y)", "sum((p - y)**2) / 3"), ("half_sse(p, y)", "sum((p - y)**2) / 3"),
                   ("S[1,0] + S[1,1]", "1"), ("S[0,0]", "exp(Z[0,0]) / (exp(Z[0,0]) + exp(Z[0,1]))")) == \
        ["proved", "differs", "proved", "proved"]


def test_local_derivative_off_an_edge_is_zero():
    text = '[graph]\nvalues = { a = "symbol", b = "symbol" }\nnodes = ["u = 2*a", "v = u*b"]'
    assert _claims(text, ("d(u, b)", "0"), ("d(v, u)", "b"), ("d(u, a)", "3")) == ["proved", "proved", "differs"]
    with pytest.raises(SpecError):
        _claims(text, ("d(u, 2)", "0"))


@pytest.mark.parametrize("table, path", [
    ('values = { x = [2, 2, 2] }\nnodes = ["y = x"]', "matrices.values.x"),
    ('values = { x = [2, 0] }\nnodes = ["y = x"]', "matrices.values.x[1]"),
    ('values = { x = [2] }\nnodes = ["y = x"]\nloss = "L"', "matrices.loss"),
    ('values = { x = [2] }\nnodes = ["x = 2*x"]', "matrices.nodes[0]"),
    ('values = { x = [2] }\nnodes = ["y == x"]', "matrices.nodes[0]"),
])
def test_spec_errors_name_the_key(table, path):
    with pytest.raises(SpecError) as err:
        loads("[matrices]\n" + table)
    assert err.value.path == path


@pytest.mark.parametrize("nodes, path, words", [
    ('["L = x"]', "matrices.loss", "not a scalar"),
    ('["L = x @ x"]', "matrices.nodes[0]", "do not fit"),
    ('["L = open(x)"]', "matrices.nodes[0]", "unknown function"),
])
def test_derivation_errors_name_the_node(nodes, path, words):
    with pytest.raises(SpecError) as err:
        derive(loads(f'[matrices]\nvalues = {{ x = [2, 3] }}\nnodes = {nodes}\nloss = "L"'))
    assert err.value.path == path and words in err.value.message, err.value
