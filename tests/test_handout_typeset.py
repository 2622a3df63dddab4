"""What a reader sees on the handout's pages: no ``x = x`` lines, siblings in their natural order, no
value alone on a row, tables that break only between row groups, each drawing with its caption, and
plots of the activations that show the functions the engine uses (checked against PyTorch).

The committed handouts (docs/handouts, kept fresh by tests/test_handout.py) are read as a reader
would read them; the scanners here are the test's own, not the printer's.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from derive.printing.latex import Table
from derive.printing.render import table_tex

DOCS = Path(__file__).resolve().parent.parent / "docs" / "handouts"
TEX = sorted(DOCS.glob("*.tex"))
MD = sorted(DOCS.glob("*.md"))


def _plain(form: str) -> str:
    """A printed form without spacing and sizing: ``\\tanh{\\left(x \\right)}`` reads ``\\tanh(x)``."""
    return re.sub(r"\\(?:left|right)(?![A-Za-z])|\\[,;:!]|[{}\s]", "", form)


def _top_split(row: str, rel: str) -> list[str]:
    """``row`` split at ``rel`` outside braces and brackets."""
    parts, depth, cur, k = [], 0, "", 0
    while k < len(row):
        c = row[k]
        depth += c in "{([" and 1 or 0
        depth -= c in "})]" and 1 or 0
        if depth == 0 and row.startswith(rel, k):
            parts.append(cur)
            cur, k = "", k + len(rel)
            continue
        cur += c
        k += 1
    return parts + [cur]


def _maths(text: str) -> list[str]:
    """Every row of displayed maths and every inline formula."""
    rows = []
    for body in re.findall(r"\\begin\{(?:align\*|aligned)\}(.*?)\\end\{(?:align\*|aligned)\}", text, re.S):
        body = re.sub(r"\\begin\{bmatrix\}.*?\\end\{bmatrix\}", lambda m: f"M{hash(_plain(m.group(0)))}", body,
                      flags=re.S)
        rows += [r for r in re.split(r"\\\\", body)]
    rows += re.findall(r"(?<![$\\])\$([^$\n]+)\$(?!\$)", text)
    return rows


@pytest.mark.parametrize("path", TEX + MD, ids=lambda p: p.name)
def test_no_form_is_printed_equal_to_itself(path):
    """No ``tanh(x) = tanh(x)``: a definition printed as itself, or a line whose form repeats its left side."""
    bad = []
    for row in _maths(path.read_text(encoding="utf-8")):
        for cell in re.split(r"(?<!\\)&(?!=)", row.replace("&=", "=").replace("& =", " =")):
            sides = [_plain(s) for s in _top_split(cell, "=")]
            bad += [f"{a} = {b}" for a, b in zip(sides, sides[1:]) if a and a == b]
    assert not bad, bad


def test_the_tanh_definition_is_written_out():
    text = (DOCS / "000_4_lstm_cell.tex").read_text(encoding="utf-8")
    caps = re.findall(r"activation tanh, element by element: \$(.*?)\$", text)
    assert caps and all(r"\exp" in c for c in caps)


LONE = re.compile(r"^\s*&\s*(?:=|\\approx)\s*-?\d+(?:\.\d+)?\s*(?:\\\\)?\s*$")


@pytest.mark.parametrize("path", TEX + MD, ids=lambda p: p.name)
def test_no_value_stands_alone_on_a_row(path):
    lone = [line for line in path.read_text(encoding="utf-8").splitlines() if LONE.match(line)]
    assert not lone, lone[:3]


def test_the_backward_pass_of_a_graph_runs_siblings_in_their_natural_order():
    """001_4 (a 2-2-2 graph): ∂/∂o₁ before ∂/∂o₂, ∂/∂h₁ before ∂/∂h₂, ∂/∂In_h1 before ∂/∂In_h2."""
    text = (DOCS / "001_4_net_222.tex").read_text(encoding="utf-8")
    backward = text[text.index(r"\section*{Backward pass}"):]
    lhs = [line.split("&")[0].strip() for line in backward.splitlines() if line.startswith(r"\frac{\partial")]
    for a, b in ((r"\partial o_{1}}", r"\partial o_{2}}"), (r"\partial h_{1}}", r"\partial h_{2}}"),
                 (r"\mathrm{In}_{h_{1}}}", r"\mathrm{In}_{h_{2}}}")):
        first = [k for k, s in enumerate(lhs) if s.endswith(a)]
        second = [k for k, s in enumerate(lhs) if s.endswith(b)]
        assert first and second and first[0] < second[0], (a, b)


class _Step:
    def __init__(self, name, inputs):
        self.name, self.inputs = name, tuple(inputs)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ohw"), st.integers(1, 4)), min_size=1, max_size=8, unique=True),
       st.data())
def test_natural_order_keeps_every_step_after_what_it_reads(names, data):
    from derive.printing.sections import natural_order
    steps = []
    for k, (stem, i) in enumerate(names):
        reads = data.draw(st.lists(st.sampled_from([s.name for s in steps]), max_size=2)) if steps else []
        steps.append(_Step(f"{stem}{i}", reads))
    out = natural_order(steps)
    assert sorted(s.name for s in out) == sorted(s.name for s in steps)
    place = {s.name: k for k, s in enumerate(out)}
    assert all(place[r] < place[s.name] for s in steps for r in s.inputs)
    # two neighbours of one stem out of order are left so only when one reads the other
    for a, b in zip(out, out[1:]):
        if a.name[0] == b.name[0] and int(b.name[1:]) < int(a.name[1:]):
            assert a.name in b.inputs or b.name in a.inputs


def _breaks(groups) -> list[bool]:
    """Where table_tex lets a page break: after row k (True) or not."""
    t = Table(("cap",), ("a", "b"), tuple((str(k), "x") for k in range(len(groups))), ("l", "l"), tuple(groups))
    assert r"cap\par\nopagebreak" in table_tex(t)      # the caption stays with the table
    rows = [line for line in table_tex(t).splitlines() if line[:1].isdigit()]
    return [not r.endswith(r"\\*") for r in rows][:-1]


def test_a_table_breaks_only_between_row_groups_and_keeps_two_rows_at_each_end():
    assert _breaks("aabcddeeffgg") == [False, True, True, True, False, True, False, True, False, True, False]
    assert _breaks("abcdefghij")[0] is False and _breaks("abcdefghij")[-1] is False
    assert not any(_breaks("abcdefgh"))          # a short table is never broken


def test_the_symbol_table_and_each_quantity_of_the_check_table_hold_together():
    text = (DOCS / "000_3_mlp_3333.tex").read_text(encoding="utf-8")
    tables = re.findall(r"\\midrule\n\\endhead\n(.*?)\n\\bottomrule", text, re.S)
    symbols = tables[0].splitlines()
    assert all(r.endswith(r"\\*") for r in symbols[:-1]) and symbols[-1].endswith("\\\\")
    checks = [r for r in tables[-1].splitlines()]
    keys = [re.sub(r"_\{[\d,]+\}", "", r.split("&")[0]) for r in checks]     # the symbol without its indices
    assert len(checks) > 8
    for k, row in enumerate(checks[:-1]):
        assert row.endswith(r"\\*") == (keys[k] == keys[k + 1] or k in (0, len(checks) - 2)), row


@pytest.mark.parametrize("path", TEX, ids=lambda p: p.name)
def test_each_drawing_and_its_caption_sit_in_one_unbreakable_box(path):
    text = path.read_text(encoding="utf-8")
    boxes = re.findall(r"\\begin\{minipage\}.*?\\end\{minipage\}", text, re.S)
    pictures = text.count(r"\begin{tikzpicture}")
    inside = [b for b in boxes if r"\begin{tikzpicture}" in b]
    assert len(inside) == pictures
    for box in inside:
        after = box[box.rindex(r"\end{tikzpicture}") + len(r"\end{tikzpicture}"):]
        assert re.search(r"[A-Za-z]{4}", after), "no caption after the drawing"


# ----------------------------------------------------------------------------- plots

def _torch():
    import torch
    return torch


TORCH = {
    "sigmoid": lambda x, p: _torch().sigmoid(x),
    "tanh": lambda x, p: _torch().tanh(x),
    "relu": lambda x, p: _torch().relu(x),
    "leaky_relu": lambda x, p: _torch().nn.functional.leaky_relu(x, float(p["alpha"])),
    "elu": lambda x, p: _torch().nn.functional.elu(x, float(p["alpha"])),
    "softplus": lambda x, p: _torch().nn.functional.softplus(x),
    "swish": lambda x, p: x * _torch().sigmoid(float(p["beta"]) * x),
}
TITLES = {r"\sigma": "sigmoid", r"\tanh": "tanh", r"\operatorname{ReLU}": "relu",
          r"\operatorname{LReLU}": "leaky_relu", r"\operatorname{ELU}": "elu",
          r"\operatorname{softplus}": "softplus", r"\operatorname{swish}": "swish"}


def _plots(text: str):
    """(activation, parameters, g samples, g' samples) of each plot in a handout."""
    out = []
    for title, body in re.findall(r"\\nextgroupplot\[title=\{\$(.*?)\$\}\]\n(.*?)(?=\\nextgroupplot|\\end\{groupplot\})",
                                  text, re.S):
        name = TITLES[title.split("(x)")[0]]
        params = dict(re.findall(r"\\(\w+) = ([\d.]+)", title))
        curves = [[tuple(map(float, p)) for p in re.findall(r"\((-?[\d.]+),(-?[\d.]+)\)", c)]
                  for c in re.findall(r"coordinates \{(.*?)\};", body)]
        out.append((name, params, curves[0], curves[1]))
    return out


@pytest.mark.parametrize("name, expected", [
    ("001_1_activation_table", {"sigmoid", "tanh", "relu"}),
    ("002_3_activations", {"sigmoid", "tanh", "relu", "leaky_relu", "elu"}),
    ("004_7_activations", {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "swish"})])
def test_activation_plots_show_each_function_and_its_derivative_as_pytorch_computes_them(name, expected):
    torch = pytest.importorskip("torch")
    plots = _plots((DOCS / f"{name}.tex").read_text(encoding="utf-8"))
    assert {p[0] for p in plots} == expected
    for act, params, g, dg in plots:
        assert len(g) == len(dg) > 100 and g[0][0] == -3 and g[-1][0] == 3
        x = torch.tensor([p[0] for p in g], dtype=torch.float64, requires_grad=True)
        y = TORCH[act](x, params)
        (grad,) = torch.autograd.grad(y.sum(), x)
        for k, (xk, yk) in enumerate(g):
            assert math.isclose(yk, y[k].item(), abs_tol=1e-4), (act, xk)
        for k, (xk, dk) in enumerate(dg):
            if abs(xk) > 1e-9:       # at the kink the conventions are the registry's own (docs/guide.md)
                assert math.isclose(dk, grad[k].item(), abs_tol=1e-4), (act, xk)


def test_leaky_relu_in_002_3_is_drawn_with_the_slope_the_deck_prints():
    plots = {p[0]: p for p in _plots((DOCS / "002_3_activations.tex").read_text(encoding="utf-8"))}
    assert plots["leaky_relu"][1] == {"alpha": "0.1"}


def test_the_markdown_activation_handouts_show_the_plot_as_svg():
    for name in ("001_1_activation_table", "002_3_activations", "004_7_activations"):
        md = (DOCS / f"{name}.md").read_text(encoding="utf-8")
        assert f"({name}-figure1.svg)" in md
        svg = (DOCS / f"{name}-figure1.svg").read_text(encoding="utf-8")
        assert "<svg" in svg and svg.count("<path") > 20


needs_pdf = pytest.mark.skipif(not (shutil.which("pdflatex") and shutil.which("pdftotext")),
                               reason="needs pdflatex and pdftotext (Debian: texlive-latex-base poppler-utils)")


def _pages(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return text.split("\f")


@needs_pdf
@pytest.mark.parametrize("name", ["001_1_activation_table", "002_3_activations", "001_4_net_222"])
def test_on_the_printed_pages_a_heading_a_table_caption_and_the_table_share_a_page(tmp_path, name):
    """Compiled: the section heading, the table's caption, its head and first two rows are on one page."""
    from derive.handout.assemble import compile_pdf
    tex = tmp_path / f"{name}.tex"
    shutil.copy(DOCS / tex.name, tex)
    pages = _pages(compile_pdf(tex))
    for words in (["Checked against the source", "Every", "verdict"],):
        holding = [k for k, p in enumerate(pages) if all(w in p for w in words)]
        assert holding, f"{words} are not on one page"
    start = next(p for p in pages if "verdict" in p)
    under_head = start[start.index("verdict"):]    # the head and the first two rows: no row alone under the head
    assert len(re.findall(r"\b(?:proved|differs|undetermined|exact|carried|wrong)\b", under_head)) >= 2


@pytest.mark.parametrize("path", TEX, ids=lambda p: p.name)
def test_a_drawing_caption_promises_values_only_when_the_drawing_shows_them(path):
    for box in re.findall(r"\\begin\{minipage\}.*?\\end\{minipage\}", path.read_text(encoding="utf-8"), re.S):
        caption = box[box.rindex(r"\end{tikzpicture}"):]
        shown = r"\node[val" in box or r"\node[v," in box
        if "values above the nodes" in caption or "values under the neurons" in caption:
            assert shown, caption


def test_a_deep_network_shows_the_size_of_delta_per_layer_as_printed_in_its_equations():
    """000_3 (three layers): one bar per layer, the norm of the δ vector the handout prints (to its
    4 decimals); networks of fewer layers have no such chart."""
    text = (DOCS / "000_3_mlp_3333.tex").read_text(encoding="utf-8")
    bars = dict(re.findall(r"\((\d),([\d.e-]+)\)", re.search(r"\\addplot\[fill.*?\};", text).group(0)))
    assert sorted(bars) == ["1", "2", "3"]
    for layer, value in bars.items():
        printed = re.search(r"\\boldsymbol\{\\delta\}\^\{" + layer + r"\} \\approx \\begin\{bmatrix\}(.*?)\\end", text)
        cells = [float(c) for c in printed.group(1).split(r"\\")]
        assert math.isclose(float(value), math.sqrt(sum(c * c for c in cells)), abs_tol=2e-4), layer
    for name in ("002_2_net_232_softmax", "004_5_linear_regression"):
        assert "ybar" not in (DOCS / f"{name}.tex").read_text(encoding="utf-8")


def test_the_element_by_element_gradients_run_in_index_order():
    text = (DOCS / "000_3_mlp_3333.tex").read_text(encoding="utf-8")
    part = text[text.index("Backward pass, element by element"):]
    order = [int(m) for m in re.findall(r"^\\frac\{\\partial \\mathcal\{L\}\}\{\\partial y_\{(\d)\}\}", part, re.M)]
    assert order == [1, 2, 3]
