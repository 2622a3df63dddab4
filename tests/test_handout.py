"""Handouts of every bundled example: built, numbers checked against the engine, slide quantities
reproduced (against an independent NumPy computation), committed copies fresh, Jupyter reprs."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import worked_examples
from derive import cli
from derive.kinds import derive
from derive.kinds.network.derivation import derive_elementwise
from derive.core.errors import SpecError
from derive.core.evaluate import evaluate, is_numeric
from derive.handout.assemble import build
from derive.kinds import names
from derive.kinds.network.spec import Network
from derive.kinds import load, loads
from derive.printing.texcheck import md_text
from derive.verify.stated import verify_spec
from hang_guard import hang_guard
from numbers_check import NumberCheck
from texparse import Tokenizer, chains, displays

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = worked_examples.names()
PROFILES = ["xjtu", "nankai", "deck002", "uibe", "deck004"]


def _context(spec, profile):
    d = derive(spec)
    ds = [d] + ([derive_elementwise(spec.problem)] if isinstance(spec.problem, Network) else [])
    values = {}
    for x in ds:
        values.update(evaluate(x))
    return names(ds, profile, spec.notation), ds, values


@pytest.fixture(scope="module")
def handouts():
    """(example, profile) → (tex, md), built once."""
    cache = {}

    def get(name, profile=None, decimals=4):
        key = (name, profile, decimals)
        if key not in cache:
            h = build(load(worked_examples.path(name)), profile, decimals)
            cache[key] = (h.tex(), h.markdown())
        return cache[key]
    return get


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_in_both_formats(handouts, name):
    tex, md = handouts(name)
    assert tex.startswith(r"\documentclass") and tex.rstrip().endswith(r"\end{document}")
    assert md.startswith("# ")
    spec = load(worked_examples.path(name))
    if spec.claims:
        assert "Every formula the source states" in tex and all(md_text(c.label) in md for c in spec.claims)
    if spec.problem is not None:
        assert displays(tex) and displays(md)


NUMERIC = [n for n in EXAMPLES if (d := derive(load(worked_examples.path(n)))) is not None and is_numeric(d)]


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("fmt", ["tex", "md"])
def test_every_number_is_the_engine_value_rounded_as_shown(handouts, name, fmt):
    spec = load(worked_examples.path(name))
    profile = dict(spec.notation).get("profile", "xjtu")
    check = NumberCheck(*_context(spec, profile), report=verify_spec(spec))
    tex, md = handouts(name)
    check.document(tex if fmt == "tex" else md, f"{name}.{fmt}")
    assert not check.problems, "\n".join(check.problems[:20])
    assert check.checked > 10


def test_the_number_check_catches_a_wrong_number(handouts):
    """The check above can fail: one changed digit, or one rounded value called exact, is found."""
    spec = load(worked_examples.path("000_3_mlp_3333"))
    tex, _ = handouts("000_3_mlp_3333")
    mutations = [(r"\approx 0.9388", r"\approx 0.9389"),      # a rounded value
                 (r"0.1 \cdot 0.9388", r"0.1 \cdot 0.9387"),  # a number substituted into a formula
                 (r"\approx 0.8621", "= 0.8621"),              # a rounded value written as exact
                 ("0.0777", "0.0776"),                        # an entry of a matrix
                 ("{$0.9388$}", "{$0.9398$}")]                # a value in the drawing
    for old, new in mutations:
        assert old in tex, old
        check = NumberCheck(*_context(spec, "xjtu"))
        check.document(tex.replace(old, new, 1), "mutated")
        assert check.problems, f"{old} -> {new} went unnoticed"


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", ["000_3_mlp_3333", "001_4_net_222"])
def test_numbers_in_every_notation(handouts, name, profile):
    """Signs included: deck 003's δ is minus the engine's, and its numbers must say so."""
    spec = load(worked_examples.path(name))
    check = NumberCheck(*_context(spec, profile))
    tex, _ = handouts(name, profile)
    check.document(tex, f"{name} in {profile}")
    assert not check.problems, "\n".join(check.problems[:20])


def test_decimals_are_chosen(handouts):
    tex2, _ = handouts("000_3_mlp_3333", None, 2)
    tex6, _ = handouts("000_3_mlp_3333", None, 6)
    assert r"\approx 0.94" in tex2 and r"\approx 0.938831" in tex6
    spec = load(worked_examples.path("000_3_mlp_3333"))
    for tex in (tex2, tex6):
        check = NumberCheck(*_context(spec, "xjtu"))
        check.document(tex, "decimals")
        assert not check.problems, check.problems[:5]


# ----------------------------------------------------------------------------- the slide's 3-3-3-3 example

def _numpy_3333():
    """The slide's network computed with NumPy floats, written here from the slide's definitions."""
    x = np.array([0.1, 0.2, 0.7]); t = np.array([1.0, 0.0, 0.0])
    W = [np.array([[0.1, 0.3, 0.4], [0.2, 0.2, 0.3], [0.3, 0.7, 0.9]]),
         np.array([[0.2, 0.3, 0.6], [0.3, 0.5, 0.4], [0.5, 0.7, 0.8]]),
         np.array([[0.1, 0.3, 0.5], [0.4, 0.7, 0.2], [0.8, 0.2, 0.9]])]
    b = [np.ones(3)] * 3
    sig = lambda v: 1 / (1 + np.exp(-v))
    z1 = W[0] @ x + b[0]; h1 = np.maximum(z1, 0)
    z2 = W[1] @ h1 + b[1]; h2 = sig(z2)
    z3 = W[2] @ h2 + b[2]; h3 = sig(z3)
    grad_y = h3 - t
    g3, g2, g1 = h3 * (1 - h3), h2 * (1 - h2), (z1 > 0).astype(float)
    d3 = grad_y * g3; d2 = (W[2].T @ d3) * g2; d1 = (W[1].T @ d2) * g1
    gW3, gW2, gW1 = np.outer(d3, h2), np.outer(d2, h1), np.outer(d1, x)
    return {"z1": z1, "h1": h1, "z2": z2, "h2": h2, "z3": z3, "h3": h3, "grad_y": grad_y,
            "gprime3": g3, "gprime2": g2, "gprime1": g1, "delta3": d3, "delta2": d2, "delta1": d1,
            "grad_W3": gW3, "grad_W2": gW2, "grad_W1": gW1,
            "W3_new": W[2] - 0.5 * gW3, "W2_new": W[1] - 0.5 * gW2, "W1_new": W[0] - 0.5 * gW1}


def _shown_matrices(tex, handout_names):
    """quantity name → the last matrix of numbers its chains show."""
    tok = Tokenizer(handout_names)
    out = {}
    for body in displays(tex):
        for c in chains(body):
            lhs = tok(c.lhs)
            if len(lhs) == 1 and lhs[0].quantity and c.forms:
                last = tok(c.forms[-1][1])
                if len(last) == 1 and hasattr(last[0], "cells") and all(len(x) == 1 for x in last[0].cells):
                    out[lhs[0].name] = [float(x[0].text) for x in last[0].cells]
    return out


def test_3333_reproduces_every_slide_quantity(handouts):
    spec = load(worked_examples.path("000_3_mlp_3333"))
    tex, md = handouts("000_3_mlp_3333")
    hn = _context(spec, "xjtu")[0]
    shown = _shown_matrices(tex, hn)
    oracle = _numpy_3333()
    stated = {st.quantity for st in spec.stated}
    assert stated <= set(oracle), stated - set(oracle)
    for name in stated:                          # every quantity the slide prints is in the handout
        assert name in shown, f"{name} is not shown as a matrix of numbers"
        np.testing.assert_allclose(shown[name], oracle[name].ravel(), atol=0.5e-4 + 1e-12, err_msg=name)
    assert _shown_matrices(md.replace("$$\n\\begin{aligned}", "\\begin{align*}")
                           .replace("\\end{aligned}\n$$", "\\end{align*}"), hn).keys() >= stated


def test_3333_renders_within_the_hang_guard():
    """Only a hang guard: the render time is measured by benchmarks/bench_timings.py."""
    spec = load(worked_examples.path("000_3_mlp_3333"))
    with hang_guard():
        h = build(spec)
        tex, md = h.tex(), h.markdown()
    assert tex.rstrip().endswith(r"\end{document}") and md.startswith("# ")


# ----------------------------------------------------------------------------- softmax with cross-entropy

def test_softmax_cross_entropy_derives_yhat_minus_y_from_the_jacobian(handouts):
    """Each printed form, parsed back by latex2sympy2 (an independent reader), equals the one before;
    the last is ŷ − y once Σ t = 1."""
    import sympy as sp
    from latex2sympy2 import latex2sympy
    tex, _ = handouts("002_2_net_232_softmax", "xjtu")
    rows = [c for body in displays(tex) for c in chains(body) if c.lhs in (r"\delta^{2}_{1}", r"\delta^{2}_{2}")]
    assert len(rows) == 2
    assert any(r"\frac{\partial \mathbf{y}}{\partial \mathbf{z}^{2}}" in f for body in displays(tex)
               for c in chains(body) for _, f in c.forms)
    for i, row in enumerate(rows, start=1):
        forms = [f for _, f in row.forms]
        assert r"\frac{\partial y_{1}}{\partial z^{2}_{%d}}" % i in forms[0]   # the Jacobian product
        parsed = [sp.expand(latex2sympy(f)) for f in forms[1:]]
        assert len(parsed) == 5                                           # written out ... simplified
        for a, b in zip(parsed, parsed[1:-1]):
            assert sp.simplify(a - b) == 0
        y, t = sp.Symbol(f"y_{i}"), sp.Symbol(f"t_{i}")
        assert sp.simplify(parsed[-1] - (y - t)) == 0
        t1, t2 = (sp.Symbol(f"t_{k}") for k in (1, 2))
        total = parsed[-2].free_symbols
        assert sp.simplify((parsed[-2] - parsed[-1]).subs(t2, 1 - t1)) == 0 and {t1, t2} <= total


# ----------------------------------------------------------------------------- committed handouts

@pytest.mark.parametrize("name", EXAMPLES)
def test_committed_handouts_are_fresh(handouts, name):
    """docs/handouts/ holds what `nnderive handout --all -o docs/handouts` writes today."""
    tex, md = handouts(name)
    for text, suffix in ((tex, "tex"), (md, "md")):
        path = ROOT / "docs" / "handouts" / f"{name}.{suffix}"
        assert path.exists(), f"{path} missing: run nnderive handout --all -o docs/handouts"
        assert path.read_text(encoding="utf-8") == text, \
            f"{path.name} is stale: run nnderive handout --all -o docs/handouts"


# ----------------------------------------------------------------------------- command line, notation, Jupyter

def _main(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def _no_fork(monkeypatch):
    monkeypatch.setenv("NNDERIVE_NO_SANDBOX", "1")


def test_cli_formats_and_files(tmp_path, capsys):
    code, out, _ = _main(["handout", "003_3_graph_xyz", "--format", "md"], capsys)
    assert code == 0 and out.startswith("# Computational graph")
    target = tmp_path / "h.tex"
    code, _, _ = _main(["handout", "003_3_graph_xyz", "-o", str(target), "--notation", "003"], capsys)
    assert code == 0 and target.read_text().startswith(r"\documentclass")
    code, _, err = _main(["handout", "003_3_graph_xyz", "--notation", "nonesuch"], capsys)
    assert code == 2 and "unknown notation profile" in err


def test_output_folders_are_created_and_a_blocked_path_is_one_line(tmp_path, capsys):
    """Regression (issue 10): ``-o newdir/x.tex`` gave a traceback."""
    target = tmp_path / "new" / "deeper" / "h.tex"
    code, _, err = _main(["handout", "003_3_graph_xyz", "-o", str(target)], capsys)
    assert code == 0 and err == "" and target.read_text(encoding="utf-8").startswith(r"\documentclass")
    assert sorted(p.name for p in target.parent.iterdir()) == ["h.tex"]     # no temporary left behind
    blocker = tmp_path / "a-file"
    blocker.write_text("kept")
    for out in (blocker / "h.tex", tmp_path / "new"):          # a file where a folder must go; a folder
        code, stdout, err = _main(["handout", "003_3_graph_xyz", "-o", str(out)], capsys)
        assert code == 2 and stdout == "" and err.count("\n") == 1 and str(out) in err, err
    assert blocker.read_text() == "kept"


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    from derive.core import files
    target = tmp_path / "x.md"
    target.write_text("old")
    files.write_atomic(target, "new")
    assert target.read_text() == "new"

    def broken(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(files.os, "replace", broken)
    with pytest.raises(files.OutputError, match="No space left"):
        files.write_atomic(target, "newer")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["x.md"]


def test_pdf_without_tex_names_the_debian_packages(monkeypatch, tmp_path, capsys):
    import derive.handout.assemble as handout
    monkeypatch.setattr(handout.shutil, "which", lambda name: None)
    code, _, err = _main(["handout", "003_3_graph_xyz", "--pdf", "-o", str(tmp_path / "h.pdf")], capsys)
    assert code == 2
    for package in ("texlive-latex-base", "texlive-latex-recommended", "texlive-pictures", "latexmk"):
        assert package in err


def _spec_text(extra: str, title: str = "t") -> str:
    return f"""[meta]
title = {title!r}
[graph]
values = {{ x = "2", w5 = "3" }}
params = ["w5"]
nodes = ["L = w5*x"]
{extra}"""


def test_notation_overrides_rename_quantities_and_their_gradients():
    spec = loads(_spec_text('[notation]\nw5 = "\\\\theta_{5}"\nL = "\\\\mathcal{E}"'))
    tex = build(spec).tex()
    assert r"\theta_{5}" in tex and r"\frac{\partial \mathcal{E}}{\partial \theta_{5}}" in tex
    spec = loads(_spec_text('[notation]\nprofile = "nankai"'))
    assert r"\delta_{5} &" in build(spec).tex()


def test_notation_override_must_name_a_quantity():
    with pytest.raises(SpecError, match="notation.nosuch"):
        build(loads(_spec_text('[notation]\nnosuch = "a"')))


def test_derivation_and_handout_render_in_jupyter():
    from derive.handout.assemble import derivation_latex, derivation_markdown
    spec = load(worked_examples.path("004_5_linear_regression"))
    d = derive(spec)
    latex, markdown = derivation_latex(d), derivation_markdown(d)
    assert latex.startswith("$$\\begin{aligned}") and latex.endswith("\\end{aligned}$$")
    assert r"{w}^{\mathrm{new}}" in latex and "$$" in markdown and "One step of gradient descent" in markdown
    assert "rule:" not in markdown
    h = build(spec)
    assert h._repr_markdown_() == h.markdown()
    elementwise = derive_elementwise(load(worked_examples.path("000_3_mlp_3333")).problem)
    assert r"z^{2}_{1} & = w^{2}_{11} h^{1}_{1}" in derivation_latex(elementwise)
    assert h._repr_latex_().startswith("$$") and r"\alpha" in h._repr_latex_()


# ----------------------------------------------------------------------------- a wide layer

def wide_spec(n: int = 30):
    """One sigmoid layer reading n inputs: matrices too wide to write out, sums over n terms."""
    row = lambda sign: "[" + ", ".join(f'"{sign}{(i + 1) / 100:.2f}"' for i in range(n)) + "]"
    inputs = "[" + ", ".join(f'"{(i + 1) / 10:.1f}"' for i in range(n)) + "]"
    return loads(f"""[meta]
title = "wide"
[network]
input = {inputs}
target = ["1", "0"]
loss = "half_sse"
learning_rate = "0.1"
[[network.layer]]
activation = "sigmoid"
weights = [{row('')}, {row('-')}]
bias = ["0", "0"]
""")


def test_a_wide_layer_is_shortened_and_its_sums_run_in_index_order():
    spec = wide_spec()
    tex = build(spec).tex()
    assert r"\vdots" in tex                                     # 60 weights: the first lines, then dots
    line = next(l for l in tex.splitlines() if l.startswith("z^{1}_{1} &"))
    assert line.index("x_{2}") < line.index("x_{3}") < line.index("x_{9}")
    assert r"w^{1}_{1,10} x_{10}" in tex and r"w^{1}_{1,30} x_{30}" in tex
    check = NumberCheck(*_context(spec, "xjtu"))
    check.document(tex, "wide")
    assert not check.problems, check.problems[:5]


# ----------------------------------------------------------------------------- every primitive of the registry

def _two_layer(activation: str, loss: str, out: str = "identity") -> str:
    return f"""[meta]
title = "{activation}, {loss}"
[network]
input = ["0.5", "-1.5"]
target = ["1", "0"]
loss = "{loss}"
learning_rate = "0.1"
[[network.layer]]
weights = [["0.1", "0.2"], ["-0.3", "0.4"]]
bias = ["0.1", "-0.2"]
activation = "{activation}"
[[network.layer]]
weights = [["0.5", "-0.6"], ["0.7", "0.8"]]
bias = ["0", "0.3"]
activation = "{out}"
"""


def _registry_cases():
    from derive.core import primitives
    cases = [(a, "half_sse", "sigmoid") for a, act in primitives.ACTIVATIONS.items() if not act.vector]
    for loss in primitives.LOSSES:
        out = "identity" if primitives.LOSSES[loss].on_logits or loss in ("hinge", "mae", "mse") else "sigmoid"
        cases.append(("tanh", loss, "softmax" if loss == "cross_entropy" else out))
    return cases + [("sigmoid", "half_sse", "softmax")]


@pytest.mark.parametrize("activation, loss, out", _registry_cases())
def test_every_registry_primitive_prints_with_checked_numbers(activation, loss, out):
    """New activations and losses need no printer code: each one's handout passes the number check."""
    spec = loads(_two_layer(activation, loss, out))
    tex = build(spec).tex()
    check = NumberCheck(*_context(spec, "xjtu"))
    check.document(tex, f"{activation}/{loss}/{out}")
    assert not check.problems, check.problems[:5]
    assert check.checked > 100


def test_a_value_too_close_to_call_is_evaluated_again_more_finely(monkeypatch):
    """When an enclosure cannot decide the rounding, the handout is rebuilt at a higher precision."""
    import derive.core.evaluate as evaluate_module
    import derive.printing.latex as latex_module
    from derive.core.evaluate import Undecided
    real_show, real_evaluate, seen = latex_module.show, evaluate_module.evaluate, []

    def evaluate(d, overrides=None, bits=evaluate_module.DEFAULT_PREC):
        seen.append(bits)
        return real_evaluate(d, overrides, bits)

    def show(value, decimals=4):
        if seen[-1] == evaluate_module.PRECISIONS[0]:
            raise Undecided("pretend the first precision cannot decide")
        return real_show(value, decimals)
    monkeypatch.setattr(evaluate_module, "evaluate", evaluate)
    monkeypatch.setattr(latex_module, "show", show)
    build(load(worked_examples.path("003_3_graph_xyz")))
    assert seen[0] == evaluate_module.PRECISIONS[0] and seen[-1] == evaluate_module.PRECISIONS[1]


_CONSTANT_LOCALS = {
    # f = a + b: both local derivatives are the constant 1; ∂f/∂a = ∂f/∂b = 1.
    "sum": ('[graph]\nvalues = { a = "2", b = "3" }\nparams = ["a", "b"]\nnodes = ["f = a + b"]\n',
            {"a": 1, "b": 1}),
    # g = f/2 + 10/f, f = a b: ∂g/∂g1 = 1 and ∂g1/∂f = 1/2 are constants;
    # ∂g/∂a = b (1/2 − 10/f²) = 3 (1/2 − 10/36) = 2/3, ∂g/∂b = a (…) = 4/9.
    "loss": ('[graph]\nvalues = { a = "2", b = "3" }\nparams = ["a", "b"]\n'
             'nodes = ["f = a*b", "g1 = f/2", "g = g1 + 10/f"]\n', {"a": Fraction(2, 3), "b": Fraction(4, 9)}),
}


@pytest.mark.parametrize("case", sorted(_CONSTANT_LOCALS))
def test_a_constant_local_derivative_prints(case):
    """Regression (issue 10): a node whose local derivative is a constant crashed the handout with
    ``'int' object has no attribute 'free_symbols'``."""
    text, grads = _CONSTANT_LOCALS[case]
    spec = loads(text)
    h = build(spec)
    for fmt, doc in (("tex", h.tex()), ("md", h.markdown())):
        check = NumberCheck(*_context(spec, "xjtu"))
        check.document(doc, f"{case}.{fmt}")
        assert not check.problems, check.problems[:5]
        for p, g in grads.items():      # the gradients the hand computation above gives
            shown = f"{float(g):.4f}".rstrip("0").rstrip(".")
            assert (rf"\frac{{\partial {'g' if case == 'loss' else 'f'}}}{{\partial {p}}}" in doc
                    and (f"= {shown}" in doc or rf"\approx {shown}" in doc)), (case, fmt, p, shown)
