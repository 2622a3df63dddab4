"""Regression tests for the failures the fuzzing suites found (issue 10; docs/guide.md, Testing).

Each test fails on the code before its fix.  Oracles are exact values worked by hand or mpmath.
"""
from __future__ import annotations

from fractions import Fraction

import mpmath
import pytest

from derive.backprop import derive
from derive.errors import SpecError
from derive.evaluate import evaluate
from derive.spec import loads


def _values(text: str) -> dict:
    return {s.name: v for s, v in evaluate(derive(loads(text))).items()}


def test_a_graph_node_may_pass_an_activation_parameter_by_keyword():
    # the guide's own example, leaky_relu(u, alpha=0.2): refused before as "expected 'name = expression'"
    v = _values('[graph]\nvalues = { u = "-2" }\nparams = ["u"]\nnodes = ["y = leaky_relu(u, alpha=0.2)"]\n')
    assert v["y"].exact == Fraction(-2, 5) and v["grad_u"].exact == Fraction(1, 5)
    sw = _values('[graph]\nvalues = { a = "1" }\nnodes = ["s = swish(a, beta=0.5) + a"]\n')
    with mpmath.workdps(40):
        assert abs(mpmath.mpf(float(sw["s"])) - (1 + 1 / (1 + mpmath.exp(-0.5)))) < 1e-12


@pytest.mark.parametrize("node", ["y = ", "y = a = b", "= a", "y == a"])
def test_a_graph_node_that_is_no_binding_is_refused_naming_it(node):
    with pytest.raises(SpecError) as err:
        derive(loads(f'[graph]\nvalues = {{ a = "1", b = "2" }}\nnodes = ["{node}"]\n'))
    assert str(err.value).startswith("graph.nodes[0]")
