"""Feedback is written for a student: quantities in the course's notation (δ²₁, ∂L/∂w₅), never as
the engine's identifiers (``gprime1[0]``, ``grad_W3[0,2]``, ``(local_derivative)``).

Every answer file under docs/examples is graded through ``nnderive check --json`` (in process),
and so is a file of typical slips on the 3-3-3-3 network; each feedback line is searched.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from derive.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
FILES = sorted(EXAMPLES.glob("*/*.toml"))
IDENTIFIERS = [
    r"\bgrad_[A-Za-z]", r"\bgprime\d", r"\bdelta\d", r"\b[A-Za-z]+\d*_new\b", r"\b[A-Za-z]+\d*\[\d+(,\d+)?\]",
    r"\((?:local_derivative|delta_hidden|delta_output|output_gradient|affine|chain_rule|update|node)\)",
    r"\b[a-z]\d\b",       # h1, z2, w5: the course writes h₁, z², w₅
    r"\b[A-Z]\d\b", r"δ\d",  # W3, δ3: W³, δ³ (or W⁽³⁾, δ⁽³⁾ as the profile prints them)
]


def _spec_for(path: Path) -> str:
    problem = re.search(r'^problem\s*=\s*"([^"]+)"', path.read_text(encoding="utf-8"), re.M)
    name = problem.group(1) if problem else "hw_222"
    local = EXAMPLES / f"{name}.toml"
    return str(local) if local.exists() else name


def _feedback(spec: str, answers: str, capsys) -> list[str]:
    code = main(["check", spec, answers, "--json", "--no-progress", "--jobs", "1"])
    assert code in (0, 1), capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    return [r["feedback"] for s in report["submissions"] for r in s["records"] if r.get("feedback")]


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_feedback_on_example_answer_files_has_no_identifiers(path, capsys):
    for line in _feedback(_spec_for(path), str(path), capsys):
        for pattern in IDENTIFIERS:
            m = re.search(pattern, line)
            assert m is None, f"{path.name}: {m.group(0)!r} in feedback: {line}"


def test_feedback_on_network_slips_names_quantities_as_the_course_does(tmp_path, capsys):
    answers = tmp_path / "slips.toml"
    answers.write_text('problem = "000_3_mlp_3333"\n[answers]\n"gprime3[0]" = "0.2000"\n'
                       '"delta3[0]" = "0.5123"\n"grad_W3[0,2]" = "0.1234"\n"W3_new[0,2]" = "0.4321"\n')
    lines = _feedback("000_3_mlp_3333", str(answers), capsys)
    assert len(lines) == 4
    for line in lines:
        for pattern in IDENTIFIERS:
            assert re.search(pattern, line) is None, line
    assert any("δ³₁" in line for line in lines) and any("∂L/∂w³₁₃" in line for line in lines)


def test_a_named_slip_shows_its_quantities_as_the_course_does(tmp_path, capsys):
    """δ³ = ∇_y L ⊙ g′(z³) without g′: the label names δ³, not the engine's δ3 (oracle: NumPy)."""
    from oracles import mlp3333, rnd
    v = mlp3333()                      # δ³₂ without g′ is ∇_y L₂ = y₂ − t₂, and t₂ = 0
    answers = tmp_path / "no_gprime.toml"
    answers.write_text(f'problem = "000_3_mlp_3333"\n[answers]\n"delta3[1]" = "{rnd(v["h3"][1], 4)}"\n')
    (line,) = _feedback("000_3_mlp_3333", str(answers), capsys)
    assert "missing g′(z³) in δ³" in line, line
    for pattern in IDENTIFIERS:
        assert re.search(pattern, line) is None, line


def test_the_search_finds_identifiers():
    for dirty in ["check the step gprime1[0] = 1 - h1[0]**2 (local_derivative)", "grad_W3[0,2] expected",
                  "follows from your h1 = 0.5", "W1_new is", "used W3 instead of W3ᵀ", "missing g′ in δ3"]:
        assert any(re.search(p, dirty) for p in IDENTIFIERS), dirty
