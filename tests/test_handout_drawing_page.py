"""A tall computational graph is drawn on the page of the problem it shows (issue 12): the 2-2-2
graph of deck 001, the XOR table and deck 004's practice graph used to leave page 1 mostly empty
and float their drawing to page 2.  Oracle: pdftotext of the compiled PDF (not the printer's data).
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from test_pdf import HANDOUTS, needs_tex, pdflatex

TALL = ["001_4_net_222", "003_5_xor_bp_iter1", "004_6_practice2"]


@needs_tex
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")
@pytest.mark.parametrize("name", TALL)
def test_the_graph_drawing_is_on_the_first_page(tmp_path, name):
    copy = tmp_path / f"{name}.tex"
    shutil.copyfile(HANDOUTS / f"{name}.tex", copy)
    pdflatex(copy)
    first = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(copy.with_suffix(".pdf")), "-"],
                           capture_output=True, text=True, timeout=60).stdout
    assert "The problem" in first and "The computational graph" in first, first[-600:]
