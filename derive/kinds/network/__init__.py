"""The `[network]` kind: layered networks, derived in matrix form, with the element-wise form beside it."""
from derive.core.plugin import Kind
from derive.core.steps import ELEMENTWISE, LR, Activate, Affine, Given, Quantity
from derive.kinds.network.derivation import derive_elementwise, derive_network
from derive.kinds.network.spec import Network, load_network


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


KIND = Kind("network", load_network, derive_network, Network, printing="derive.kinds.network.printing",
            companions=_companions, claim_names=_claim_names, derivation_kinds=("elementwise",), kernel="layered")
