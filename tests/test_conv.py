"""The [cnn] kind: gradients against central finite differences (mpmath forward pass) and PyTorch,
the closed forms proved inside the derivation (and that the proof can fail), the output-size
formula, the max-pooling tie rule, and spec errors that name their key path."""
from __future__ import annotations

import random
import tomllib

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive.kinds import derive
from derive.kinds.cnn.derivation import _Builder, grid
from derive.kinds.cnn.spec import load_cnn, prove_output_size
from derive.core.maps import correlate, rot180, zero_pad
from derive.core.errors import SpecError
from derive.core.evaluate import evaluate
from derive.kinds import loads
from derive.core.steps import Quantity

import oracles
from hang_guard import hang_guard


def _num(rng: random.Random, low=-1.0, high=1.0) -> str:
    return f"{rng.uniform(low, high):.6f}"


def _mat(rng, rows, cols, **kw) -> str:
    return "[" + ", ".join("[" + ", ".join(f'"{_num(rng, **kw)}"' for _ in range(cols)) + "]" for _ in range(rows)) + "]"


def _vec(rng, n, **kw) -> str:
    return "[" + ", ".join(f'"{_num(rng, **kw)}"' for _ in range(n)) + "]"


def _specs() -> dict[str, str]:
    """Small networks covering every layer, both conv modes, stride, padding and overlapping pools."""
    rng = random.Random(20240607)
    out = {}
    out["conv_stride_pad_relu_maxpool_dense_sse"] = f"""
[cnn]
input = {_mat(rng, 5, 6)}
loss = "half_sse"
target = {_vec(rng, 2)}
[[cnn.layer]]
type = "conv2d"
kernel = {_mat(rng, 3, 2)}
stride = [2, 1]
padding = 1
bias = "{_num(rng)}"
[[cnn.layer]]
type = "activation"
activation = "relu"
[[cnn.layer]]
type = "maxpool"
size = 2
stride = 1
[[cnn.layer]]
type = "flatten"
[[cnn.layer]]
type = "dense"
weights = {_mat(rng, 2, 12)}
bias = {_vec(rng, 2)}
"""
    out["true_convolution_avgpool_tanh_softmax_ce"] = f"""
[cnn]
input = {_mat(rng, 6, 6)}
loss = "cross_entropy"
target = ["0", "1", "0"]
[[cnn.layer]]
type = "conv2d"
kernel = {_mat(rng, 3, 3)}
mode = "convolution"
stride = 1
padding = [0, 1]
[[cnn.layer]]
type = "activation"
activation = "tanh"
[[cnn.layer]]
type = "avgpool"
size = [2, 3]
stride = [2, 2]
[[cnn.layer]]
type = "flatten"
[[cnn.layer]]
type = "dense"
weights = {_mat(rng, 3, 4)}
[[cnn.layer]]
type = "activation"
activation = "softmax"
"""
    out["two_convs_sigmoid_output_gradient"] = f"""
[cnn]
input = {_mat(rng, 7, 7)}
output_gradient = {_mat(rng, 2, 1)}
[[cnn.layer]]
type = "conv2d"
kernel = {_mat(rng, 2, 2)}
stride = 2
padding = 1
bias = "{_num(rng)}"
[[cnn.layer]]
type = "activation"
activation = "sigmoid"
[[cnn.layer]]
type = "conv2d"
kernel = {_mat(rng, 2, 3)}
mode = "convolution"
stride = [2, 1]
[[cnn.layer]]
type = "maxpool"
size = [1, 2]
stride = 1
"""
    return out


SPECS = _specs()


@pytest.fixture(scope="module")
def solved():
    """name -> (data, derivation, values as floats by symbol name), each derived once."""
    cache = {}

    def get(name):
        if name not in cache:
            spec = loads(SPECS[name], name=name)
            d = derive(spec)
            values = {s.name: float(v) for s, v in evaluate(d).items()}
            cache[name] = (tomllib.loads(SPECS[name]), d, values)
        return cache[name]
    return get


def _engine(d, values, name):
    q = d.quantity(name)
    return np.array([values[s.name] for s in q.symbols()]).reshape(q.shape)


def _params(data, d):
    """The input and every parameter of a spec, as (name, shape)."""
    names = ["x"] + [s.name for s in d.steps if getattr(s, "role", None) == "param"]
    return [(n, d.quantity(n).shape) for n in names]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_gradients_agree_with_central_finite_differences(solved, name):
    data, d, values = solved(name)
    h = mpmath.mpf(10) ** -15
    for pname, shape in _params(data, d):
        engine = _engine(d, values, "grad_" + pname)
        with mpmath.workdps(40):
            current = _current(data, d, values, pname, shape)
            for idx in np.ndindex(*shape) if shape else [()]:
                fd = oracles.central_difference(
                    lambda delta: oracles.cnn_loss_mp(data, {pname: _bumped(current, idx, delta)}), h)
                assert abs(float(fd) - float(engine[idx])) < 1e-8, (name, pname, idx, float(fd), engine[idx])


def _current(data, d, values, name, shape):
    step = d.step(name)
    exact = [mpmath.mpf(sp.Rational(e).p) / sp.Rational(e).q for e in step.exprs]
    if not shape:
        return [exact[0]]
    if len(shape) == 1:
        return exact
    return [exact[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]


def _bumped(current, idx, h):
    out = [list(r) if isinstance(r, list) else r for r in current]
    if len(idx) == 2:
        out[idx[0]][idx[1]] += h
    elif len(idx) == 1:
        out[idx[0]] += h
    else:
        out[0] += h
    return out


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_quantity_agrees_with_the_numpy_oracle(solved, name):
    """Forward values and gradients against the oracle's scatter-form backward pass."""
    data, d, values = solved(name)
    oracle = oracles.cnn_values(data)
    compared = 0
    for step in d.steps:
        if step.name in oracle:
            got = _engine(d, values, step.name)
            assert np.allclose(got, np.asarray(oracle[step.name]).reshape(got.shape), rtol=1e-12, atol=1e-12), step.name
            compared += 1
    assert compared >= 15


torch_cases = sorted(SPECS) + ["tie"]


def _torch_model(data):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    net = data["cnn"]
    t = lambda a: torch.tensor(np.array(a, dtype=float) if not isinstance(a[0], (list, str)) else
                               np.vectorize(lambda s: float(oracles._num(s)))(np.array(a, dtype=object)).astype(float),
                               dtype=torch.float64, requires_grad=True)
    leaves = {"x": t(net["input"])}
    count = {}
    h = leaves["x"][None, None]
    for layer in oracles.cnn_layers(data):
        kind = layer["type"]
        key = "pool" if kind in ("maxpool", "avgpool") else kind
        k = count[key] = count.get(key, 0) + 1
        if kind == "conv2d":
            K = leaves[f"K{k}"] = t(layer["kernel"])
            weight = torch.flip(K, [0, 1]) if layer["mode"] == "convolution" else K
            bias = None
            if "bias" in layer:
                leaves[f"c{k}"] = t([layer["bias"]])
                bias = leaves[f"c{k}"]
            h = F.conv2d(h, weight[None, None], bias, stride=layer["stride"], padding=layer["padding"])
        elif kind == "activation":
            name = layer["activation"]
            h = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                 "softmax": lambda v: torch.softmax(v, dim=-1)}[name](h)
        elif kind == "maxpool":
            h = F.max_pool2d(h, layer["size"], layer["stride"])
        elif kind == "avgpool":
            h = F.avg_pool2d(h, layer["size"], layer["stride"])
        elif kind == "flatten":
            h = h.reshape(-1)
        elif kind == "dense":
            W = leaves[f"W{k}"] = t(layer["weights"])
            b = None
            if "bias" in layer:
                b = leaves[f"b{k}"] = t(layer["bias"])
            h = F.linear(h, W, b)
    y = h.reshape(-1) if h.dim() == 1 else h[0, 0]
    if "loss" in net:
        target = torch.tensor([float(oracles._num(v)) for v in net["target"]], dtype=torch.float64)
        loss = {"half_sse": lambda: ((y - target) ** 2).sum() / 2,
                "cross_entropy": lambda: -(target * torch.log(y)).sum()}[net["loss"]]()
    else:
        G = torch.tensor(np.vectorize(lambda s: float(oracles._num(s)))(np.array(net["output_gradient"], dtype=object))
                         .astype(float) if "output_gradient" in net else np.ones(tuple(y.shape)), dtype=torch.float64)
        loss = (G * y).sum()
    loss.backward()
    return leaves, float(loss.detach())


TIE = """
[cnn]
input = [[1, 2], [3, 4]]
[[cnn.layer]]
type = "conv2d"
kernel = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
padding = 1
bias = 0
[[cnn.layer]]
type = "activation"
activation = "relu"
[[cnn.layer]]
type = "maxpool"
size = 2
[[cnn.layer]]
type = "flatten"
[[cnn.layer]]
type = "dense"
weights = [[1]]
bias = [1]
"""


@pytest.mark.parametrize("name", torch_cases)
def test_gradients_agree_with_pytorch(solved, name):
    """conv2d (both modes, stride, padding), max_pool2d (ties included: the slide's CNN practice pools two
    equal maxima), avg_pool2d, activations, linear layers and losses, in float64."""
    pytest.importorskip("torch")
    if name == "tie":
        SPECS.setdefault("tie", TIE)
    data, d, values = solved(name)
    leaves, loss = _torch_model(data)
    assert abs(loss - values["loss"]) < 1e-12
    for pname, tensor in leaves.items():
        engine = _engine(d, values, "grad_" + pname)
        assert np.allclose(engine, tensor.grad.numpy().reshape(engine.shape), rtol=1e-12, atol=1e-12), pname


def test_max_pooling_routes_a_tie_to_the_first_maximum(solved):
    SPECS.setdefault("tie", TIE)
    _, d, values = solved("tie")
    assert _engine(d, values, "act1").tolist() == [[5, 2], [3, 5]]
    assert _engine(d, values, "grad_act1").tolist() == [[1, 0], [0, 0]]
    # and away from the tie, the gradient follows the larger element
    spec = loads(TIE.replace("[[1, 0, 0], [0, 1, 0]", "[[2, 0, 0], [0, 1, 0]"), name="no_tie")  # conv [[5,2],[3,6]]
    vals = {s.name: float(v) for s, v in evaluate(derive(spec)).items()}
    assert _engine(derive(spec), vals, "grad_act1").tolist() == [[0, 0], [0, 1]]


# ----------------------------------------------------------------------------- closed forms, proved

def test_the_input_gradient_is_proved_to_be_the_full_correlation_with_the_flipped_kernel():
    d = derive(loads(SPECS["conv_stride_pad_relu_maxpool_dense_sse"], name="s"))
    step = d.step("grad_pad1")
    assert type(step).__name__ == "ConvInputGradient" and step.proof == "expansion"
    assert step.kernel == "K1_flip" and step.spread == "grad_conv1_full"
    assert d.step("grad_conv1_dil").dilation == (2, 1)
    # the rotated kernel is the kernel reversed in both directions
    K, flip = d.quantity("K1"), d.step("K1_flip")
    assert list(flip.exprs) == [K.symbol((2 - i, 1 - j)) for i in range(3) for j in range(2)]


def test_the_proof_fails_for_a_wrong_closed_form():
    """Correlating with the kernel itself instead of its rotation is caught (an asymmetric kernel)."""
    b = _Builder(None)
    G = grid("G", (2, 2))
    full = zero_pad(G, (1, 1))
    K = grid("K", (2, 2))
    right = correlate(full, rot180(K))
    derived = [sum(G[i][j] * K[a - i][c - j] for i in range(2) for j in range(2)
                   if 0 <= a - i < 2 and 0 <= c - j < 2) for a in range(3) for c in range(3)]
    derived = [sp.sympify(e) for e in derived]
    assert b.prove(derived, right, (3, 3), "test") == "expansion"
    with pytest.raises(ArithmeticError):
        b.prove(derived, correlate(full, K), (3, 3), "test")


def test_the_output_size_formula_is_proved_and_wrong_ones_are_not():
    assert prove_output_size() is not None
    wrong = [lambda L, P, K, S: sp.floor((L + 2 * P - K) / S),            # +1 missing
             lambda L, P, K, S: sp.floor((L + P - K) / S) + 1,             # one padding ring
             lambda L, P, K, S: sp.ceiling((L + 2 * P - K) / S) + 1,       # ceiling
             lambda L, P, K, S: sp.floor((L + 2 * P - K + 1) / S) + 1]     # off by one inside
    for f in wrong:
        assert prove_output_size(f) is None


def test_shapes_follow_the_formula_in_every_example():
    for name, text in SPECS.items():
        d = derive(loads(text, name=name))
        for step in d.steps:
            if step.name.startswith("shape_"):
                target = step.name[len("shape_"):]
                assert tuple(int(e) for e in step.exprs) == d.quantity(target).shape


# ----------------------------------------------------------------------------- spec errors

@pytest.mark.parametrize("text, path, words", [
    ('input_size = [100000, 100000]\n[[cnn.layer]]\ntype = "flatten"', "cnn.input_size", "from 1 to 128"),
    ('input_size = [128, 128]\n[[cnn.layer]]\ntype = "conv2d"\nsize = 3\npadding = 1\n'
     '[[cnn.layer]]\ntype = "conv2d"\nsize = 3\npadding = 1', "cnn.layer[", "too large"),
    ('input = [[1, 2], [3, 4]]\n[[cnn.layer]]\ntype = "conv2d"\nkernel = [[1, 2, 3]]', "cnn.layer[0].kernel",
     "only 2"),
    ('input = [[1, 2], [3, 4]]\n[[cnn.layer]]\ntype = "dense"\nsize = 2', "cnn.layer[0]", "flatten"),
    ('input = [[1, 2], [3, 4]]\n[[cnn.layer]]\ntype = "activation"\nactivation = "softmax"',
     "cnn.layer[0].activation", "flatten"),
    ('input = [[1, 2], [3]]\n[[cnn.layer]]\ntype = "flatten"', "cnn.input[1]", "expected 2 numbers"),
    ('input = [[1, 2], [3, 4]]\n[[cnn.layer]]\ntype = "pool"', "cnn.layer[0].type", "maxpool"),
    ('input = [[1, 2], [3, 4]]\n[[cnn.layer]]\ntype = "conv2d"\nsize = 2\nstride = 0', "cnn.layer[0].stride",
     "from 1"),
    ('input = [[1, 2], [3, 4]]\nloss = "half_sse"\n[[cnn.layer]]\ntype = "flatten"', "cnn.target", "missing"),
    ('input = [[1, 2], [3, 4]]\nloss = "half_sse"\ntarget = ["1"]\n[[cnn.layer]]\ntype = "flatten"',
     "cnn.target", "4 numbers"),
    ('input = [[1, 2], [3, 4]]\n[[cnn.layer]]\ntype = "conv2d"\nkernel = [[1]]\nmode = "flipped"',
     "cnn.layer[0].mode", "convolution"),
    ('input = [[1, 2], [3, 4]]\n[[cnn.layer]]\ntype = "conv2d"\nkernel = [[1]]\nbias = ["1"]',
     "cnn.layer[0].bias", "shared"),
])
def test_spec_errors_name_the_key_path(text, path, words):
    with hang_guard(), pytest.raises(SpecError) as err:
        loads("[cnn]\n" + text, name="bad")
    assert err.value.path.startswith(path) and words in err.value.message, (err.value.path, err.value.message)


def test_a_kernel_entry_is_read_by_the_safe_parser():
    with pytest.raises(SpecError) as err:
        loads('[cnn]\ninput = [[1]]\n[[cnn.layer]]\ntype = "conv2d"\nkernel = [["__import__(\'os\')"]]', name="bad")
    assert err.value.path == "cnn.layer[0].kernel[0][0]"


def test_load_cnn_is_the_registered_loader():
    from derive.kinds import kinds
    assert kinds()["cnn"].load is load_cnn
    q = Quantity("x", (2, 2))
    assert q.size == 4


# ----------------------------------------------------------------------------- the engine's other tools

def test_the_term_by_term_derivative_is_sympys():
    """The chain rule's local derivatives (derive.kinds.cnn.derivation._derivative) equal sympy.diff, node by node."""
    from derive.kinds.cnn.derivation import _derivative
    d = derive(loads(SPECS["conv_stride_pad_relu_maxpool_dense_sse"], name="s"))
    checked = 0
    for step in d.steps:
        if step.rule in ("conv2d", "max_pool", "dense", "zero_padding"):
            for expr in step.exprs[:6]:
                for arg in sorted(expr.free_symbols, key=lambda s: s.name)[:6]:
                    mine, theirs = _derivative(expr, arg), sp.diff(expr, arg)
                    point = {s: sp.Rational(random.Random(checked).randint(-9, 9), 7) for s in expr.free_symbols}
                    assert sp.simplify(mine.xreplace(point) - theirs.xreplace(point)) == 0, (step.name, arg)
                    checked += 1
    assert checked > 50


def test_a_wrong_backward_claim_differs():
    """The claims are not proved by construction: the unflipped kernel, or a missing padding, differ."""
    from derive.verify.stated import verify_spec
    import worked_examples
    text = worked_examples.path("004_8_conv_correlation").read_text(encoding="utf-8")
    wrong = text.replace('rhs = "correlate(pad(grad_conv1, 0, 2), flip(K1))"', 'rhs = "correlate(pad(grad_conv1, 0, 2), K1)"')
    assert wrong != text
    report = verify_spec(loads(wrong, name="wrong"))
    verdicts = {c.label: c.verdict for c in report.claims}
    assert verdicts["backward: ∂L/∂x is the full correlation of ∂L/∂z with the flipped kernel"] == "differs"
    right = verify_spec(loads(text, name="right"))
    assert all(c.verdict == "proved" for c in right.claims)


def test_an_uncertain_condition_gives_the_hull_of_the_branches():
    from mpmath import iv
    from derive.core.evaluate import Num, enclose
    a, b = sp.symbols("a b", real=True)
    pw = sp.Piecewise((a, a >= b), (b, True))
    env = {a: Num(iv.mpf([4.5, 5.5])), b: Num(iv.mpf([4.5, 5.5]))}
    e = enclose(pw, env)
    assert e.a <= 4.5 and e.b >= 5.5
    env = {a: Num(iv.mpf([1, 2])), b: Num(iv.mpf([3, 4]))}
    assert enclose(pw, env).a >= 3          # decided: b


def test_the_checker_grades_a_cnn_problem(tmp_path):
    """Answers that are the oracle's values (rounded) are correct; a changed gradient is not."""
    import worked_examples
    from derive.grading.grade import Problem, grade_data
    from derive.grading.answers import read_answer_file
    path = worked_examples.path("004_10_cnn_practice")
    oracle = oracles.cnn_values(oracles.load(path))
    fmt = lambda a: [[f"{v:.4f}" for v in row] for row in np.atleast_2d(a)]
    rows = lambda key, a: f"{key} = [" + ", ".join("[" + ", ".join(f'"{c}"' for c in r) + "]" for r in fmt(a)) + "]"
    body = "\n".join(rows(k, oracle[k]) for k in ("conv1", "act1", "grad_K1", "grad_x", "grad_act1"))
    answers = tmp_path / "a.toml"
    answers.write_text('student = "A"\n[answers]\n' + body + "\n", encoding="utf-8")
    problem = Problem.build(load_spec(path))
    records, latex = grade_data(problem, read_answer_file(answers))
    assert len(records) == 4 + 4 + 9 + 4 + 4 and not latex
    assert all(r.verdict == "correct" for r in records), [(r.quantity, r.verdict) for r in records if r.verdict != "correct"]
    answers.write_text('student = "B"\n[answers]\n"grad_K1[2,2]" = "3.0000"\n', encoding="utf-8")
    records, _ = grade_data(problem, read_answer_file(answers))
    assert [r.verdict for r in records] == ["wrong"]


def load_spec(path):
    from derive.kinds import load
    return load(path)
