"""The `[cnn]` table: a stack of conv2d, activation, max/avg pooling, flatten and dense layers on one
2-D input map, its sizes checked layer by layer (output size ⌊(L + 2P − K)/S⌋ + 1) and bounded."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, ClassVar

import sympy as sp

from derive.core import primitives
from derive.core.errors import SpecError
from derive.core.maps import MAX_SIDE
from derive.core.spec import (ActivationRef, _activation, _int, _layer_tables, _learning_rate, _string, _table,
                              _unknown_keys, number)

Expr = sp.Expr
Shape = tuple[int, ...]


MAX_ELEMENTS = 20_000     # elements of all forward quantities together (each is a symbol of the exact engine)


MAX_TERMS = 200_000       # products of all conv and dense layers together


MAX_LAYERS = 32


MODES = ("cross_correlation", "convolution")


@dataclass(frozen=True)
class Conv2d:
    kernel: tuple[tuple[Expr, ...], ...] | None   # None: symbolic
    size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    bias: Expr | None                              # None with has_bias: symbolic
    has_bias: bool
    mode: str = "cross_correlation"
    kind: ClassVar[str] = "conv2d"


@dataclass(frozen=True)
class Pool:
    op: str                     # "max" | "avg"
    size: tuple[int, int]
    stride: tuple[int, int]
    kind: ClassVar[str] = "pool"


@dataclass(frozen=True)
class Flatten:
    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class Dense:
    size: int
    weights: tuple[tuple[Expr, ...], ...] | None
    bias: tuple[Expr, ...] | None
    has_bias: bool
    kind: ClassVar[str] = "dense"


@dataclass(frozen=True)
class Act:
    activation: ActivationRef
    kind: ClassVar[str] = "activation"


Layer = Conv2d | Pool | Flatten | Dense | Act


@dataclass(frozen=True)
class Cnn:
    """A ``[cnn]`` problem.  ``stack`` (not ``layers``: the checker reads ``layers`` of networks)."""

    input_shape: tuple[int, int]
    input: tuple[tuple[Expr, ...], ...] | None
    stack: tuple[Layer, ...]
    shapes: tuple[Shape, ...]            # the output shape of every layer
    loss: str | None
    target: tuple[Expr, ...] | None      # row-major, the output's shape
    upstream: tuple[Expr, ...] | None    # row-major ∂L/∂y when there is no loss; None: symbolic
    learning_rate: Expr | None

    @property
    def output_shape(self) -> Shape:
        return self.shapes[-1]


def output_size(length: int, kernel: int, stride: int, padding: int = 0) -> int:
    """L_out = ⌊(L_in + 2P − K)/S⌋ + 1, the formula of deck 004 (proved by :func:`prove_output_size`)."""
    return (length + 2 * padding - kernel) // stride + 1


def _slide_formula(L, P, K, S):
    return sp.floor((L + 2 * P - K) / S) + 1


@lru_cache(maxsize=8)
def prove_output_size(formula: Callable = _slide_formula) -> str | None:
    """A symbolic proof that ``formula(L_in, P, K, S)`` counts the window positions, or None.

    Write L_in + 2P − K = qS + r with integers q ≥ 0 and 0 ≤ r < S (S = r + 1 + m, m ≥ 0).  Windows
    start at 0, S, ..., qS: qS + K ≤ L_in + 2P because the gap is r ≥ 0, and (q + 1)S + K > L_in + 2P
    because the gap is S − r = m + 1 > 0; so there are q + 1 of them.  The formula must reduce to
    q + 1: each floor(q + x) is q when SymPy's assumptions give 0 ≤ x and 1 − x > 0.
    """
    q, r, m, P = sp.symbols("q r m P", integer=True, nonnegative=True)
    K = sp.Symbol("K", integer=True, positive=True)
    S = r + 1 + m
    L = q * S + r + K - 2 * P
    if not (sp.expand((L + 2 * P) - (q * S + K) - r) == 0 and r.is_nonnegative):
        return None
    if not sp.expand((q + 1) * S + K - (L + 2 * P) - (m + 1)) == 0 or not (m + 1).is_positive:
        return None
    expr = formula(L, P, K, S)

    def floor_of(arg):
        frac = sp.cancel(sp.together(arg - q))
        if frac.is_nonnegative and sp.factor(1 - frac).is_positive:
            return q
        return sp.floor(arg)
    reduced = expr.replace(sp.floor, floor_of)
    if reduced.has(sp.floor, sp.ceiling) or sp.simplify(reduced - (q + 1)) != 0:
        return None
    return ("with L_in + 2P − K = qS + r (0 ≤ r < S), windows start at 0, S, …, qS (gaps r ≥ 0 and "
            "S − r > 0), so there are q + 1, and the formula reduces to q + 1 (SymPy, for all integers)")


def _pair(value: Any, path: str, low: int, high: int) -> tuple[int, int]:
    if isinstance(value, list):
        if len(value) != 2:
            raise SpecError(path, "expected an integer or a pair [rows, columns]")
        return _int(value[0], f"{path}[0]", low, high), _int(value[1], f"{path}[1]", low, high)
    n = _int(value, path, low, high)
    return n, n


def _grid(value: Any, path: str) -> tuple[tuple[Expr, ...], ...]:
    """A rectangular matrix of numbers, at most MAX_SIDE × MAX_SIDE."""
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise SpecError(path, "expected a matrix: a list of rows, each a list of numbers")
    if len(value) > MAX_SIDE or any(len(r) > MAX_SIDE for r in value):
        raise SpecError(path, f"at most {MAX_SIDE} rows and {MAX_SIDE} columns")
    cols = len(value[0])
    for i, row in enumerate(value):
        if len(row) != cols or not row:
            raise SpecError(f"{path}[{i}]", f"expected {cols} numbers like the first row, got {len(row)}")
    return tuple(tuple(number(v, f"{path}[{i}][{j}]") for j, v in enumerate(row)) for i, row in enumerate(value))


def _values(value: Any, path: str, shape: Shape) -> tuple[Expr, ...]:
    """Numbers of a given shape (a matrix for a map, a list for a vector), row-major."""
    if len(shape) == 2:
        grid = _grid(value, path)
        if (len(grid), len(grid[0])) != shape:
            raise SpecError(path, f"expected a {shape[0]}x{shape[1]} matrix (the output's shape), "
                                  f"got {len(grid)}x{len(grid[0])}")
        return tuple(v for row in grid for v in row)
    if not isinstance(value, list) or any(isinstance(v, list) for v in value):
        raise SpecError(path, f"expected a list of {shape[0]} numbers")
    if len(value) != shape[0]:
        raise SpecError(path, f"expected {shape[0]} numbers (the output's size), got {len(value)}")
    return tuple(number(v, f"{path}[{i}]") for i, v in enumerate(value))


def _bias(raw: dict, path: str, symbolic: bool, size: int | None):
    """(bias, has_bias): absent means none for given weights and symbolic for symbolic ones."""
    if "bias" not in raw:
        return None, symbolic
    if raw["bias"] is False:
        return None, False
    if raw["bias"] == "symbol":
        return None, True
    if size is None:
        if isinstance(raw["bias"], list):
            raise SpecError(f"{path}.bias", "a conv layer has one bias (a number), shared by every position")
        return number(raw["bias"], f"{path}.bias"), True
    if not isinstance(raw["bias"], list) or len(raw["bias"]) != size:
        raise SpecError(f"{path}.bias", f"expected a list of {size} numbers")
    return tuple(number(v, f"{path}.bias[{i}]") for i, v in enumerate(raw["bias"])), True


def _conv(raw: dict, path: str, shape: Shape) -> tuple[Conv2d, Shape]:
    _unknown_keys(raw, {"type", "kernel", "size", "stride", "padding", "bias", "mode"}, path)
    if len(shape) != 2:
        raise SpecError(path, "conv2d needs a 2-D map, but its input is a vector (after flatten or dense)")
    if "kernel" in raw:
        kernel = _grid(raw["kernel"], f"{path}.kernel")
        size = (len(kernel), len(kernel[0]))
        if "size" in raw and _pair(raw["size"], f"{path}.size", 1, MAX_SIDE) != size:
            raise SpecError(f"{path}.size", f"the kernel is {size[0]}x{size[1]}")
    elif "size" in raw:
        kernel, size = None, _pair(raw["size"], f"{path}.size", 1, MAX_SIDE)
    else:
        raise SpecError(path, "expected 'kernel' (a matrix) or 'size' (for a symbolic kernel)")
    stride = _pair(raw.get("stride", 1), f"{path}.stride", 1, MAX_SIDE)
    padding = _pair(raw.get("padding", 0), f"{path}.padding", 0, MAX_SIDE)
    mode = _string(raw.get("mode", MODES[0]), f"{path}.mode", 40)
    if mode not in MODES:
        raise SpecError(f"{path}.mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
    out = []
    for d, what in enumerate(("rows", "columns")):
        padded = shape[d] + 2 * padding[d]
        if padded > MAX_SIDE + 2 * MAX_SIDE:
            raise SpecError(f"{path}.padding", "the padded map is too large")
        if size[d] > padded:
            raise SpecError(f"{path}.kernel" if kernel else f"{path}.size",
                            f"the kernel has {size[d]} {what} but the (padded) input only {padded}")
        out.append(output_size(shape[d], size[d], stride[d], padding[d]))
    bias, has_bias = _bias(raw, path, kernel is None, None)
    return Conv2d(kernel, size, stride, padding, bias, has_bias, mode), tuple(out)


def _pool(raw: dict, path: str, shape: Shape, op: str) -> tuple[Pool, Shape]:
    _unknown_keys(raw, {"type", "size", "stride"}, path)
    if len(shape) != 2:
        raise SpecError(path, f"{op}pool needs a 2-D map, but its input is a vector")
    if "size" not in raw:
        raise SpecError(f"{path}.size", "missing; give the window size, e.g. 2 for 2x2")
    size = _pair(raw["size"], f"{path}.size", 1, MAX_SIDE)
    stride = _pair(raw.get("stride", list(size)), f"{path}.stride", 1, MAX_SIDE)
    for d, what in enumerate(("rows", "columns")):
        if size[d] > shape[d]:
            raise SpecError(f"{path}.size", f"the window has {size[d]} {what} but the input only {shape[d]}")
    return Pool(op, size, stride), tuple(output_size(shape[d], size[d], stride[d]) for d in range(2))


def _dense(raw: dict, path: str, shape: Shape) -> tuple[Dense, Shape]:
    _unknown_keys(raw, {"type", "weights", "size", "bias"}, path)
    if len(shape) != 1:
        raise SpecError(path, "dense needs a vector: put a 'flatten' layer before it")
    if "weights" in raw:
        w = _grid(raw["weights"], f"{path}.weights")
        if len(w[0]) != shape[0]:
            raise SpecError(f"{path}.weights", f"expected {shape[0]} columns (the input's size), got {len(w[0])}")
        size = len(w)
        if "size" in raw and _int(raw["size"], f"{path}.size", 1, MAX_SIDE) != size:
            raise SpecError(f"{path}.size", f"the weights have {size} rows")
    elif "size" in raw:
        w, size = None, _int(raw["size"], f"{path}.size", 1, MAX_SIDE)
    else:
        raise SpecError(path, "expected 'weights' (a matrix) or 'size' (for symbolic weights)")
    bias, has_bias = _bias(raw, path, w is None, size)
    return Dense(size, w, bias, has_bias), (size,)


def _layer(raw: Any, path: str, shape: Shape) -> tuple[Layer, Shape]:
    raw = _table(raw, path)
    kind = _string(raw.get("type", ""), f"{path}.type", 40)
    if kind == "conv2d":
        return _conv(raw, path, shape)
    if kind in ("maxpool", "avgpool"):
        return _pool(raw, path, shape, kind[:3])
    if kind == "flatten":
        _unknown_keys(raw, {"type"}, path)
        if len(shape) != 2:
            raise SpecError(path, "flatten needs a 2-D map, but its input is already a vector")
        return Flatten(), (shape[0] * shape[1],)
    if kind == "dense":
        return _dense(raw, path, shape)
    if kind == "activation":
        _unknown_keys(raw, {"type", "activation"}, path)
        if "activation" not in raw:
            raise SpecError(f"{path}.activation", "missing; give an activation name such as 'relu'")
        ref = _activation(raw["activation"], f"{path}.activation")
        if primitives.ACTIVATIONS[ref.name].vector and len(shape) != 1:
            raise SpecError(f"{path}.activation", f"{ref.name} acts on a vector: put 'flatten' before it")
        return Act(ref), shape
    raise SpecError(f"{path}.type", f"expected one of conv2d, activation, maxpool, avgpool, flatten, dense; "
                                    f"got {kind!r}")


def _work(layer: Layer, before: Shape, after: Shape) -> int:
    if isinstance(layer, Conv2d):
        return after[0] * after[1] * layer.size[0] * layer.size[1]
    if isinstance(layer, Dense):
        return layer.size * before[0]
    if isinstance(layer, Pool):
        return after[0] * after[1] * layer.size[0] * layer.size[1]
    return 0


def load_cnn(table: dict, path: str = "cnn") -> Cnn:
    _unknown_keys(table, {"input", "input_size", "layer", "loss", "target", "output_gradient", "learning_rate"},
                  path)
    if "input" in table:
        image = _grid(table["input"], f"{path}.input")
        shape = (len(image), len(image[0]))
        if "input_size" in table and _pair(table["input_size"], f"{path}.input_size", 1, MAX_SIDE) != shape:
            raise SpecError(f"{path}.input_size", f"the input is {shape[0]}x{shape[1]}")
    elif "input_size" in table:
        image, shape = None, _pair(table["input_size"], f"{path}.input_size", 1, MAX_SIDE)
    else:
        raise SpecError(path, "expected 'input' (a matrix of numbers) or 'input_size' ([rows, columns], symbolic)")
    raw_layers = _layer_tables(table, path, MAX_LAYERS)
    stack, shapes = [], []
    elements, work, current = shape[0] * shape[1], 0, shape
    for i, raw in enumerate(raw_layers):
        lp = f"{path}.layer[{i}]"
        layer, out = _layer(raw, lp, current)
        elements += _size(out) * (3 if isinstance(layer, Conv2d) else 2)  # output, its gradient, helpers
        if isinstance(layer, Conv2d):
            elements += 2 * (current[0] + 2 * layer.padding[0]) * (current[1] + 2 * layer.padding[1])
        work += _work(layer, current, out)
        if elements > MAX_ELEMENTS or work > MAX_TERMS:
            raise SpecError(lp, f"too large for the exact engine (at most {MAX_ELEMENTS} elements and "
                                f"{MAX_TERMS} products in all; every element is a symbol)")
        stack.append(layer)
        shapes.append(out)
        current = out
    loss = None
    if "loss" in table:
        loss = _string(table["loss"], f"{path}.loss", 64)
        if loss not in primitives.LOSSES:
            raise SpecError(f"{path}.loss", f"unknown loss {loss!r} (known: {', '.join(primitives.LOSSES)})")
        if "target" not in table:
            raise SpecError(f"{path}.target", f"missing; the loss {loss} needs a target of the output's shape")
        if "output_gradient" in table:
            raise SpecError(f"{path}.output_gradient", "give a loss or an output gradient, not both")
    elif "target" in table:
        raise SpecError(f"{path}.target", "a target needs a 'loss'")
    target = _values(table["target"], f"{path}.target", current) if loss else None
    upstream: tuple[Expr, ...] | None = None
    if loss is None:
        raw_g = table.get("output_gradient")
        if raw_g == "symbol":
            upstream = None
        elif raw_g is None:
            upstream = (sp.Integer(1),) * _size(current)
        else:
            upstream = _values(raw_g, f"{path}.output_gradient", current)
    return Cnn(shape, image, tuple(stack), tuple(shapes), loss, target, upstream, _learning_rate(table, path))


def _size(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
