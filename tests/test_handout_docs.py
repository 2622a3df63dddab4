"""docs/handouts.md stays true: its commands run, and the handout lines it quotes are in the handouts."""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from derive import cli

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "handouts.md").read_text(encoding="utf-8")
COMMANDS = [line[2:].split("  #")[0].strip() for line in re.findall(r"^\$ nnderive .*$", DOC, re.M)]


NEEDS_TEX = pytest.mark.skipif(shutil.which("pdflatex") is None,
                               reason="pdflatex is not installed (Debian: texlive-latex-base)")


@pytest.mark.parametrize("command", [pytest.param(c, marks=NEEDS_TEX) if "--pdf" in c else c for c in COMMANDS])
def test_documented_command_runs(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNDERIVE_NO_SANDBOX", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "worked_examples").symlink_to(ROOT / "worked_examples")
    argv = shlex.split(command)[1:]
    assert cli.main(argv) == 0
    out = Path(argv[argv.index("-o") + 1])
    assert out.exists() and out.stat().st_size > 1000


def test_there_are_documented_commands():
    assert len(COMMANDS) >= 5 and any("--pdf" in c for c in COMMANDS)


def test_quoted_handout_lines_are_in_the_committed_handouts():
    quotes = re.findall(r"```latex\n(.*?)```", DOC, re.S)
    handouts = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "handouts").glob("*.md"))
    assert quotes
    for quote in quotes:
        assert quote.strip() in handouts
