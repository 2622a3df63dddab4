"""The package's import contracts (pyproject.toml [tool.importlinter]): layers go downward, kinds
are independent plug-ins, no package has an import cycle.  An import inside a function body counts
the same as one at the top of a module.  The checker is import-linter, not this test."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(root: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([exe, str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_import_contracts_hold():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


LAYERS, KINDS = "derive's layers, top to bottom", "each kind is a plug-in: no kind imports another"


@pytest.mark.parametrize("module, planted, contract", [
    ("derive/core/rounding.py", "from derive.handout import assemble  # planted: the core importing a layer above",
     LAYERS),
    ("derive/kinds/cnn/printing.py", "from derive.kinds.network import printing  # planted: a kind importing another",
     KINDS),
    ("derive/printing/plain.py", "\ndef _f():\n    from derive.grading import grade  # planted, in a function body",
     LAYERS),
])
def test_a_planted_upward_import_breaks_a_contract(tmp_path, module, planted, contract):
    for name in ("derive", "kernels", "worked_examples"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + "\n" + textwrap.dedent(planted) + "\n")
    done = _lint(tmp_path)
    assert done.returncode == 1 and f"{contract} BROKEN" in done.stdout, done.stdout[-3000:]
    assert f"{contract} KEPT" in _lint(ROOT).stdout      # and it held before the import was planted


KIND_NAMES = "network|graph|cnn|perceptron|recurrent|matrices|architecture|elementwise"
KIND_TYPES = "Network|Graph|Cnn|Perceptron|Recurrent|Matrices|Architecture"
BRANCH = re.compile(
    rf"isinstance\([^)]*\b({KIND_TYPES})\b"                      # isinstance(problem, Network)
    rf"|\.kind\s*(==|!=|in|not in)\s*\(?\s*[\"']({KIND_NAMES})[\"']"   # derivation.kind == "graph"
    rf"|[\"']({KIND_NAMES})[\"']\s*(in|==|!=)\s"                    # "network" in data
    rf"|(==|!=)\s*[\"']({KIND_NAMES})[\"']")


def test_no_module_outside_a_kind_branches_on_a_kind():
    """Verify, handouts, grading, the site and the kernels ask the registry (derive/kinds); only a
    kind's own package may name its kind."""
    found = []
    for path in sorted((ROOT / "derive").rglob("*.py")) + sorted((ROOT / "kernels").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("derive/kinds/"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if BRANCH.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_branch_finder_finds_a_branch():
    assert BRANCH.search('    if derivation.kind == "network":')
    assert BRANCH.search("    elif isinstance(spec.problem, Graph):")
    assert BRANCH.search('    if "graph" in data:')
    assert not BRANCH.search('        if t.kind == "word":')
