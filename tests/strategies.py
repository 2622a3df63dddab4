"""Hypothesis strategies for what users write, and the suite's Hypothesis profiles.

``networks()`` draws layered-network specs as TOML text, together with the plain data they were
written from (the oracles read that data, never the engine's reading of the text): 1 to 3 layers
of 1 to 5 units, every activation and loss of the registry (``derive/primitives.py``) where the
combination is valid, biases on or off, activation parameters given or left at their defaults,
one sample or a mini-batch, with or without a learning rate, and sometimes a ``[stated]`` table of
arbitrary printed numbers.

Profiles (``NNDERIVE_HYPOTHESIS_PROFILE``): ``ci`` (the default) keeps the property suites to a few
minutes; ``long`` runs many more cases, for a search before a release:

    NNDERIVE_HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties_network.py
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from derive.core import primitives

PROFILE_ENV = "NNDERIVE_HYPOTHESIS_PROFILE"
EXAMPLES_ENV = "NNDERIVE_HYPOTHESIS_EXAMPLES"      # the fuzzing suites' case count, overriding the profile's
_SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
# ci: the same cases on every run (derandomize: drawn from a hash of each test), so a landing never
# depends on a draw; new cases are the long profile's work
settings.register_profile("ci", max_examples=10, deadline=None, suppress_health_check=_SLOW,
                          print_blob=True, derandomize=True)
settings.register_profile("long", max_examples=400, deadline=None, suppress_health_check=_SLOW,
                          print_blob=True)


def profile(scale: float = 1.0) -> settings:
    """The selected profile (``$NNDERIVE_HYPOTHESIS_PROFILE``, default ``ci``), its example count
    scaled by ``scale`` (a cheap property runs more cases than one that compiles kernels)."""
    name = os.environ.get(PROFILE_ENV, "ci")
    try:
        base = settings.get_profile(name)
    except Exception:   # hypothesis raises InvalidArgument for an unknown name
        raise SystemExit(f"{PROFILE_ENV}={name!r}: expected 'ci' or 'long'") from None
    return settings(base, max_examples=max(1, round(base.max_examples * scale)))


def fuzz_profile(scale: float = 1.0) -> settings:
    """:func:`profile` for the fuzzing suites (graphs, cnn, recurrent, answers, mutated specs): in
    ``ci`` a failing case is reported as found, without shrinking (shrinking a spec that takes
    seconds per command can take many minutes); ``long`` shrinks it."""
    chosen = profile(scale)
    if os.environ.get(EXAMPLES_ENV):        # a run of a chosen size: that many cases per property
        chosen = settings(chosen, max_examples=int(os.environ[EXAMPLES_ENV]))
    if os.environ.get(PROFILE_ENV, "ci") == "long":
        return chosen
    return settings(chosen, phases=[Phase.explicit, Phase.reuse, Phase.generate])


SCALAR = [n for n, a in primitives.ACTIVATIONS.items() if not a.vector]
LOSSES = list(primitives.LOSSES)
ONE_HOT = ("cross_entropy", "softmax_cross_entropy", "hinge")


@dataclass(frozen=True)
class NetworkCase:
    """A generated spec: its TOML text and the data it was written from."""

    toml: str
    layers: tuple[dict, ...]        # {"weights", "bias" (list or None), "activation", "params"}
    inputs: tuple[tuple[str, ...], ...]
    targets: tuple[tuple[str, ...], ...]
    loss: str
    learning_rate: str | None
    batch: bool                     # input and target written as lists of rows

    @property
    def sizes(self) -> list[int]:
        return [len(self.inputs[0])] + [len(l["weights"]) for l in self.layers]


def decimals(low: int = -200, high: int = 200, places: int = 2) -> st.SearchStrategy[str]:
    """A printed decimal such as '-0.35' (an integer count of 10^-places, written exactly)."""
    def text(n: int) -> str:
        sign, n = ("-" if n < 0 else ""), abs(n)
        return f"{sign}{n // 10 ** places}.{n % 10 ** places:0{places}d}"
    return st.integers(low, high).map(text)


def _vector(n: int, values=None) -> st.SearchStrategy[list[str]]:
    return st.lists(decimals() if values is None else values, min_size=n, max_size=n)


@st.composite
def _one_hot(draw, n: int) -> list[str]:
    hot = draw(st.integers(0, n - 1))
    return ["1" if i == hot else "0" for i in range(n)]


def _last_activations(loss: str) -> list[str]:
    """The output activations valid for ``loss`` (the loss reads probabilities, logits or any output)."""
    if loss == "bce":
        return ["sigmoid"]
    if loss == "cross_entropy":
        return ["softmax", "sigmoid"]
    if loss == "softmax_cross_entropy":
        return ["identity"]
    return SCALAR + ["softmax"]


@st.composite
def _activation(draw, name: str) -> tuple[str, dict[str, str]]:
    """An activation and the parameters written for it (none: the registry's defaults)."""
    params = {}
    for key, _ in primitives.ACTIVATIONS[name].params:
        if draw(st.booleans()):
            params[key] = draw(decimals(1, 150))   # leaky_relu and elu need α > 0; swish any β > 0
    return name, params


def _toml_list(values) -> str:
    if isinstance(values, (list, tuple)):
        return "[" + ", ".join(_toml_list(v) for v in values) + "]"
    return f'"{values}"'


@st.composite
def networks(draw, max_samples: int = 3, stated: bool = True, loose: bool = False) -> NetworkCase:
    """A network spec.  With ``loose``, the output activation and the targets ignore what the loss
    needs (a log of a negative number, a target that is not one-hot): cases a careless user writes."""
    depth = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 5)) for _ in range(depth + 1)]
    loss = draw(st.sampled_from(LOSSES))
    loose = loose and draw(st.booleans())
    names = [draw(st.sampled_from(SCALAR)) for _ in range(depth - 1)]
    names.append(draw(st.sampled_from(SCALAR + ["softmax"] if loose else _last_activations(loss))))
    layers = []
    for l, name in enumerate(names):
        act, params = draw(_activation(name))
        layers.append({"weights": draw(st.lists(_vector(sizes[l]), min_size=sizes[l + 1], max_size=sizes[l + 1])),
                       "bias": draw(st.none() | _vector(sizes[l + 1])), "activation": act, "params": params})
    m = draw(st.integers(1, max_samples))
    n_out = sizes[-1]
    target = (_vector(n_out) if loose else _one_hot(n_out) if loss in ONE_HOT else
              _vector(n_out, decimals(0, 100)) if loss == "bce" else _vector(n_out))
    inputs = tuple(tuple(draw(_vector(sizes[0]))) for _ in range(m))
    targets = tuple(tuple(draw(target)) for _ in range(m))
    batch = m > 1 or draw(st.booleans())
    lr = draw(st.none() | decimals(1, 100))

    lines = ["[meta]", 'title = "a generated network"', "", "[network]"]
    if batch:
        lines += [f"input = {_toml_list(inputs)}", f"target = {_toml_list(targets)}"]
    else:
        lines += [f"input = {_toml_list(inputs[0])}", f"target = {_toml_list(targets[0])}"]
    lines.append(f'loss = "{loss}"')
    if lr is not None:
        lines.append(f'learning_rate = "{lr}"')
    for layer in layers:
        lines += ["", "[[network.layer]]", f"weights = {_toml_list(layer['weights'])}"]
        if layer["bias"] is not None:
            lines.append(f"bias = {_toml_list(layer['bias'])}")
        elif draw(st.booleans()):
            lines.append("bias = false")
        if layer["params"]:
            extra = "".join(f', {k} = "{v}"' for k, v in layer["params"].items())
            lines.append(f'activation = {{ name = "{layer["activation"]}"{extra} }}')
        else:
            lines.append(f'activation = "{layer["activation"]}"')
    if stated and draw(st.booleans()):
        suffix = "_s1" if m > 1 else ""
        lines += ["", "[stated]", f'loss = "{draw(decimals(0, 300, 3))}"',
                  f'"z1{suffix}[0]" = "{draw(decimals())}"', f'"grad_W1[0,0]" = "{draw(decimals(places=4))}"']
    return NetworkCase("\n".join(lines) + "\n", tuple(layers), inputs, targets, loss, lr, batch)
