"""Parameter counts (derive/architecture.py) against counts taken from the spec files' own sizes
(tests/oracles.py), and why counting is a kind of its own: the exact engine refuses an image network."""
from __future__ import annotations

from fractions import Fraction

import pytest

import oracles
import worked_examples
from derive.kinds.architecture.derivation import derive_architecture, of_network
from derive.kinds import derive
from derive.core.errors import SpecError
from derive.core.evaluate import evaluate
from derive.kinds.network.spec import Network
from derive.kinds import load, loads

NETWORKS = [n for n in worked_examples.names() if "network" in oracles.load(worked_examples.path(n))]


def _count(derivation, name="params") -> Fraction:
    v = evaluate(derivation)[derivation.quantity(name).symbol()].exact
    return Fraction(int(v.p), int(v.q))


@pytest.mark.parametrize("name", NETWORKS)
def test_every_network_example_is_counted(name):
    spec = load(worked_examples.path(name))
    assert isinstance(spec.problem, Network)
    expected = oracles.network_param_count(oracles.load(worked_examples.path(name)))
    assert _count(derive_architecture(of_network(spec.problem))) == expected == spec.problem.param_count


def test_the_slide_network_per_layer():
    path = worked_examples.path("000_1_parameter_count")
    d = derive(load(path))
    expected = oracles.architecture_params(oracles.load(path))
    for name in ("n0", "params1", "params2", "params"):
        assert _count(d, name) == expected[name], name


def test_the_exact_engine_refuses_image_networks_that_counting_handles():
    layers = ('[[network.layer]]\nsize = 15\nactivation = "sigmoid"\n'
              '[[network.layer]]\nsize = 10\nactivation = "sigmoid"')
    with pytest.raises(SpecError) as err:        # the slide's input does not even load as a [network]
        loads(f'[network]\ninput_size = 750000\nloss = "half_sse"\n{layers}')
    assert err.value.path == "network.input_size"
    spec = loads(f'[network]\ninput_size = 100000\nloss = "half_sse"\n{layers}')
    with pytest.raises(SpecError) as err:        # one that loads has too many weights to write out
        derive(spec)
    assert "too many for the exact engine" in err.value.message
    assert _count(derive_architecture(of_network(spec.problem))) == 15 * 100001 + 10 * 16


def test_layers_without_bias():
    d = derive(loads("[architecture]\ninput_size = 4\n[[architecture.layer]]\nsize = 3\nbias = false\n"
                     "[[architecture.layer]]\nsize = 2"))
    assert _count(d) == 3 * 4 + 2 * 4


@pytest.mark.parametrize("table, path", [
    ("input_size = 4\ninput_shape = [2, 2]\n[[architecture.layer]]\nsize = 1", "architecture"),
    ("input_shape = [2, 0]\n[[architecture.layer]]\nsize = 1", "architecture.input_shape[1]"),
    ("input_size = 4\n[[architecture.layer]]\nsize = 1\nbias = 1", "architecture.layer[0].bias"),
    ("input_size = 4", "architecture.layer"),
])
def test_spec_errors_name_the_key(table, path):
    with pytest.raises(SpecError) as err:
        loads("[architecture]\n" + table)
    assert err.value.path == path
