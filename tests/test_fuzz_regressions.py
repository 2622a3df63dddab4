"""Regression tests for the failures the fuzzing suites found (issue 10; docs/guide.md, Testing).

Each test fails on the code before its fix.  Oracles are exact values worked by hand or mpmath.
"""
from __future__ import annotations

import json
from fractions import Fraction

import mpmath
import pytest

from derive.kinds import derive
from derive.core.errors import SpecError
from derive.core.evaluate import evaluate
from derive.kinds import loads


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


RNN_ONE_SOFTMAX = """
[recurrent]
hidden_size = 1
inputs = [["2"]]
targets = [["0"]]
output_size = 1
g2 = "softmax"
loss = "mae"

[recurrent.params]
W_hh = [["0.5"]]
W_xh = [["0.5"]]
b_h = ["0"]
W_hy = [["-1.55"]]
b_y = ["-1.21"]
"""


def test_a_recurrent_handout_prints_a_gradient_that_nothing_feeds():
    # softmax over one output is the constant 1: no reader of s_1 depends on it, and the handout
    # crashed (IndexError in recurrent_tex._sum) on the empty chain-rule sum
    from derive.handout.assemble import build
    spec = loads(RNN_ONE_SOFTMAX)
    v = {s.name: x for s, x in evaluate(derive(spec)).items()}
    assert v["loss"].exact == 1                                    # |softmax(s) − 0| = |1 − 0|
    assert all(float(v[n]) == 0 for n in v if n.startswith(("grad_W_", "grad_b_")))
    h = build(spec)
    assert "so its gradient is 0" in h.markdown() and "so its gradient is 0" in h.tex()


def test_a_handout_error_names_the_spec_file_as_verify_does(tmp_path, capsys, monkeypatch):
    # a node that does not parse: verify and solve said 'm.toml: graph.nodes[0]: ...', the handout
    # only 'graph.nodes[0]: ...' (its derivation ran outside the wrapper that names the file)
    from derive import cli
    monkeypatch.setenv("NNDERIVE_NO_SANDBOX", "1")
    spec = tmp_path / "m.toml"
    spec.write_text('[graph]\nvalues = { a = "1" }\nnodes = ["c = a +"]\n', encoding="utf-8")
    for argv in (["verify", spec], ["solve", spec], ["handout", spec, "-o", tmp_path / "m.md"]):
        capsys.readouterr()
        assert cli.main([str(a) for a in argv]) == 2
        assert capsys.readouterr().err.startswith("nnderive: error: m.toml: graph.nodes[0]: cannot parse"), argv


@pytest.mark.parametrize("q", ["1", "3", "0.5"])
def test_the_gradient_through_the_absolute_value_of_a_log_is_sign_times_slope(q):
    # |log q| at q = 1 (its kink): SymPy's d|u|/dq for a u it cannot prove real is 0/0 there, and
    # solve refused with "grad_q: cannot evaluate"; |x|'(0) = 0 by the documented convention
    v = _values(f'[graph]\nvalues = {{ q = "{q}" }}\nparams = ["q"]\nnodes = ["x = abs(log(q))", "c = q"]\nloss = "x"\n')
    with mpmath.workdps(40):
        expected = mpmath.sign(mpmath.log(mpmath.mpf(q))) / mpmath.mpf(q)
        assert abs(mpmath.mpf(float(v["grad_q"])) - expected) < 1e-12


@pytest.mark.parametrize("claim", ['lhs = 0\nrhs = "x"', 'lhs = "x"\nrhs = ["x"]', 'label = "l"\nlhs = 1.5\nrhs = "x"'])
def test_a_claim_side_that_is_not_a_string_is_refused_naming_it(claim):
    # the default label (lhs + " = " + rhs) was built before the sides were checked: TypeError
    with pytest.raises(SpecError) as err:
        loads(f'[symbols]\nx = "real"\n\n[[claim]]\n{claim}\n')
    assert str(err.value).startswith("claim[0].")


@pytest.mark.parametrize("junk", ["\x85", "\n", "\u2028", "\x1b[31m", "\U000be7d2"])
def test_an_error_quoting_a_key_with_control_characters_is_one_line(junk, tmp_path, capsys, monkeypatch):
    # an unknown key 'stated\x85…' was echoed raw: NEL (and \n, U+2028) broke the one-line error,
    # ESC could drive the terminal
    from derive import cli
    monkeypatch.setenv("NNDERIVE_NO_SANDBOX", "1")
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"graph": {"values": {"a": "1"}, "nodes": ["c = a"]}, "stated" + junk: {}}),
                    encoding="utf-8")
    answers = tmp_path / "a.toml"
    answers.write_text('[answers]\nc = "1"\n', encoding="utf-8")
    for argv in (["verify", spec], ["solve", spec], ["handout", spec], ["check", spec, answers]):
        capsys.readouterr()
        assert cli.main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.isprintable() is False and err[:-1].isprintable(), repr(err)
        assert "unknown key" in err


# Found by tests/test_properties_answers.py: a sigmoid output within 3e-10 of 1, graded from its
# printed value 1.0000, put log(1 − y) outside its domain while carrying, and `check` exited 2 with
# "loss: cannot evaluate: logarithm of a negative number" (on any answer file: its warm-up grades the key).
RNN_BCE_SATURATED = """
[recurrent]
hidden_size = 3
inputs = [["-1.43"], ["1.47"]]
targets = [["0.43"]]
output_size = 1
g2 = "sigmoid"
g1 = "leaky_relu"
loss = "bce"
loss_at = "last"
learning_rate = "0.31"

[recurrent.params]
W_hh = [["-1.48", "-2", "0.08"], ["1.21", "0.93", "2"], ["1.94", "-1.42", "-2"]]
W_xh = [["-1.55"], ["2"], ["2"]]
b_h = ["-0.21", "-0.5", "1.11"]
W_hy = [["-1.99", "-0.5", "3"]]
b_y = ["0.18"]
"""


def _saturated_bce_loss() -> mpmath.mpf:
    """The loss worked in mpmath from the spec's numbers (leaky ReLU slope 0.01, h0 = 0)."""
    with mpmath.workdps(50):
        M = mpmath.mpf
        W_hh = [[M("-1.48"), M(-2), M("0.08")], [M("1.21"), M("0.93"), M(2)], [M("1.94"), M("-1.42"), M(-2)]]
        W_xh, b_h = [M("-1.55"), M(2), M(2)], [M("-0.21"), M("-0.5"), M("1.11")]
        leaky = [lambda a: a if a > 0 else a / 100][0]
        h = [M(0)] * 3
        for x in (M("-1.43"), M("1.47")):
            h = [leaky(sum(W_hh[i][j] * h[j] for j in range(3)) + W_xh[i] * x + b_h[i]) for i in range(3)]
        s = M("-1.99") * h[0] - M("0.5") * h[1] + 3 * h[2] + M("0.18")
        y, t = 1 / (1 + mpmath.exp(-s)), M("0.43")
        return -(t * mpmath.log(y) + (1 - t) * mpmath.log(1 - y))


def test_a_saturated_sigmoid_printed_as_one_is_graded_not_a_crash(tmp_path, capsys, monkeypatch):
    from derive import cli
    monkeypatch.setenv("NNDERIVE_NO_SANDBOX", "1")
    from derive.grading.grade import Problem, grade_data
    loss = _saturated_bce_loss()
    key = mpmath.nstr(loss, 9, min_fixed=-1, max_fixed=8)[:7]           # 12.5186, four decimals
    assert key == "12.5186"
    p = Problem.build(loads(RNN_BCE_SATURATED))
    records, _ = grade_data(p, {"answers": {"y2": "1.0000", "loss": key}})
    assert [r.verdict for r in records] == ["correct", "correct"]
    records, _ = grade_data(p, {"answers": {"y2": "1.0000", "loss": "12.9186"}})
    assert [r.verdict for r in records] == ["correct", "wrong"]        # nothing is carried from y2 = 1 to a wrong loss
    spec, answers = tmp_path / "spec.toml", tmp_path / "answers.toml"
    spec.write_text(RNN_BCE_SATURATED)
    answers.write_bytes(b"\x00 not toml")
    assert cli.main(["check", str(spec), str(answers), "--json", "--jobs", "1"]) == 1, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["submissions"][0]["records"][0]["verdict"] == "invalid"


@pytest.mark.parametrize("node, grad", [
    # found by tests/test_properties_graph.py against PyTorch: a node that starts with an activation
    # call with a keyword was taken for that one call, and its local derivative was the activation's
    ("f = leaky_relu(u, alpha=1.5)**(-2)", Fraction(64, 243)),               # was 3/2
    ("f = leaky_relu(u, alpha=0.2) * leaky_relu(u, alpha=0.3)", Fraction(-9, 50)),
    ("f = leaky_relu(u, alpha=1.5)", Fraction(3, 2)),                          # the one call: still its own form
])
def test_a_node_is_an_activation_only_when_it_is_the_one_call(node, grad):
    v = _values(f'[graph]\nvalues = {{ u = "-1.5" }}\nparams = ["u"]\nnodes = ["{node}"]\nloss = "f"\n')
    assert v["grad_u"].exact == grad


def test_a_value_too_small_for_any_float_is_shown_and_written_exactly(tmp_path, capsys, monkeypatch):
    # found by the answer-file suite: exp(-exp(30)) (about 10^-4.6e12) made `solve --json` build an
    # integer of 2^42 bits for its exact text (MemoryError); rounding it for a handout did the same
    from derive import cli
    monkeypatch.setenv("NNDERIVE_NO_SANDBOX", "1")
    spec = tmp_path / "tiny.toml"
    spec.write_text('[graph]\nvalues = { u = "30" }\nparams = ["u"]\nnodes = ["a = exp(u)", "b = exp(-a)"]\n'
                    'loss = "b"\n', encoding="utf-8")
    assert cli.main(["solve", str(spec), "--json"]) == 0
    exact = json.loads(capsys.readouterr().out)["exact"]
    with mpmath.workdps(30):
        log10_b = -mpmath.exp(30) / mpmath.log(10)                  # log10 of b, about -4.64e12
    for name, log10, sign in (("b", log10_b, ""), ("grad_u", log10_b + mpmath.mpf(30) / mpmath.log(10), "-")):
        lo, hi = (e.strip() for e in exact[name].strip("[]").split(","))
        ends = sorted(mpmath.mpf(e.lstrip("-").split("e")[1]) for e in (lo, hi))
        assert lo.startswith(sign) and hi.startswith(sign) and ends[0] <= log10 <= ends[1], (name, exact[name])
    assert cli.main(["handout", str(spec), "--format", "md", "-o", str(tmp_path / "tiny.md")]) == 0


def test_a_kernel_prints_a_copy_of_a_copy_by_its_source(tmp_path):
    # found by the graph suite (long profile): `e = a**2`, then `e = e` rebinds e to a copy; the
    # recomputed e′ after the step is a copy of e, and e′_1 a copy of e′: the unrolled kernel returned
    # the folded-away name e_new (NameError when Numba typed the module)
    pytest.importorskip("numba")
    import numpy as np

    import kernels
    spec = tmp_path / "copies.toml"
    spec.write_text('[graph]\nvalues = { a = "0", d = "0" }\nparams = ["d"]\nnodes = ["e = a**2", "e = e", "f = a"]\n',
                    encoding="utf-8")
    k = kernels.compile(spec, shape="unrolled", cache_dir=tmp_path / "cache")
    got = k.trace(np.array([1.5, 0.25]), 0.5)
    expected = {"e": 2.25, "e_1": 2.25, "f": 1.5, "grad_a": 1.0, "grad_d": 0.0, "d_new": 0.25,
                "e_new": 2.25, "e_1_new": 2.25, "f_new": 1.5}
    assert {n: float(got[n]) for n in expected} == expected


CNN_TIED_MAXIMA = """
[cnn]
input = [["0", "0", "0", "0"], ["0", "0", "1", "1"]]

[[cnn.layer]]
type = "activation"
activation = "bipolar_sigmoid"

[[cnn.layer]]
type = "maxpool"
size = 2

[[cnn.layer]]
type = "activation"
activation = "bipolar_sigmoid"

[grading]
decimals = 4
ask = ["grad_act1"]
"""


def test_tied_maxima_of_equal_irrational_values_take_the_first_as_pytorch_does():
    # found by the answer-file suite (long profile): the right window's two maxima are both σ±(1),
    # equal but irrational, so no enclosure could decide the tie: each got the hull of both branches
    # (the key printed 0.2371 for both instead of 0.4742 and 0), and every right answer was undetermined
    from derive.grading.grade import Problem, grade_data
    v = _values(CNN_TIED_MAXIMA)
    with mpmath.workdps(40):
        s = mpmath.tanh(mpmath.tanh(mpmath.mpf(1) / 2) / 2)             # σ±(σ±(1)), σ±(x) = tanh(x/2)
        first = (1 - s**2) / 2                                            # upstream 1 · σ±′ at the pooled value
    assert abs(float(v["grad_act1[1,2]"]) - float(first)) < 1e-15 and float(v["grad_act1[1,3]"]) == 0.0
    p = Problem.build(loads(CNN_TIED_MAXIMA))
    answers = {"grad_act1[1,2]": mpmath.nstr(first, 4), "grad_act1[1,3]": "0.0000", "grad_act1[0,0]": "0.5000"}
    records, _ = grade_data(p, {"answers": answers})
    assert {(r.index, r.verdict) for r in records if r.answer} == {((1, 2), "correct"), ((1, 3), "correct"),
                                                                    ((0, 0), "correct")}
