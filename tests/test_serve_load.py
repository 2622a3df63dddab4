"""A tiny run of benchmarks/bench_serve.py: simulated students over HTTP on 127.0.0.1, then SIGKILL of
the server mid-run and a restart.  Every acknowledged attempt must be in the database with exactly the
records ``nnderive check`` gives for the same answers, and the ones left ungraded by the kill must be
graded by the restart (the script's own checks; its exit status says whether any failed)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the 'serve' extra is not installed")
pytest.importorskip("uvicorn", reason="the 'serve' extra is not installed")
pytest.importorskip("httpx", reason="httpx is not installed")

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
[meta]
title = "A two-node graph"
source = "tests/test_serve_load.py"
[graph]
values = { a = "0.5", b = "2" }
nodes = ["c = a*b", "L = c**2"]
loss = "L"
[grading]
ask = ["c", "L", "grad_a"]
[variants]
decimals = 1
[variants.draw]
a = { low = "0.1", high = "0.9" }
b = { low = "1", high = "3" }
"""


def test_a_small_load_run_loses_nothing_and_agrees_with_check(tmp_path, capsys):
    course = tmp_path / "course"
    course.mkdir()
    (course / "tiny.toml").write_text(SPEC, encoding="utf-8")
    (course / "course.toml").write_text("variants = 2\n", encoding="utf-8")
    spec = importlib.util.spec_from_file_location("bench_serve", ROOT / "benchmarks/bench_serve.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    code = bench.main(["--course", str(course), "--students", "4", "--sets", "3", "--concurrency", "4",
                       "--jobs", "2", "--crash-after", "3", "--state", str(tmp_path / "state")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "in the database: 12 of 12 (lost 0), ungraded 0, different from nnderive check 0" in out
    m = re.search(r"crash: SIGKILL after (\d+) acknowledged submissions; (\d+) committed", out)
    assert m and int(m.group(2)) >= int(m.group(1)) >= 3
    assert re.search(r"after the restart: lost 0, graded by the restart (\d+) of \1, still ungraded 0, "
                     r"different from nnderive check 0", out)
