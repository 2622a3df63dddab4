"""Extreme inputs: logits of ±1000, sigmoid inputs of ±800, probabilities that are exactly zero.

Every loss and gradient must be finite and equal (to 1e-12) the value of the *definitions*
evaluated in mpmath at 400 digits, where e^{800} is an ordinary number and 1 − σ(800) ≈ 10^−348
is not rounded to 0; the gradient reference is ``mpmath.diff`` of that loss.  The naive float forms give inf, 0·inf or inf/inf here.
"""
from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

import kernels
from derive.kinds import from_mapping
from kernel_fixtures import CACHE

DIGITS = 400     # set per call: other modules may change mpmath's global precision

ACT = {
    "identity": lambda z: z,
    "sigmoid": lambda z: 1 / (1 + mp.exp(-z)),
    "tanh": mp.tanh,
    "softplus": lambda z: mp.log(1 + mp.exp(z)),
    "swish": lambda z: z / (1 + mp.exp(-z)),
    "bipolar_sigmoid": lambda z: (1 - mp.exp(-z)) / (1 + mp.exp(-z)),
    "elu": lambda z: z if z > 0 else mp.exp(z) - 1,
}


def softmax(zs):
    total = sum(mp.exp(z) for z in zs)
    return [mp.exp(z) / total for z in zs]


def _xlogy(t, y):
    return 0 if t == 0 else t * mp.log(y)     # the limit t·log y → 0 as t → 0


LOSS = {
    "half_sse": lambda y, t: sum((a - b) ** 2 for a, b in zip(y, t)) / 2,
    "bce": lambda y, t: -sum(_xlogy(b, a) + _xlogy(1 - b, 1 - a) for a, b in zip(y, t)) / len(y),
    "cross_entropy": lambda y, t: -sum(_xlogy(b, a) for a, b in zip(y, t)),
    "softmax_cross_entropy": lambda y, t: -sum(_xlogy(b, e) for e, b in zip(softmax(y), t)),
}


def reference(layers, loss, theta, x, t, layout):
    """(loss, gradient) of the definitions at 400 digits; ``layers`` = [(activation, size), ...]."""
    def value(th):
        views = {s.name: th[s.offset:s.offset + s.size] for s in layout.slots}
        h = [mp.mpf(v) for v in x]
        for l, (act, size) in enumerate(layers, start=1):
            W, b = views[f"W{l}"], views[f"b{l}"]
            z = [sum(W[i * len(h) + j] * h[j] for j in range(len(h))) + b[i] for i in range(size)]
            h = softmax(z) if act == "softmax" else [ACT[act](v) for v in z]
        return LOSS[loss](h, [mp.mpf(v) for v in t])
    with mp.workdps(DIGITS):
        th = [mp.mpf(float(v)) for v in theta]
        grad = []
        for i in range(len(th)):
            f = lambda u, i=i: value(th[:i] + [u] + th[i + 1:])
            grad.append(mp.diff(f, th[i]))
        return value(th), grad


def network(layers, loss, n_in):
    return from_mapping({"network": {"input_size": n_in, "loss": loss,
                                     "layer": [{"size": n, "activation": a} for a, n in layers]}})


def check(k, layers, loss, theta, x, t):
    value, grad = k.loss_and_grad(theta, x, t)          # raises NonFiniteError if anything is not finite
    ref_value, ref_grad = reference(layers, loss, theta, x, t, k.layout)
    assert abs(value - float(ref_value)) <= 1e-12 * max(1, abs(float(ref_value)))
    ref = np.array([float(g) for g in ref_grad])
    assert np.all(np.abs(grad - ref) <= 1e-12 * np.maximum(1, np.abs(ref))), (grad, ref)
    return value, grad


def identity_layer(k, n):
    views = k.unpack(theta := np.zeros(k.n_params))
    views["W1"][...] = np.eye(n)
    return theta


@pytest.mark.parametrize("target", [0, 1, 2])
@pytest.mark.parametrize("head", [("identity", "softmax_cross_entropy"), ("softmax", "cross_entropy")])
def test_logits_of_plus_minus_1000(head, target):
    act, loss = head
    layers = [(act, 3)]
    k = kernels.compile(network(layers, loss, 3), cache_dir=CACHE)
    theta = identity_layer(k, 3)
    x, t = np.array([1000.0, -1000.0, 0.0]), np.eye(3)[target]
    value, _ = check(k, layers, loss, theta, x, t)
    assert value == pytest.approx([0.0, 2000.0, 1000.0][target], abs=1e-9)


def test_exactly_zero_probabilities():
    layers = [("softmax", 3)]
    k = kernels.compile(network(layers, "cross_entropy", 3), cache_dir=CACHE)
    theta = identity_layer(k, 3)
    x = np.array([0.0, -800.0, 5.0])
    y = k.forward(theta, x)[0]
    assert y[1] == 0.0 and y[0] > 0                     # the probability really is 0 in float64
    for target in range(3):
        check(k, layers, "cross_entropy", theta, x, np.eye(3)[target])   # finite, even for the zero class


def test_sigmoid_inputs_of_plus_minus_800_with_bce():
    layers = [("sigmoid", 3)]
    k = kernels.compile(network(layers, "bce", 3), cache_dir=CACHE)
    theta = identity_layer(k, 3)
    x = np.array([800.0, -800.0, 0.25])
    assert list(k.forward(theta, x)[0][:2]) == [1.0, 0.0]     # saturated exactly
    value, _ = check(k, layers, "bce", theta, x, np.array([0.0, 1.0, 0.5]))
    assert value > 500                                        # (800 + 800 + …)/3, not inf


@pytest.mark.parametrize("act", ["sigmoid", "softplus", "swish", "bipolar_sigmoid", "tanh", "elu"])
def test_hidden_activations_at_plus_minus_800(act):
    layers = [(act, 4), ("identity", 2)]
    k = kernels.compile(network(layers, "half_sse", 4), cache_dir=CACHE)
    views = k.unpack(theta := np.zeros(k.n_params))
    views["W1"][...] = np.eye(4)
    views["W2"][...] = [[0.3, -0.2, 0.5, 0.1], [-0.4, 0.25, 0.2, -0.3]]
    views["b2"][...] = [0.1, -0.1]
    x = np.array([800.0, -800.0, 3.0, -3.0])
    check(k, layers, "half_sse", theta, x, np.array([0.5, -0.5]))
