"""The committed .tex handouts compile with pdflatex (one pass: enough to find every error)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HANDOUTS = Path(__file__).resolve().parents[1] / "docs" / "handouts"
needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                               reason="pdflatex is not installed (Debian: texlive-latex-base "
                                      "texlive-latex-recommended texlive-pictures latexmk)")


def pdflatex(path: Path) -> str:
    """Compile once, as `nnderive handout --pdf` does (no shell escape, file access limited); the log."""
    env = dict(os.environ, openout_any="p", openin_any="p")
    done = subprocess.run(["pdflatex", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", path.name],
                          cwd=path.parent, env=env, capture_output=True, text=True, timeout=120)
    log = path.with_suffix(".log").read_text(errors="replace")
    assert done.returncode == 0, log[-2000:]
    assert path.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    return log


@needs_tex
@pytest.mark.parametrize("tex", sorted(HANDOUTS.glob("*.tex")), ids=lambda p: p.stem)
def test_handout_compiles(tmp_path, tex):
    copy = tmp_path / tex.name
    shutil.copyfile(tex, copy)
    assert "Overfull \\hbox" not in pdflatex(copy), "a line runs past the margin"


def test_there_are_handouts_to_compile():
    assert len(list(HANDOUTS.glob("*.tex"))) >= 10


@needs_tex
def test_a_wide_layer_compiles_within_the_page(tmp_path):
    from derive.handout.assemble import build
    from test_handout import wide_spec
    path = tmp_path / "wide.tex"
    path.write_text(build(wide_spec()).tex())
    assert "Overfull \\hbox" not in pdflatex(path)
