"""Running the command line in-process for the property suites, and the one-line refusal check.

``run`` calls ``derive.cli.main`` with pytest's ``capsys`` (no subprocess: the suites stay fast);
with ``NNDERIVE_NO_SANDBOX=1`` (the ``in_process`` fixture) an unexpected exception escapes and
fails the test with its traceback instead of being reported by a worker process.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from derive import cli

ERROR_LINE = re.compile(r"nnderive: error: \S[^\n]*: \S")


@pytest.fixture(autouse=True, scope="module")
def in_process():
    saved = os.environ.get("NNDERIVE_NO_SANDBOX")
    os.environ["NNDERIVE_NO_SANDBOX"] = "1"
    yield
    if saved is None:
        del os.environ["NNDERIVE_NO_SANDBOX"]
    else:
        os.environ["NNDERIVE_NO_SANDBOX"] = saved


def run(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``nnderive ARGV``; a SystemExit (argparse) counts as its status."""
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


def refused(code: int, err: str) -> bool:
    """True for a refusal (exit 2, one line naming the key path); fails the test on a refusal of
    any other shape, and on a traceback in any case."""
    assert "Traceback" not in err, err
    if code != 2:
        return False
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), err
    return True


def solve(capsys, path: Path) -> dict | None:
    """``solve --json``: {"quantities", "exact"}, or None when it refused (exit 2, one line)."""
    code, out, err = run(capsys, "solve", path, "--json")
    if refused(code, err):
        return None
    assert code == 0, (code, err)
    return json.loads(out)
