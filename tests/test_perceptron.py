"""Perceptrons (derive/perceptron.py): training and truth tables against an exact-fraction oracle
(tests/oracles.py, no engine code), the sgn(0) convention, spec errors, handouts and answer checking."""
from __future__ import annotations

from fractions import Fraction

import pytest

import oracles
import worked_examples
from derive.kinds import derive
from derive.core.errors import SpecError
from derive.core.evaluate import evaluate
from derive.grading.answers import CORRECT, WRONG
from derive.grading.grade import Problem, grade_data, grade_latex
from derive.handout.assemble import build
from derive.kinds import load, loads

LEARNING = "003_2_perceptron_learning"


def _values(spec):
    d = derive(spec)
    env = evaluate(d)
    get = lambda name: [Fraction(int(env[s].exact.p), int(env[s].exact.q)) for s in d.quantity(name).symbols()]
    return d, get


@pytest.mark.parametrize("name", [LEARNING, "003_1_perceptron_and", "003_1_perceptron_or", "003_1_perceptron_xor"])
def test_every_quantity_is_the_oracles_exactly(name):
    path = worked_examples.path(name)
    d, get = _values(load(path))
    expected = oracles.perceptron_values(oracles.load(path))
    names = [s.name for s in d.steps if s.name != "learning_rate" and not s.name.startswith(("d", "V", "W", "T"))
             or s.name.startswith("W") and s.name[1:].isdigit()]
    assert names
    for n in names:
        want = expected[n] if isinstance(expected[n], list) else [expected[n]]
        assert get(n) == want, n
    if "epochs" in d:
        assert get("epochs") == [expected["epochs"]] and get("W_final") == expected["W_final"]


def test_training_stops_at_the_first_pass_without_an_error():
    d, get = _values(load(worked_examples.path(LEARNING)))
    epochs = int(get("epochs")[0])
    assert [get(f"errors{e}")[0] == 0 for e in range(1, epochs + 1)] == [False] * (epochs - 1) + [True]
    assert epochs > 1 and f"errors{epochs + 1}" not in d


SIGN_AT_ZERO = """
[perceptron]
samples = [{ x = ["1", "1"], d = "-1" }]
weights = ["1", "-1"]
learning_rate = "0.5"
"""


def test_sgn_of_zero_is_plus_one_so_the_rule_updates():
    d, get = _values(loads(SIGN_AT_ZERO))
    assert get("net1") == [0] and get("o1") == [1]
    assert get("W1") == oracles.perceptron_values(oracles.tomllib.loads(SIGN_AT_ZERO))["W1"] == [0, -2]


def test_xor_is_not_learnt_by_one_unit():
    spec = """
[perceptron]
samples = [{ x = ["-1", "0", "0"], d = "-1" }, { x = ["-1", "0", "1"], d = "1" },
           { x = ["-1", "1", "0"], d = "1" }, { x = ["-1", "1", "1"], d = "-1" }]
weights = ["0.1", "0.2", "-0.1"]
learning_rate = "0.5"
epochs = "converge"
max_epochs = 30
"""
    with pytest.raises(SpecError) as err:
        derive(loads(spec))
    assert err.value.path == "perceptron.max_epochs" and "linearly separable" in err.value.message


def test_a_fixed_number_of_passes():
    spec = loads(SIGN_AT_ZERO.replace('learning_rate = "0.5"', 'learning_rate = "0.5"\nepochs = 3'))
    d = derive(spec)
    assert "W3" in d and "W4" not in d and "epochs" not in d and "errors3" in d


@pytest.mark.parametrize("table, path, words", [
    ('samples = [{ x = ["1"] }]\nweights = ["1"]\nlearning_rate = "1"', "perceptron.samples", "desired output"),
    ('samples = [{ x = ["1"], d = "1" }]\nweights = ["1"]', "perceptron.learning_rate", "missing"),
    ('samples = [{ x = ["1"], d = "1" }]\nweights = ["1", "2"]\nlearning_rate = "1"',
     "perceptron.weights", "expected 1"),
    ('samples = [{ x = ["1"], d = "1" }]\nweights = ["1"]\nlearning_rate = "1"\nepochs = "forever"',
     "perceptron.epochs", "converge"),
    ('samples = [{ x = ["1"], d = "1" }, { x = ["1", "2"], d = "1" }]\nweights = ["1"]\nlearning_rate = "1"',
     "perceptron.samples[1].x", "expected 1"),
    ('samples = [{ x = ["1"] }]\nweights = ["1"]\nlearning_rate = "1"\n[[perceptron.layer]]\nweights = [["1"]]',
     "perceptron", "or [[perceptron.layer]]"),
    ('activation = "softmax"\nsamples = [{ x = ["1"] }]\n[[perceptron.layer]]\nweights = [["1"]]',
     "perceptron.activation", "threshold"),
    ('samples = [{ x = ["1"] }]\nlearning_rate = "1"\n[[perceptron.layer]]\nweights = [["1"]]',
     "perceptron.learning_rate", "only for learning"),
    ('samples = [{ x = ["1"] }]\n[[perceptron.layer]]\nweights = [["1", "2"]]', "perceptron.layer[0].weights[0]",
     "expected 1"),
    ('samples = [{ x = ["1"], d = "1" }]\nweights = ["1"]\nlearning_rate = "1"\nepochs = 1000\n'
     'max_epochs = 1000\nsamples_extra = 1', "perceptron.samples_extra", "unknown key"),
])
def test_spec_errors_name_the_key(table, path, words):
    with pytest.raises(SpecError) as err:
        loads("[perceptron]\n" + table)
    assert err.value.path == path and words in err.value.message, (err.value.path, err.value.message)


def test_presentations_are_bounded():
    samples = ", ".join('{ x = ["1"], d = "1" }' for _ in range(100))
    with pytest.raises(SpecError) as err:
        loads(f'[perceptron]\nsamples = [{samples}]\nweights = ["1"]\nlearning_rate = "1"\nepochs = 100')
    assert err.value.path == "perceptron.epochs" and "at most" in err.value.message


def test_the_handout_prints_every_presentation_in_the_decks_names():
    spec = load(worked_examples.path(LEARNING))
    d, get = _values(spec)
    tex = build(spec).tex()
    presentations = sum(1 for s in d.steps if s.rule == "perceptron_net")
    assert f"Presentation {presentations}, sample" in tex and f"Presentation {presentations + 1}," not in tex
    assert r"\mathit{net}^{1}(0) & = W(0)^{\top} X^{1}" in tex and r"o^{3}(2) & = \operatorname{sgn}" in tex
    assert r"\mathrm{epochs} & = " + str(int(get("epochs")[0])) in tex


def test_answers_are_checked_numbers_and_formulas():
    p = Problem.build(load(worked_examples.path(LEARNING)))
    v = oracles.perceptron_values(oracles.load(worked_examples.path(LEARNING)))
    numbers = {"net2": str(float(v["net2"])), "o2": str(int(-v["o2"])), "epochs": str(int(v["epochs"]))}
    records, latex = grade_data(p, {"problem": LEARNING, "answers": numbers})
    assert not latex
    verdicts = {r.quantity: r.verdict for r in records}
    assert verdicts == {"net2": CORRECT, "o2": WRONG, "epochs": CORRECT}
    formula = lambda q, text: grade_latex(p, q, None, text)["verdict"]
    assert formula("W3", r"$W_2 + \eta (d_3 - o_3) X_3$") == CORRECT
    assert formula("W3", r"$W_2 - \eta (d_3 - o_3) X_3$") == WRONG
    assert formula("o3", r"$\operatorname{sgn}(W_2^T X_3)$") == CORRECT
    assert formula("o4", r"$\operatorname{sgn}(W_3^T X_2)$") == WRONG     # presentation 4 shows sample 1


def test_a_mistaken_rule_is_named():
    p = Problem.build(load(worked_examples.path(LEARNING)))
    v = oracles.perceptron_values(oracles.load(worked_examples.path(LEARNING)))
    flipped = [str(float(2 * w - n)) for w, n in zip(v["W2"], v["W3"])]   # W2 − η(d3 − o3)X3
    records, _ = grade_data(p, {"problem": LEARNING, "answers": {"W2": [str(float(w)) for w in v["W2"]],
                                                              "W3": flipped}})
    wrong = [r for r in records if r.quantity == "W3" and r.verdict == WRONG]
    assert wrong and all("sign flipped" in r.feedback for r in wrong)
    assert formula_feedback(p, "W3", r"$W_2 + \eta d_3 X_3$").startswith("used the desired output d³")


def formula_feedback(p, quantity, text):
    return grade_latex(p, quantity, None, text)["feedback"]
