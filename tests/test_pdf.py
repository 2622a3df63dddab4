"""The committed .tex handouts compile with pdflatex (through latexmk, as `nnderive handout --pdf` does)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from derive.handout import compile_pdf

HANDOUTS = Path(__file__).resolve().parents[1] / "docs" / "handouts"
needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                               reason="pdflatex is not installed (Debian: texlive-latex-base "
                                      "texlive-latex-recommended texlive-pictures latexmk)")


@needs_tex
@pytest.mark.parametrize("tex", sorted(HANDOUTS.glob("*.tex")), ids=lambda p: p.stem)
def test_handout_compiles(tmp_path, tex):
    copy = tmp_path / tex.name
    shutil.copyfile(tex, copy)
    pdf = compile_pdf(copy)
    assert pdf.exists() and pdf.read_bytes().startswith(b"%PDF")
    log = copy.with_suffix(".log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log, "a line runs past the margin"


def test_there_are_handouts_to_compile():
    assert len(list(HANDOUTS.glob("*.tex"))) >= 10


@needs_tex
def test_a_wide_layer_compiles_within_the_page(tmp_path):
    from derive.handout import build
    from test_handout import wide_spec
    path = tmp_path / "wide.tex"
    path.write_text(build(wide_spec()).tex())
    compile_pdf(path)
    assert "Overfull \\hbox" not in path.with_suffix(".log").read_text(errors="replace")
