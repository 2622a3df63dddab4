"""Every Python example in docs/kernels.md runs (against a fresh kernel cache)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from kernel_fixtures import CACHE

DOC = Path(__file__).resolve().parent.parent / "docs" / "kernels.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index, monkeypatch, capsys):
    monkeypatch.setenv("NNDERIVE_CACHE", str(CACHE))
    code = compile(BLOCKS[index], f"{DOC}:example{index}", "exec")  # safe: our own documentation's examples
    exec(code, {"__name__": f"doc_example_{index}"})  # safe: as above
    out = capsys.readouterr().out
    if "values_from_spec" in BLOCKS[index]:
        assert "0.71" in out and "0.14" in out          # the slide's w and b after one step
    if "NonFiniteError" in BLOCKS[index]:
        assert "X[0, 1] is nan" in out
