"""The exit-status table of docs/guide.md, command by command (issue 10): 0 done, 1 wrong numbers
or answers found, 2 bad input or usage, with one line on stderr and never a traceback.

Each command runs in a new process on good input, on input with a wrong stated number, and on
bad input.  ``bench`` and ``demo`` run only on bad arguments here (a good run compiles Numba
kernels for many seconds; tests/test_kernels_*.py run them).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
MICROGRAD = (ROOT / "docs" / "examples" / "micrograd.toml").read_text(encoding="utf-8")
HW = str(ROOT / "docs" / "examples" / "hw_222.toml")
ADA = str(ROOT / "docs" / "examples" / "answers" / "ada.toml")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("exit")
    (d / "good.toml").write_text(MICROGRAD, encoding="utf-8")
    wrong = MICROGRAD.replace('grad_a = "138.8338"', 'grad_a = "138.8339"')
    assert wrong != MICROGRAD
    (d / "wrong.toml").write_text(wrong, encoding="utf-8")
    from oracles import net222, rnd         # an independent float computation of hw_222's numbers
    true = net222(eta="0.5")
    asked = ["h1", "h2", "o1", "o2", "Error", "grad_o1", "grad_In_o1", "grad_w5", "grad_h1", "grad_w1", "w5_new"]
    (d / "perfect.toml").write_text('problem = "hw_222"\n[answers]\n' +
                                    "".join(f'{q} = "{rnd(true[q], 4)}"\n' for q in asked), encoding="utf-8")
    (d / "bad.toml").write_text('[network]\ninput = ["1", "2"]\nloss = "half_sse"\n[[network.layer]]\n'
                                'weights = [["1", "2"]]\nactivation = "sigmoid"\n', encoding="utf-8")
    return d


# (command line with {d} for the folder, expected status)
CASES = {
    "list": (["list"], 0),
    "list bad": (["list", "--frobnicate"], 2),
    "verify good": (["verify", "{d}/good.toml"], 0),
    "verify wrong": (["verify", "{d}/wrong.toml"], 1),
    "verify bad": (["verify", "{d}/bad.toml"], 2),
    "verify usage": (["verify", "--jobs", "0", "{d}/good.toml"], 2),
    "solve good": (["solve", "{d}/good.toml"], 0),
    "solve wrong": (["solve", "{d}/wrong.toml"], 0),        # solve states values; it judges nothing
    "solve bad": (["solve", "{d}/bad.toml"], 2),
    "handout good": (["handout", "{d}/good.toml", "-o", "{d}/out/good.md"], 0),
    "handout wrong": (["handout", "{d}/wrong.toml", "-o", "{d}/out/wrong.tex"], 0),   # the verdicts are in it
    "handout bad": (["handout", "{d}/bad.toml"], 2),
    "check good": (["check", HW, "{d}/perfect.toml", "--no-progress"], 0),     # every answer right
    "check wrong": (["check", HW, ADA, "--no-progress"], 1),  # Ada's file has a wrong and a coarse answer
    "check bad": (["check", HW, "{d}/no-such-answers.toml", "--no-progress"], 2),
    "variants good": (["variants", HW, "--count", "2", "--seed", "1", "-o", "{d}/variants"], 0),
    "variants bad": (["variants", "{d}/bad.toml", "--count", "2", "-o", "{d}/variants-bad"], 2),
    "variants unwritable": (["variants", HW, "--count", "1", "-o", "{d}/good.toml/sub"], 2),   # a file in the way
    "handout unwritable": (["handout", "{d}/good.toml", "-o", "{d}/good.toml/x.tex"], 2),
    "bench bad": (["bench", "--only", "nonesuch"], 2),
    "demo bad": (["demo", "xor", "--seed", "-1"], 2),
    "serve bad": (["serve", "{d}/no-such-course"], 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_exit_status_and_one_line(case, files):
    argv, status = CASES[case]
    argv = [a.replace("{d}", str(files)) for a in argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NNDERIVE_CACHE": str(files / "cache")}
    done = subprocess.run([sys.executable, "-m", "derive.cli", *argv], cwd=files, capture_output=True,
                          text=True, timeout=600, env=env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == status, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    if status == 2:
        assert len(lines) == 1 and lines[0].startswith("nnderive"), done.stderr
        assert done.stdout == ""
    else:
        assert len(lines) <= 1, done.stderr


def test_the_guide_has_the_table():
    """Every command of the parser has a row in the guide's exit-status table."""
    from derive.cli import build_parser
    table = GUIDE[GUIDE.index("| command | 0 |"):]
    rows = {m.group(1) for m in re.finditer(r"^\| `([a-z]+)` \|", table, flags=re.M)}
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert rows == set(sub.choices), (rows, set(sub.choices))
    covered = {c.split()[0] for c in CASES}
    assert covered == set(sub.choices)
