"""Random ``[cnn]`` and ``[recurrent]`` specs within the documented limits (docs/cnn.md,
docs/recurrent.md), with the plain data they were written from, for the oracles.

Shapes are small (maps up to 5×5, kernels up to 3×3, hidden widths up to 3, up to 3 time steps) so
that a case takes about a second; some draws do not fit (a kernel larger than its padded input, a
window larger than its map) and must be refused with one line naming the key.  Numbers come from
a small pool of integers and halves as well as arbitrary decimals, so ties in a max-pooling window
and zeros at a ReLU are common.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from derive.core import primitives
from strategies import decimals

SCALAR = sorted(n for n, a in primitives.ACTIVATIONS.items() if not a.vector)
POOL = ["0", "1", "-1", "2", "-2", "0.5", "-0.5", "3"]


def number() -> st.SearchStrategy[str]:
    return st.sampled_from(POOL) | decimals(-200, 200)


def grid(rows: int, cols: int) -> st.SearchStrategy[list[list[str]]]:
    return st.lists(st.lists(number(), min_size=cols, max_size=cols), min_size=rows, max_size=rows)


def vector(n: int) -> st.SearchStrategy[list[str]]:
    return st.lists(number(), min_size=n, max_size=n)


def toml_value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return f'"{v}"'


def out_size(n: int, k: int, s: int, p: int = 0) -> int:
    """⌊(n + 2p − k)/s⌋ + 1 (PyTorch's), or 0 when the window does not fit."""
    return (n + 2 * p - k) // s + 1 if n + 2 * p >= k else 0


@dataclass(frozen=True)
class CnnCase:
    toml: str
    input: tuple                     # rows of decimal strings
    layers: tuple[dict, ...]         # as written (type and its keys)
    loss: str | None
    target: tuple | None
    learning_rate: str | None
    fits: bool                       # every window fits (else the spec must be refused)
    upstream: list | None = None     # the given output gradient (no loss)


@st.composite
def cnns(draw) -> CnnCase:
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    x = draw(grid(rows, cols))
    shape, layers, fits = (rows, cols), [], True
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv2d", "conv2d", "activation", "maxpool", "avgpool"]))
        if kind == "conv2d":
            kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
            stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 1))
            layer = {"type": "conv2d", "kernel": draw(grid(kh, kw))}
            if stride != 1 or draw(st.booleans()):
                layer["stride"] = stride
            if padding or draw(st.booleans()):
                layer["padding"] = padding
            if draw(st.booleans()):
                layer["bias"] = draw(number())
            if draw(st.integers(0, 3)) == 0:
                layer["mode"] = draw(st.sampled_from(["cross_correlation", "convolution"]))
            shape = (out_size(shape[0], kh, stride, padding), out_size(shape[1], kw, stride, padding))
        elif kind == "activation":
            layer = {"type": "activation", "activation": draw(st.sampled_from(SCALAR))}
        else:
            size = draw(st.integers(1, 2))
            layer = {"type": kind, "size": size}
            if draw(st.booleans()):
                layer["stride"] = draw(st.integers(1, 2))
            s = layer.get("stride", size)
            shape = (out_size(shape[0], size, s), out_size(shape[1], size, s))
        fits = fits and min(shape) >= 1
        layers.append(layer)
        if not fits:
            break
    loss, target = None, None
    if fits and draw(st.booleans()):
        n = shape[0] * shape[1]
        out = draw(st.integers(1, 3))
        layers.append({"type": "flatten"})
        dense = {"type": "dense", "weights": draw(grid(out, n))}
        if draw(st.booleans()):
            dense["bias"] = draw(vector(out))
        layers.append(dense)
        if draw(st.booleans()):
            loss = draw(st.sampled_from(["half_sse", "mse", "mae"]))
            target = tuple(draw(vector(out)))
    upstream = None      # without a loss: ∂L/∂y given (output_gradient), or all ones by default
    if fits and loss is None and draw(st.booleans()):
        dense_out = layers[-1]["type"] == "dense"
        upstream = draw(vector(len(layers[-1]["weights"])) if dense_out else grid(*shape))
    lr = draw(st.none() | decimals(1, 100))
    lines = ["[cnn]", f"input = {toml_value(x)}"]
    if loss:
        lines += [f'loss = "{loss}"', f"target = {toml_value(list(target))}"]
    if upstream is not None:
        lines.append(f"output_gradient = {toml_value(upstream)}")
    if lr:
        lines.append(f'learning_rate = "{lr}"')
    for layer in layers:
        lines += ["", "[[cnn.layer]]"] + [f"{k} = {toml_value(v)}" for k, v in layer.items()]
    return CnnCase("\n".join(lines) + "\n", tuple(map(tuple, x)), tuple(layers), loss, target, lr, fits, upstream)


@dataclass(frozen=True)
class RnnCase:
    toml: str
    cell: str
    inputs: tuple
    targets: tuple
    params: dict
    g1: str
    g2: str | None
    output_size: int | None
    loss: str
    loss_at: str
    h0: tuple | None
    c0: tuple | None
    learning_rate: str | None


@st.composite
def rnns(draw) -> RnnCase:
    cell = draw(st.sampled_from(["elman", "lstm"]))
    n, m, T = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    p = draw(st.none() | st.integers(1, 2))
    g1 = draw(st.sampled_from(SCALAR)) if cell == "elman" else "tanh"
    g2 = draw(st.sampled_from(["identity", "sigmoid", "tanh", "softmax"])) if p else None
    loss = draw(st.sampled_from(["half_sse", "mse", "mae"] + (["cross_entropy"] if g2 == "softmax" else []) +
                                (["bce"] if g2 == "sigmoid" else []) +
                                (["softmax_cross_entropy"] if g2 == "identity" else [])))
    loss_at = draw(st.sampled_from(["every", "last"]))
    width = p or n
    one_hot = st.integers(0, width - 1).map(lambda k: ["1" if i == k else "0" for i in range(width)])
    target = (one_hot if loss in ("cross_entropy", "softmax_cross_entropy") else
              st.lists(decimals(0, 100), min_size=width, max_size=width) if loss == "bce" else vector(width))
    inputs = tuple(tuple(draw(vector(m))) for _ in range(T))
    targets = tuple(tuple(draw(target)) for _ in range(T if loss_at == "every" else 1))
    params = {}
    if cell == "elman":
        params["W_hh"], params["W_xh"], params["b_h"] = draw(grid(n, n)), draw(grid(n, m)), draw(vector(n))
    else:
        for g in "fico":
            params[f"W_{g}"], params[f"b_{g}"] = draw(grid(n, n + m)), draw(vector(n))
    if p:
        params["W_hy"], params["b_y"] = draw(grid(p, n)), draw(vector(p))
    h0 = tuple(draw(vector(n))) if draw(st.booleans()) else None
    c0 = tuple(draw(vector(n))) if cell == "lstm" and draw(st.booleans()) else None
    lr = draw(st.none() | decimals(1, 100))
    lines = ["[recurrent]"]
    if cell == "lstm" or draw(st.booleans()):
        lines.append(f'cell = "{cell}"')
    lines += [f"hidden_size = {n}", f"inputs = {toml_value(inputs)}", f"targets = {toml_value(targets)}"]
    if p:
        lines.append(f"output_size = {p}")
        if g2 != "identity" or draw(st.booleans()):
            lines.append(f'g2 = "{g2}"')
    if cell == "elman" and (g1 != "tanh" or draw(st.booleans())):
        lines.append(f'g1 = "{g1}"')
    lines += [f'loss = "{loss}"', f'loss_at = "{loss_at}"']
    if lr:
        lines.append(f'learning_rate = "{lr}"')
    if h0:
        lines.append(f"h0 = {toml_value(h0)}")
    if c0:
        lines.append(f"c0 = {toml_value(c0)}")
    lines += ["", "[recurrent.params]"] + [f"{k} = {toml_value(v)}" for k, v in params.items()]
    return RnnCase("\n".join(lines) + "\n", cell, inputs, targets, params, g1, g2, p, loss, loss_at, h0, c0, lr)
