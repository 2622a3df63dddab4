"""The guide's examples run: every TOML spec block loads and verifies, every console command
exits with the code the guide documents."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from derive.kinds import loads
from derive.verify.stated import verify_spec

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", GUIDE, flags=re.S)


def _commands() -> list[tuple[str, int]]:
    out = []
    for block in _blocks("console"):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ "):
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                m = re.match(r"# exit (\d+)", nxt)
                out.append((line[2:], int(m.group(1)) if m else 0))
    return out


@pytest.mark.parametrize("block", _blocks("toml"), ids=lambda b: b.splitlines()[0][:40])
def test_guide_specs_load_and_verify(block):
    report = verify_spec(loads(block, name="guide"))
    assert report.records or report.claims
    assert not report.failed


@pytest.mark.parametrize("command,code", _commands())
def test_guide_commands_exit_as_documented(command, code):
    argv = shlex.split(command)
    assert argv[0] == "nnderive"
    done = subprocess.run([sys.executable, "-m", "derive.cli", *argv[1:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == code, done.stderr
    if code == 2:
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_verdicts_page_is_fresh():
    """docs/verdicts.md is what `nnderive verify --markdown` prints now."""
    done = subprocess.run([sys.executable, "-m", "derive.cli", "verify", "--markdown"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.stdout == (ROOT / "docs" / "verdicts.md").read_text(encoding="utf-8"), \
        "regenerate with: nnderive verify --markdown > docs/verdicts.md"


def test_guide_names_every_registry_entry():
    from derive.core import primitives
    for name in list(primitives.ACTIVATIONS) + list(primitives.LOSSES):
        assert f"`{name}`" in GUIDE, name
