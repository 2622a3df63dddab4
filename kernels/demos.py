"""Demos that train networks with the generated kernels: ``nnderive demo xor`` and ``demo digits``.

* xor — the two-layer sigmoid net of slide 003 (2 inputs, 2 hidden units, 1 output, biases) trained
  by full-batch gradient descent until the slide's error ½ Σ_patterns (d − o)² is below 0.01
  (the slide reached 0.008 after 11 050 iterations from weights it does not print);
* digits — scikit-learn's bundled 8×8 digits (1 797 images), a 64-64-10 ReLU net with softmax
  cross-entropy, minibatch SGD; reports test accuracy on a held-out quarter (goal ≥ 95 %).
"""
from __future__ import annotations

import time

import numpy as np

XOR = {"network": {"input_size": 2, "loss": "half_sse",
                   "layer": [{"size": 2, "activation": "sigmoid"}, {"size": 1, "activation": "sigmoid"}]}}
DIGITS = {"network": {"input_size": 64, "loss": "softmax_cross_entropy",
                      "layer": [{"size": 64, "activation": "relu"}, {"size": 10, "activation": "identity"}]}}


def _kernel(mapping, cache_dir=None):
    import kernels
    from derive.kinds import from_mapping
    return kernels.compile(from_mapping(mapping), cache_dir=cache_dir)


def xor(seed: int = 1, lr: float = 2.0, goal: float = 0.01, max_iterations: int = 200_000,
        cache_dir=None, log=print) -> dict:
    """Train the XOR net; returns iterations, final error and outputs (inputs (0,0), (0,1), (1,0), (1,1))."""
    k = _kernel(XOR, cache_dir)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    T = np.array([[0], [1], [1], [0]], dtype=float)
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-1, 1, k.n_params)      # the slide does not print its initial weights
    step = k.raw.sgd_step
    started = time.perf_counter()
    error = float("inf")
    for iteration in range(1, max_iterations + 1):
        mean = step(theta, X, T, lr)              # mean over the 4 patterns of ½(d − o)²
        if mean != mean:
            raise FloatingPointError("non-finite step")
        error = 4 * mean                          # the slide's error: the sum over the patterns
        if iteration == 1 or iteration % 2000 == 0:
            log(f"iteration {iteration:>6}: error {error:.4f}")
        if error < goal:
            break
    seconds = time.perf_counter() - started
    outputs = k.forward(theta, X)[:, 0]
    error = float(0.5 * np.sum((outputs - T[:, 0]) ** 2))
    verdict = f"below {goal}" if error < goal else f"NOT below {goal}: stuck (try another --seed)"
    log(f"iteration {iteration:>6}: error {error:.5f}, {verdict}; {seconds:.3f} s including compilation")
    log("x1 x2  d  output")
    for (a, b), d, o in zip(X, T[:, 0], outputs):
        log(f" {a:.0f}  {b:.0f}  {d:.0f}  {o:.3f}")
    return {"iterations": iteration, "error": error, "outputs": outputs.tolist(), "seconds": seconds,
            "converged": error < goal}


def digits(seed: int = 0, epochs: int = 40, batch: int = 32, lr: float = 0.1, cache_dir=None, log=print) -> dict:
    """Train on 3/4 of scikit-learn's 8×8 digits, report accuracy on the other 1/4."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise RuntimeError("the digits demo needs scikit-learn: pip install 'nnderive[digits]'") from None
    data = load_digits()
    X = data.data / 16.0
    y = data.target
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
    Ttr = np.eye(10)[ytr]
    k = _kernel(DIGITS, cache_dir)
    theta = k.init_params(seed)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(Xtr))
        total = 0.0
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            total += k.sgd_step(theta, Xtr[rows], Ttr[rows], lr) * len(rows)
        if epoch == 1 or epoch % 10 == 0:
            acc = float(np.mean(np.argmax(k.forward(theta, Xte), axis=1) == yte))
            log(f"epoch {epoch:>3}: training loss {total / len(Xtr):.4f}, test accuracy {acc:.3%}")
    seconds = time.perf_counter() - started
    accuracy = float(np.mean(np.argmax(k.forward(theta, Xte), axis=1) == yte))
    log(f"test accuracy {accuracy:.2%} on {len(yte)} held-out images ({seconds:.2f} s of training, "
        "including compilation on first use)")
    return {"accuracy": accuracy, "test_images": int(len(yte)), "seconds": seconds}
