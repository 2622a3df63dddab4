"""Stating the quantities slides print (issue 10): the probabilities under softmax cross-entropy
have a name, ``p``; an unknown name is an error that lists the valid names or the closest ones.
Oracle: NumPy's softmax of the logits, computed here."""
from __future__ import annotations

import numpy as np
import pytest

from derive.core.errors import SpecError
from derive.handout.assemble import build
from derive.kinds import loads
from derive.verify.stated import verify_spec

W = [[0.1, 0.2, -0.3], [0.3, -0.1, 0.5], [-0.2, 0.4, 0.1]]
X = [1.0, 2.0, -1.0]


def _spec(stated: str, loss: str = "softmax_cross_entropy") -> str:
    rows = ", ".join("[" + ", ".join(f'"{w}"' for w in row) + "]" for row in W)
    return (f'[network]\ninput = {[str(x) for x in X]}\ntarget = ["0", "1", "0"]\nloss = "{loss}"\n'
            f'[[network.layer]]\nweights = [{rows}]\nactivation = "identity"\n[stated]\n{stated}\n').replace("'", '"')


def _softmax() -> np.ndarray:
    z = np.array(W) @ np.array(X)
    e = np.exp(z - z.max())
    return e / e.sum()


def test_softmax_cross_entropy_probabilities_are_stated_as_p():
    """Regression: every name tried gave "unknown quantity 'p'"."""
    p = _softmax()
    shown = [f"{v:.4f}" for v in p]
    report = verify_spec(loads(_spec(f"p = {shown}".replace("'", '"'))))
    assert [r.verdict for r in report.records] == ["exact"] * 3
    assert [float(r.value) for r in report.records] == pytest.approx(list(p), rel=1e-12)
    wrong = shown[:1] + [f"{p[1] + 0.001:.4f}"] + shown[2:]
    report = verify_spec(loads(_spec(f"p = {wrong}".replace("'", '"'))))
    assert [r.verdict for r in report.records] == ["exact", "wrong", "exact"]


def test_the_probabilities_are_in_the_handout():
    spec = loads(_spec('"p[0]" = "0.1"'))
    md = build(spec).markdown()
    assert r"\mathbf{p} & = \operatorname{softmax}\left(\mathbf{y}\right)" in md
    assert f"{_softmax()[1]:.4f}" in md


def test_an_unknown_quantity_lists_the_valid_names():
    with pytest.raises(SpecError) as err:
        verify_spec(loads(_spec('p = ["0.3", "0.3", "0.4"]', loss="half_sse")))
    message = err.value.message
    assert err.value.path == "stated.p[0]" and "unknown quantity 'p'" in message
    listed = message.split("(the quantities: ")[1].rstrip(")").split(", ")
    # every name listed is one the same spec accepts, and the ones slides print are among them
    assert {"z1", "h1", "y", "loss", "grad_W1", "delta1"} <= set(listed)
    for name in listed:
        try:
            verify_spec(loads(_spec(f'{name} = "0"', loss="half_sse")))
        except SpecError as e:        # a vector stated as a scalar is refused, but never as unknown
            assert "unknown quantity" not in e.message, (name, e.message)


def test_a_near_miss_gets_the_closest_names():
    with pytest.raises(SpecError, match=r"unknown quantity 'grad_W'; did you mean grad_W1"):
        verify_spec(loads(_spec('grad_W = "0"')))
