"""A 1000-wide output layer (issue 9): the output gradient no longer differentiates the whole loss
sum once per output, so the kernels' derivation ends in bounded time; and it gives exactly the
expressions that differentiating the whole sum gives, for every loss of the registry."""
from __future__ import annotations

import pytest
import sympy as sp

from derive.core import primitives
from derive.kinds.network.derivation import derive_network, loss_gradient
from derive.core.sandbox import run
from derive.kinds import loads

WIDE = '[network]\ninput_size = 1000\nloss = "half_sse"\n[[network.layer]]\nsize = 1000\nactivation = "sigmoid"\n'


@pytest.mark.parametrize("name", list(primitives.LOSSES))
@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_loss_gradient_equals_sympy_diff_of_the_whole_loss(name, n):
    y = [sp.Symbol(f"h[{i}]") for i in range(n)]
    t = [sp.Symbol(f"t[{i}]") for i in range(n)]
    e = primitives.LOSSES[name].define(y, t)
    assert loss_gradient(e, y) == tuple(sp.diff(e, v) for v in y)


def _derive_wide() -> int:
    from kernels.blas import representative
    from kernels.codegen import symbolic_network
    d = derive_network(representative(symbolic_network(loads(WIDE).problem)))
    return len(d.quantity("grad_h1").symbols())


def test_a_1000_wide_output_layer_derives_in_bounded_time():
    # hang guard only (about 25 s here; before, over 400 s in the loss gradient alone)
    assert run(_derive_wide, timeout=300, memory_mb=2048) == 1000
