"""Untrusted text on its way into a .tex file: notation LaTeX is validated, prose is escaped."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from derive.core.errors import SpecError
from derive.handout.assemble import build, compile_pdf
from derive.kinds import loads
from derive.printing.texcheck import check_latex, md_text, tex_text

SAFE = [r"\delta_5", r"\mathbf{W}^{(2)}", r"\hat{y}_{1}", r"\frac{\partial E}{\partial w_{5}}", r"In_{o_1}",
        r"\operatorname{net}^{y}_{j}", r"w'_{12}", r"\mathcal{L}", r"\boldsymbol{\delta}^{o}", r"\tilde{x}"]
HOSTILE = [r"\input{/etc/passwd}", r"\include{secret}", r"\write18{rm -rf /}", r"\immediate\write18{ls}",
           r"\openout1=out.tex", r"\openin1=/etc/hostname", r"\read1 to\x", r"\def\x{1}", r"\catcode`\^^5c=12",
           r"^^5cinput{/etc/passwd}", r"\csname input\endcsname{/etc/passwd}", r"\string\input", r"\usepackage{x}",
           r"\special{ps: x}", r"x % comment", r"\x#1", r"a & b", r"$x$", r"a~b", r"{\delta", r"\delta}",
           "\\\\", r"\expandafter\input", r"\newcommand\x{y}", r"\let\x\input", "x\ny", r"\begin{x}"]


@pytest.mark.parametrize("text", SAFE)
def test_notation_latex_that_is_safe(text):
    assert check_latex(text) == text


@pytest.mark.parametrize("text", HOSTILE)
def test_notation_latex_that_could_reach_files_or_a_shell_is_refused(text):
    with pytest.raises(SpecError):
        check_latex(text, "notation.w5")


def _spec(title: str = "t", notation: str = "") -> str:
    return (f"[meta]\ntitle = {title!r}\n[graph]\nvalues = {{ x = \"2\", w5 = \"3\" }}\nparams = [\"w5\"]\n"
            f"nodes = [\"L = w5*x\"]\n{notation}")


def test_a_hostile_override_in_a_spec_stops_the_handout():
    spec = loads(_spec(notation='[notation]\nw5 = "\\\\input{/etc/passwd}"'))
    with pytest.raises(SpecError, match=r"notation.w5: the command '\\input' is not allowed"):
        build(spec)


def test_prose_is_escaped():
    assert tex_text(r"\input{/etc/passwd} 100% #1 $x$ a_b ^^5c ~") == (
        r"\textbackslash{}input\{/etc/passwd\} 100\% \#1 \$x\$ a\_b \^{}\^{}5c \~{}")
    assert tex_text("δ = ∂L/∂z, ½‖y − t‖²") == (
        r"\ensuremath{\delta} = \ensuremath{\partial}L/\ensuremath{\partial}z, \ensuremath{\tfrac12}"
        r"\ensuremath{\|}y \ensuremath{-} t\ensuremath{\|}\ensuremath{^2}")
    assert tex_text("ŷ") == r"\ensuremath{\hat{y}}"
    assert tex_text("sections 例子 / 例子 — 前向传播") == r"sections [\dots]"
    assert md_text("a_b *c* $x$ <b>") == r"a\_b \*c\* \$x\$ \<b\>"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (Debian: texlive-latex-base)")
def test_a_hostile_title_reads_no_file_when_compiled(tmp_path):
    """Compiled with the recorder on: the file list shows what TeX opened."""
    secret = tmp_path / "secret.tex"
    secret.write_text("SECRET-CONTENT\n")
    title = rf"\input{{{secret}}} \immediate\write18{{touch {tmp_path}/pwned}} ^^5cinput{{{secret}}}"
    tex = build(loads(_spec(title=title))).tex()
    assert r"\input{" not in tex.split(r"\begin{document}")[1]
    path = tmp_path / "hostile.tex"
    path.write_text(tex)
    pdf = compile_pdf(path)
    opened = path.with_suffix(".fls").read_text()
    assert str(secret) not in opened and not (tmp_path / "pwned").exists()
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        assert "SECRET-CONTENT" not in text and "input" in text
