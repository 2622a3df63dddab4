"""The `[network]` kind: layered networks, derived in matrix form, with the element-wise form beside it."""
import re

from derive.core.plugin import Kind
from derive.core.steps import ELEMENTWISE, LR, Activate, Affine, Given, Quantity
from derive.kinds.network.derivation import derive_elementwise, derive_network
from derive.kinds.network.mistakes import MAKERS
from derive.kinds.network.spec import Network, load_network


def _document(spec, derivation, decimals: int):
    """Wide layers: each step in vector form and the first elements of each quantity."""
    if not getattr(derivation, "wide", False):
        return None
    from derive.kinds.network.wide_printing import build
    return build(spec, derivation, decimals)


def _companions(net: Network) -> list:
    """The element-wise form, which handouts and claims read beside the matrix form (a mini-batch has none)."""
    return [] if net.samples else [derive_elementwise(net)]


def _claim_names(derivation) -> dict:
    """``dL_d<q>`` for each given and forward quantity: the element-wise form's gradients as vectors
    and matrices (``dL_dz1`` is the vector of ``dL_dz1[0]``, ``dL_dz1[1]``...), and ``dL_dy``."""
    names = {}
    for step in derivation.steps:
        q = step.target
        if isinstance(step, (Given, Affine, Activate)) and step.name != LR:
            g = Quantity(ELEMENTWISE + q.name, q.shape)
            names[g.name] = g.matrix() if q.shape else g.symbol()
    names[ELEMENTWISE + "y"] = names[ELEMENTWISE + derivation.resolve("y")]
    return names


def _locate(net: dict, name: str):
    """Where ``variants`` finds a given number: x, t, learning_rate, W<l>, b<l> (1-based layers)."""
    layers = net.get("layer", [])
    m = re.fullmatch(r"([Wb])(\d+)", name)
    if name == "x" and "input" in net:
        return net, "input"
    if name == "t" and "target" in net:
        return net, "target"
    if name == "learning_rate" and "learning_rate" in net and net["learning_rate"] != "symbol":
        return net, "learning_rate"
    if m and 1 <= int(m.group(2)) <= len(layers) and isinstance(layers[int(m.group(2)) - 1], dict):
        layer = layers[int(m.group(2)) - 1]
        key = "weights" if m.group(1) == "W" else "bias"
        if isinstance(layer.get(key), list):
            return layer, key
    return None


KIND = Kind("network", load_network, derive_network, Network, printing="derive.kinds.network.printing",
            companions=_companions, document=_document, claim_names=_claim_names, locate=_locate, mistakes=MAKERS, derivation_kinds=("elementwise",), layered=True, kernel="layered")
