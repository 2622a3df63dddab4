"""Perceptrons: threshold units, their truth tables, and Rosenblatt's learning rule (deck 003).

A ``[perceptron]`` table describes either

* **learning**: one unit with weight vector ``W(0)`` (``weights``), samples ``X^p`` with desired
  outputs ``d^p``, a rate ``η``; each presentation ``t`` of sample ``p`` computes
  ``net_t = W(t−1)ᵀ X^p``, ``o_t = g(net_t)`` (``g`` = sgn or step, from the registry) and
  ``W(t) = W(t−1) + η (d^p − o_t) X^p``.  Passes over the samples repeat a given number of times,
  or (``epochs = "converge"``) until a whole pass makes no error; or
* **fixed layers** (``[[perceptron.layer]]``): one or two computing layers with weights and
  thresholds, ``net = W x − T``, evaluated on every sample (a truth table).  The deck's names:
  hidden layer ``V``, ``T_y``, outputs ``y``; output layer ``W``, ``T``, outputs ``o``.

The derivation is a tuple of steps like every other kind, so verification, handouts and the
checker read it unchanged.  The length of a training run depends on the numbers (it stops at the
first pass without errors), so the weights must be given as numbers; the run is decided with exact
rational arithmetic (``sgn(0) = +1`` exactly, never a float compared with 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sympy as sp

from derive.core import primitives
from derive.core.errors import SpecError
from derive.core.spec import _activation, _int, _matrix, _table, _unknown_keys, _vector, number
from derive.core.steps import Derivation, Given, Quantity, Step, symbol

LR = "learning_rate"
MAX_SAMPLES = 256
MAX_WIDTH = 64
MAX_EPOCHS = 1000
MAX_PRESENTATIONS = 1000
CONVERGE = "converge"


# ----------------------------------------------------------------------------- the problem

@dataclass(frozen=True)
class PerceptronLayer:
    weights: tuple[tuple[sp.Expr, ...], ...]   # (units, inputs)
    threshold: tuple[sp.Expr, ...] | None      # subtracted from W x; None: none
    activation: str


@dataclass(frozen=True)
class Perceptron:
    activation: str
    inputs: tuple[tuple[sp.Expr, ...], ...]    # the samples X^p, as printed
    desired: tuple[sp.Expr, ...] | None        # d^p, one per sample
    weights: tuple[sp.Expr, ...] | None        # learning: W(0)
    learning_rate: sp.Expr | None
    epochs: int | str                          # a number of passes, or CONVERGE
    max_epochs: int
    layers: tuple[PerceptronLayer, ...] = ()   # fixed weights: one or two computing layers

    @property
    def learning(self) -> bool:
        return self.weights is not None


def _threshold_unit(name: str, path: str) -> str:
    act = primitives.ACTIVATIONS[name]
    if act.vector or act.params:
        raise SpecError(path, f"a perceptron unit needs a threshold activation such as 'sign' or 'step', got {name!r}")
    return name


def load_perceptron(table: dict, path: str = "perceptron") -> Perceptron:
    _unknown_keys(table, {"activation", "samples", "weights", "learning_rate", "epochs", "max_epochs", "layer"}, path)
    activation = _threshold_unit(_activation(table.get("activation", "sign"), f"{path}.activation").name,
                                 f"{path}.activation")
    inputs, desired_t = _samples(table.get("samples"), f"{path}.samples")
    n = len(inputs[0])
    learning = "weights" in table
    if learning == ("layer" in table):
        raise SpecError(path, "give 'weights' (a weight vector to learn) or [[perceptron.layer]] tables "
                              "(fixed weights)")
    if not learning:
        for key in ("learning_rate", "epochs", "max_epochs"):
            if key in table:
                raise SpecError(f"{path}.{key}",
                                "only for learning (a 'weights' vector); fixed layers are only evaluated")
        layers = _layers(table["layer"], f"{path}.layer", n, activation)
        return Perceptron(activation, tuple(inputs), desired_t, None, None, 1, 1, layers)
    weights = _vector(table["weights"], f"{path}.weights", n)
    if "learning_rate" not in table:
        raise SpecError(f"{path}.learning_rate", "missing: learning needs a rate η")
    lr = number(table["learning_rate"], f"{path}.learning_rate")
    if not lr > 0:
        raise SpecError(f"{path}.learning_rate", "expected a positive rate")
    if desired_t is None:
        raise SpecError(f"{path}.samples", "learning needs the desired output d of every sample")
    epochs = table.get("epochs", 1)
    if epochs != CONVERGE:
        epochs = _int(epochs, f"{path}.epochs", 1, MAX_EPOCHS) if not isinstance(epochs, str) else \
            _bad_epochs(f"{path}.epochs", epochs)
    default = max(1, min(100, MAX_PRESENTATIONS // len(inputs)))   # passes, within the presentation bound
    max_epochs = _int(table.get("max_epochs", default), f"{path}.max_epochs", 1, MAX_EPOCHS)
    passes = epochs if isinstance(epochs, int) else max_epochs
    if passes * len(inputs) > MAX_PRESENTATIONS:
        raise SpecError(f"{path}.{'epochs' if isinstance(epochs, int) else 'max_epochs'}",
                        f"at most {MAX_PRESENTATIONS} presentations (passes × samples)")
    return Perceptron(activation, tuple(inputs), desired_t, weights, lr, epochs, max_epochs)


def _samples(raw, path: str) -> tuple[list, tuple | None]:
    """The samples' inputs as printed, and their desired outputs (for all of them or for none)."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_SAMPLES:
        raise SpecError(path, f"expected 1 to {MAX_SAMPLES} tables such as {{ x = [\"1\", \"0\"], d = \"1\" }}")
    inputs, desired = [], []
    for i, s in enumerate(raw):
        sp_ = f"{path}[{i}]"
        s = _table(s, sp_)
        _unknown_keys(s, {"x", "d"}, sp_)
        if "x" not in s:
            raise SpecError(f"{sp_}.x", "missing: the sample's inputs as printed")
        x = _vector(s["x"], f"{sp_}.x", len(inputs[0]) if inputs else None)
        if len(x) > MAX_WIDTH:
            raise SpecError(f"{sp_}.x", f"at most {MAX_WIDTH} inputs")
        inputs.append(x)
        desired.append(number(s["d"], f"{sp_}.d") if "d" in s else None)
    if any(d is None for d in desired) and any(d is not None for d in desired):
        raise SpecError(path, "give the desired output d for every sample or for none")
    return inputs, (None if desired[0] is None else tuple(desired))


def _bad_epochs(path: str, value: str):
    raise SpecError(path, f"expected a number of passes or {CONVERGE!r}, got {value!r}")


def _layers(raw, path: str, n_in: int, activation: str) -> tuple[PerceptronLayer, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= 2:
        raise SpecError(path, "expected one or two [[perceptron.layer]] tables (a hidden and an output layer)")
    layers = []
    for i, layer in enumerate(raw):
        lp = f"{path}[{i}]"
        layer = _table(layer, lp)
        _unknown_keys(layer, {"weights", "threshold", "activation"}, lp)
        w_raw = layer.get("weights")
        rows = len(w_raw) if isinstance(w_raw, list) else 0
        if not 1 <= rows <= MAX_WIDTH:
            raise SpecError(f"{lp}.weights", f"expected a matrix of 1 to {MAX_WIDTH} rows (one per unit)")
        weights = _matrix(w_raw, f"{lp}.weights", rows, n_in)
        threshold = _vector(layer["threshold"], f"{lp}.threshold", rows) if "threshold" in layer else None
        act = activation
        if "activation" in layer:
            act = _threshold_unit(_activation(layer["activation"], f"{lp}.activation").name, f"{lp}.activation")
        layers.append(PerceptronLayer(weights, threshold, act))
        n_in = rows
    return tuple(layers)


# ----------------------------------------------------------------------------- steps

@dataclass(frozen=True)
class PerceptronNet(Step):
    """net = Wᵀ X, or W x − T for a layer with thresholds: a unit's weighted sum."""

    sample: int = 0
    rule: ClassVar[str] = "perceptron_net"
    op: ClassVar[str] = "affine"      # affine in weights and inputs: formula checks may keep it an atom
    forward: ClassVar[bool] = True    # a forward quantity: answer checking keeps it an atom


@dataclass(frozen=True)
class PerceptronOutput(Step):
    """o = g(net), g a threshold unit of the registry (sgn: +1 for net ≥ 0, else −1)."""

    activation: str = "sign"
    rule: ClassVar[str] = "perceptron_output"
    forward: ClassVar[bool] = True


@dataclass(frozen=True)
class PerceptronUpdate(Step):
    """W(t) = W(t−1) + η (d − o) X: the perceptron learning rule (no change when o = d)."""

    sample: int = 0
    rule: ClassVar[str] = "perceptron_rule"


@dataclass(frozen=True)
class PassErrors(Step):
    """The number of presentations of one pass whose output differs from the desired one."""

    epoch: int = 0
    rule: ClassVar[str] = "pass_errors"


@dataclass(frozen=True)
class Converged(Step):
    """The number of passes made: the last is the first without an error (so the weights stay)."""

    rule: ClassVar[str] = "converged"


# ----------------------------------------------------------------------------- derivation

def _given_vector(name: str, values, role: str) -> Given:
    return Given(Quantity(name, (len(values),)), tuple(values), (), role=role)


def _value(expr: sp.Expr, env: dict) -> sp.Expr:
    """The exact value of an expression of given numbers (rational throughout)."""
    return expr.xreplace(env)


def derive_perceptron(p: Perceptron) -> Derivation:
    return _learn(p) if p.learning else _table_of(p)


def _learn(p: Perceptron) -> Derivation:
    n, P = len(p.weights), len(p.inputs)
    steps: list[Step] = [_given_vector(f"X{k}", x, "input") for k, x in enumerate(p.inputs, start=1)]
    steps += [Given(Quantity(f"d{k}"), (d,), (), role="target") for k, d in enumerate(p.desired, start=1)]
    steps += [_given_vector("W0", p.weights, "param"), Given(Quantity(LR), (p.learning_rate,), (), role="hyper")]
    env = {s: e for g in steps for s, e in g.items()}
    act = primitives.ACTIVATIONS[p.activation]
    spread = act.define(sp.Integer(1)) - act.define(sp.Integer(-1))   # |d − o| when they differ
    eta = symbol(LR)
    t, epoch = 0, 0
    while True:
        epoch += 1
        wrong = []
        for k in range(1, P + 1):
            t += 1
            X, W = Quantity(f"X{k}", (n,)), Quantity(f"W{t - 1}", (n,))
            net = sp.Add(*[w * x for w, x in zip(W.symbols(), X.symbols())])
            out = act.define(symbol(f"net{t}"))
            d = symbol(f"d{k}")
            new = tuple(w + eta * (d - symbol(f"o{t}")) * x for w, x in zip(W.symbols(), X.symbols()))
            step_t = [PerceptronNet(Quantity(f"net{t}"), (net,), (W.name, X.name), sample=k),
                      PerceptronOutput(Quantity(f"o{t}"), (out,), (f"net{t}",), activation=p.activation),
                      PerceptronUpdate(Quantity(f"W{t}", (n,)), new, (W.name, LR, f"d{k}", f"o{t}", X.name), sample=k)]
            for s in step_t:
                for sym, e in s.items():
                    env[sym] = _value(e, env)
            steps += step_t
            wrong.append(sp.Abs(d - symbol(f"o{t}")) / spread)
        reads = tuple(f"o{u}" for u in range(t - P + 1, t + 1)) + tuple(f"d{k}" for k in range(1, P + 1))
        steps.append(PassErrors(Quantity(f"errors{epoch}"), (sp.Add(*wrong),), reads, epoch=epoch))
        errors = _value(steps[-1].exprs[0], env)
        if p.epochs != CONVERGE:
            if epoch == p.epochs:
                break
        elif errors == 0:
            steps.append(Converged(Quantity("epochs"), (sp.Integer(epoch),), (f"errors{epoch}",)))
            break
        elif epoch == p.max_epochs:
            raise SpecError("perceptron.max_epochs",
                            f"still {errors} error(s) in pass {epoch}: no pass without errors within "
                            f"{p.max_epochs} passes (are the samples linearly separable?)")
    return Derivation(tuple(steps), "perceptron", (("W_final", f"W{t}"),))


def _table_of(p: Perceptron) -> Derivation:
    """Every sample through fixed layers: hidden V, T_y → y; output W, T → o (scalars for one unit)."""
    names = [("V", "T_y", "net_y", "y"), ("W", "T", "net", "o")][-len(p.layers):]
    shape = lambda units: () if units == 1 else (units,)
    steps: list[Step] = [_given_vector(f"X{k}", x, "input") for k, x in enumerate(p.inputs, start=1)]
    if p.desired is not None:
        steps += [Given(Quantity(f"d{k}"), (d,), (), role="target") for k, d in enumerate(p.desired, start=1)]
    for layer, (W, T, _, _) in zip(p.layers, names):
        rows, cols = len(layer.weights), len(layer.weights[0])
        steps.append(Given(Quantity(W, (rows, cols)), tuple(v for r in layer.weights for v in r), (), role="param"))
        if layer.threshold is not None:
            steps.append(Given(Quantity(T, shape(rows)), layer.threshold, (), role="param"))
    for k in range(1, len(p.inputs) + 1):
        prev = Quantity(f"X{k}", (len(p.inputs[0]),))
        for layer, (W, T, net_name, out_name) in zip(p.layers, names):
            units = len(layer.weights)
            Wq = Quantity(W, (units, prev.size))
            thr = Quantity(T, shape(units)).symbols() if layer.threshold is not None else [0] * units
            sums = [sp.Add(*[Wq.symbol((i, j)) * s for j, s in enumerate(prev.symbols())]) - thr[i]
                    for i in range(units)]
            net, out = Quantity(f"{net_name}{k}", shape(units)), Quantity(f"{out_name}{k}", shape(units))
            act = primitives.ACTIVATIONS[layer.activation]
            steps.append(PerceptronNet(net, tuple(sums), (W, prev.name) + ((T,) if layer.threshold else ()), sample=k))
            steps.append(PerceptronOutput(out, tuple(act.define(s) for s in net.symbols()), (net.name,),
                                          activation=layer.activation))
            prev = out
    return Derivation(tuple(steps), "perceptron")
