"""The drawings of a handout: in the PDF as TikZ, in Markdown as SVG files made from the same TikZ."""
from __future__ import annotations

import re
import shutil

import pytest

import worked_examples
from derive.cli import main
from derive.handout.assemble import build
from derive.kinds import load

needs_svg = pytest.mark.skipif(not (shutil.which("latex") and shutil.which("dvisvgm")),
                               reason="needs latex and dvisvgm (Debian: texlive-latex-base dvisvgm)")


def test_markdown_names_each_drawing_beside_it():
    h = build(load(worked_examples.path("002_2_net_232_softmax")))
    md = h.markdown("net")
    assert len(h.figures()) == 1
    assert "![The network (weights on the edges; each bias is a dashed edge from a unit +1).](net-figure1.svg)" in md
    assert "The drawing is in the PDF handout" in h.markdown("")


@pytest.mark.parametrize("name", ["000_3_mlp_3333", "002_2_net_232_softmax", "000_4_backprop_formulas",
                                  "001_2_softmax_ce", "004_5_linear_regression"])
def test_biases_are_drawn_only_when_the_network_has_them(name):
    from derive.kinds.network.spec import Network
    spec = load(worked_examples.path(name))
    figures = build(spec).figures()
    if not isinstance(spec.problem, Network):
        assert all(r"\node[bias]" not in f.tikz for f in figures)
        return
    layers = spec.problem.layers
    with_bias = [l for l in layers if l.bias != ()]
    tikz = figures[0].tikz
    assert tikz.count(r"\node[bias]") == len(with_bias)
    assert tikz.count("dashed") == sum(l.size for l in with_bias)


def test_a_dense_network_is_drawn_without_edge_labels():
    tikz = build(load(worked_examples.path("000_3_mlp_3333"))).figures()[0].tikz
    edges = re.findall(r"\\draw\[->\] \(\S+\) --(.*?) \(", tikz)
    assert len(edges) == 27 and not any("node" in e for e in edges)


@needs_svg
def test_the_command_writes_the_svg_beside_the_markdown(tmp_path, capsys):
    out = tmp_path / "sub" / "net.md"
    assert main(["handout", "002_2_net_232_softmax", "--format", "md", "-o", str(out)]) == 0
    svg = (tmp_path / "sub" / "net-figure1.svg").read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    # six neurons and two bias units, each drawn as a closed path
    assert "(net-figure1.svg)" in out.read_text(encoding="utf-8")
