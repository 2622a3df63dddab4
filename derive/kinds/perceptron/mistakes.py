"""The `[perceptron]` kind's known slips (derive/core/mistakes.py)."""
from __future__ import annotations

from derive.core.mistakes import Mistake
from derive.core.steps import symbol


def _PerceptronUpdate(step, derivation):
    W, lr, d, o, X = step.inputs
    eta, dd, oo = symbol(lr), symbol(d), symbol(o)
    w, x = derivation.quantity(W).symbols(), derivation.quantity(X).symbols()
    return [Mistake(step.name, tuple(a + eta * (oo - dd) * b for a, b in zip(w, x)),
                    f"sign flipped: {step.name} = {W} + η ({d} − {o}) {X}"),
            Mistake(step.name, tuple(a + eta * dd * b for a, b in zip(w, x)),
                    f"used the desired output {d} instead of the error {d} − {o}"),
            Mistake(step.name, tuple(a + (dd - oo) * b for a, b in zip(w, x)),
                    f"learning rate missing: {step.name} = {W} + η ({d} − {o}) {X}")]


def _PerceptronOutput(step, derivation):
    net = step.inputs[0]
    return [Mistake(step.name, tuple(derivation.quantity(net).symbols()),
                    f"{step.activation} not applied: {step.name} = {step.activation}({net})")]


MAKERS = {"PerceptronUpdate": _PerceptronUpdate, "PerceptronOutput": _PerceptronOutput}
