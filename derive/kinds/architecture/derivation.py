"""Parameter counts of fully connected networks, from their sizes alone (deck 000, 全连接网络的缺陷1).

An ``[architecture]`` table gives the input (``input_size``, or ``input_shape`` such as
``[500, 500, 3]`` for an image, flattened) and the layers' sizes; the derivation counts
``n_0 = Π input_shape``, ``params_l = n_l (n_{l−1} + 1)`` (``n_l n_{l−1}`` without biases) and
``params = Σ_l params_l``.  Counting needs no weights, so it is its own kind: the exact engine
writes every weight of a ``[network]`` out as a symbol and refuses more than 20 000 of them, while
an image network has millions.  :func:`of_network` gives the architecture of any network spec.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sympy as sp

from derive.core.errors import SpecError
from derive.core.spec import _int, _layer_tables, _table, _unknown_keys
from derive.core.steps import Derivation, Given, Quantity, Step, symbol

MAX_UNITS = 10**9


@dataclass(frozen=True)
class Architecture:
    input_shape: tuple[int, ...]
    sizes: tuple[int, ...]           # units of each layer, input excluded
    biases: tuple[bool, ...]


def load_architecture(table: dict, path: str = "architecture") -> Architecture:
    _unknown_keys(table, {"input_size", "input_shape", "layer"}, path)
    if ("input_size" in table) == ("input_shape" in table):
        raise SpecError(path, "give 'input_size' (a number of units) or 'input_shape' (such as [500, 500, 3])")
    if "input_size" in table:
        shape = (_int(table["input_size"], f"{path}.input_size", 1, MAX_UNITS),)
    else:
        raw = table["input_shape"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= 4:
            raise SpecError(f"{path}.input_shape", "expected a list of 1 to 4 sizes")
        shape = tuple(_int(v, f"{path}.input_shape[{i}]", 1, MAX_UNITS) for i, v in enumerate(raw))
    layers = _layer_tables(table, path)
    sizes, biases = [], []
    for i, layer in enumerate(layers):
        lp = f"{path}.layer[{i}]"
        layer = _table(layer, lp)
        _unknown_keys(layer, {"size", "bias"}, lp)
        sizes.append(_int(layer.get("size"), f"{lp}.size", 1, MAX_UNITS))
        bias = layer.get("bias", True)
        if not isinstance(bias, bool):
            raise SpecError(f"{lp}.bias", "expected true or false")
        biases.append(bias)
    return Architecture(shape, tuple(sizes), tuple(biases))


def of_network(net) -> Architecture:
    """The architecture of a layered network (anything with ``input_size`` and ``layers`` of ``size`` and
    ``bias``, as a ``[network]`` problem), its weights and inputs left aside."""
    return Architecture((net.input_size,), tuple(l.size for l in net.layers), tuple(l.bias != () for l in net.layers))


@dataclass(frozen=True)
class InputUnits(Step):
    """n_0 = the product of the input's dimensions (the input flattened)."""

    rule: ClassVar[str] = "input_units"


@dataclass(frozen=True)
class LayerParameters(Step):
    """params_l = n_l (n_{l−1} + 1): a weight from every unit below and a bias, for each unit."""

    layer: int = 0
    bias: bool = True
    rule: ClassVar[str] = "layer_parameters"


@dataclass(frozen=True)
class ParameterTotal(Step):
    """params = Σ_l params_l."""

    rule: ClassVar[str] = "parameter_total"


def derive_architecture(a: Architecture) -> Derivation:
    steps: list[Step] = [Given(Quantity("input_shape", (len(a.input_shape),)),
                               tuple(sp.Integer(v) for v in a.input_shape), (), role="hyper")]
    steps.append(InputUnits(Quantity("n0"), (sp.Mul(*Quantity("input_shape", (len(a.input_shape),)).symbols()),),
                            ("input_shape",)))
    steps += [Given(Quantity(f"n{l}"), (sp.Integer(n),), (), role="hyper") for l, n in enumerate(a.sizes, start=1)]
    for l, bias in enumerate(a.biases, start=1):
        below = symbol(f"n{l - 1}") + (1 if bias else 0)
        steps.append(LayerParameters(Quantity(f"params{l}"), (symbol(f"n{l}") * below,), (f"n{l}", f"n{l - 1}"),
                                     layer=l, bias=bias))
    total = sp.Add(*[symbol(f"params{l}") for l in range(1, len(a.sizes) + 1)])
    steps.append(ParameterTotal(Quantity("params"), (total,), tuple(f"params{l}" for l in range(1, len(a.sizes) + 1))))
    return Derivation(tuple(steps), "architecture")


def notation(derivation: Derivation) -> dict[str, str]:
    """Sizes n_l, the input's dimensions s_i, parameter counts P_l and their total P."""
    out = {"input_shape": r"\mathbf{s}", "params": "P"}
    for s in derivation.steps:
        if s.name == "input_shape":
            out.update({f"input_shape[{i}]": f"s_{{{i + 1}}}" for i in range(s.target.size)})
        elif isinstance(s, LayerParameters):
            out[s.name] = f"P_{{{s.layer}}}"
    return out
