"""The `[network]` table: layered networks (sizes, weights, biases, activations, a loss), one sample
or a mini-batch."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive.core import primitives
from derive.core.errors import SpecError
import derive.kinds.network.generated as generated
from derive.core.spec import (MAX_WIDTH, ActivationRef, _activation, _layer_tables, _int, _learning_rate, _matrix,
                              _string, _table, _unknown_keys, _vector)

MAX_SAMPLES = 64  # rows of a mini-batch ([network] input and target as lists of rows)


@dataclass(frozen=True)
class Layer:
    size: int
    activation: ActivationRef
    weights: tuple[tuple[sp.Expr, ...], ...] | None  # (out, in); None means symbolic
    bias: tuple[sp.Expr, ...] | None                # None means symbolic; () means no bias


@dataclass(frozen=True)
class Network:
    input_size: int
    input: tuple[sp.Expr, ...] | None
    target: tuple[sp.Expr, ...] | None
    layers: tuple[Layer, ...]
    loss: str
    learning_rate: sp.Expr | None
    # A mini-batch: one (input, target) pair per sample when the spec gives two or more rows
    # (then ``input`` and ``target`` are None and the loss is the mean over the samples).
    samples: tuple[tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...]], ...] = ()

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.input_size,) + tuple(l.size for l in self.layers)

    @property
    def param_count(self) -> int:
        return sum(l.size * (n_in + (1 if l.bias != () else 0)) for l, n_in in zip(self.layers, self.sizes))


def load_network(table: dict, path: str = "network") -> Network:
    _unknown_keys(table, {"input", "input_size", "target", "loss", "learning_rate", "layer"}, path)
    batch = _rows(table.get("input"), f"{path}.input")
    if batch is not None:
        x, n_in = None, len(batch[0])
        if "input_size" in table and _int(table["input_size"], f"{path}.input_size", 1, MAX_WIDTH) != n_in:
            raise SpecError(f"{path}.input_size", f"each input row has {n_in} numbers")
    elif "input" in table:
        x = _vector(table["input"], f"{path}.input")
        n_in = len(x)
        if "input_size" in table and _int(table["input_size"], f"{path}.input_size", 1, MAX_WIDTH) != n_in:
            raise SpecError(f"{path}.input_size", f"input has {n_in} numbers")
    elif "input_size" in table:
        x, n_in = None, _int(table["input_size"], f"{path}.input_size", 1, MAX_WIDTH)
    else:
        raise SpecError(path, "expected 'input' (a list of numbers) or 'input_size' (for a symbolic input)")
    layers_raw = _layer_tables(table, path)
    layers, n_prev = [], n_in
    for i, raw in enumerate(layers_raw):
        lp = f"{path}.layer[{i}]"
        raw = _table(raw, lp)
        _unknown_keys(raw, {"weights", "bias", "activation", "size"}, lp)
        if "weights" in raw and isinstance(raw["weights"], dict):     # generated (kinds/network/generated.py)
            if "size" not in raw:
                raise SpecError(f"{lp}.size", "missing; generated weights need the layer's size")
            size = _int(raw["size"], f"{lp}.size", 1, MAX_WIDTH)
            weights = generated.matrix(raw["weights"], f"{lp}.weights", size, n_prev)
        elif "weights" in raw:
            w_raw = raw["weights"]
            rows = len(w_raw) if isinstance(w_raw, list) else 0
            size = _int(raw.get("size", rows), f"{lp}.size", 1, MAX_WIDTH)
            if i == 0 and x is not None:
                _input_fits(w_raw, n_in, path)
            weights = _matrix(w_raw, f"{lp}.weights", size, n_prev)
        else:
            if "size" not in raw:
                raise SpecError(lp, "expected 'weights' (a matrix) or 'size' (for symbolic weights)")
            size, weights = _int(raw["size"], f"{lp}.size", 1, MAX_WIDTH), None
        bias_raw = raw.get("bias")
        if bias_raw is None:
            bias = None if weights is None else ()
        elif bias_raw is False:
            bias = ()
        elif isinstance(bias_raw, dict):
            bias = tuple(generated.values(bias_raw, f"{lp}.bias", size))
        else:
            bias = _vector(bias_raw, f"{lp}.bias", size)
        if "activation" not in raw:
            raise SpecError(f"{lp}.activation", "missing; give an activation name such as 'sigmoid'")
        layers.append(Layer(size, _activation(raw["activation"], f"{lp}.activation"), weights, bias))
        n_prev = size
    for i, layer in enumerate(layers[:-1]):
        if primitives.ACTIVATIONS[layer.activation.name].vector:
            raise SpecError(f"{path}.layer[{i}].activation", "softmax may only be the last layer's activation")
    loss = _string(table.get("loss", ""), f"{path}.loss", 64)
    if loss not in primitives.LOSSES:
        hint = difflib.get_close_matches(loss, list(primitives.LOSSES), n=1)
        extra = f"; did you mean '{hint[0]}'?" if hint else ""
        raise SpecError(f"{path}.loss", f"unknown loss {loss!r} (known: {', '.join(primitives.LOSSES)}){extra}")
    if primitives.LOSSES[loss].on_logits and layers[-1].activation.name != "identity":
        raise SpecError(f"{path}.loss", f"{loss} takes logits: make the last layer's activation 'identity' "
                                        "(or use activation 'softmax' with loss 'cross_entropy')")
    lr = _learning_rate(table, path)
    if batch is not None:
        samples = _samples(batch, table, path, n_prev)
        if len(samples) == 1:  # one row: the plain one-sample network
            return Network(n_in, samples[0][0], samples[0][1], tuple(layers), loss, lr)
        return Network(n_in, None, None, tuple(layers), loss, lr, samples)
    if isinstance(table.get("target"), list) and table["target"] and isinstance(table["target"][0], list):
        raise SpecError(f"{path}.target", "a list of target rows needs 'input' as a list of rows too")
    target = None
    if "target" in table and table["target"] != "symbol":
        target = _vector(table["target"], f"{path}.target", n_prev)
    _all_numbers_or_none(table, x, layers, target, path)
    return Network(n_in, x, target, tuple(layers), loss, lr)


def _input_fits(w_raw, n_in: int, path: str) -> None:
    """When every row of the first weight matrix has the same length, that is the number of inputs:
    an input of another length is the input's error, not the weights'."""
    lengths = {len(r) for r in w_raw if isinstance(r, list)} if isinstance(w_raw, list) else set()
    if len(lengths) == 1 and all(isinstance(r, list) for r in w_raw) and (k := lengths.pop()) != n_in:
        raise SpecError(f"{path}.input", f"expected {k} numbers (layer[0].weights has {k} columns, one per "
                                         f"input), got {n_in}")


def _all_numbers_or_none(table: dict, x, layers: list, target, path: str) -> None:
    """A network is symbolic when it gives no numbers at all (input_size, sizes, no target), or a
    symbolic target when asked for with ``target = "symbol"``; a number left out otherwise is an error."""
    given = {"input": x is not None, "target": target is not None}
    given.update({f"layer[{i}].weights": layer.weights is not None for i, layer in enumerate(layers)})
    if not any(given.values()):
        return
    numbered = ", ".join(k for k, v in given.items() if v)
    if x is None:
        raise SpecError(f"{path}.input", f"missing: {numbered} {'is' if numbered.count(',') == 0 else 'are'} "
                                         "given, so the input must be too (or leave out every number for a "
                                         "symbolic network)")
    for i, layer in enumerate(layers):
        if layer.weights is None:
            raise SpecError(f"{path}.layer[{i}].weights", f"missing: {numbered} are given, so every layer's weights "
                                                         "must be too (or leave out every number for a symbolic network)")
    if target is None and table.get("target") != "symbol":
        raise SpecError(f"{path}.target", "missing: the input and weights are given, so the target must be too "
                                          '(write target = "symbol" for a symbolic target)')


def _rows(value: Any, path: str) -> list[tuple[sp.Expr, ...]] | None:
    """The rows of a mini-batch input (a list of lists of numbers), or None for any other value."""
    if not (isinstance(value, list) and value and isinstance(value[0], list)):
        return None
    if len(value) > MAX_SAMPLES:
        raise SpecError(path, f"at most {MAX_SAMPLES} samples (rows), got {len(value)}")
    first = _vector(value[0], f"{path}[0]")
    return [first] + [_vector(r, f"{path}[{i}]", len(first)) for i, r in enumerate(value[1:], start=1)]


def _samples(rows, table: dict, path: str, n_out: int):
    """(input, target) pairs of a mini-batch: one target row of ``n_out`` numbers per input row."""
    t = table.get("target")
    if t is None:
        raise SpecError(f"{path}.target", f"missing; a mini-batch of {len(rows)} inputs needs {len(rows)} target rows")
    if not (isinstance(t, list) and all(isinstance(r, list) for r in t)) or len(t) != len(rows):
        raise SpecError(f"{path}.target", f"expected {len(rows)} rows (one per input row) of {n_out} numbers")
    targets = [_vector(r, f"{path}.target[{i}]", n_out) for i, r in enumerate(t)]
    return tuple(zip(rows, targets))


MAX_EXACT_PARAMS = 20_000
