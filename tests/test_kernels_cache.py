"""A damaged kernel cache is a miss, not a failure (issue 9): truncated, overwritten or emptied
Numba files (.nbi/.nbc), a broken meta.json, module or structure pointer.  Each case runs in a
fresh process (Numba reads its cache files when a process first calls a kernel), and the loss it
computes is compared with the mpmath oracle of the 2-2-2 network."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oracles import net222

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = """
import sys, kernels, worked_examples
from derive.kinds import load
k = kernels.compile(load(worked_examples.path("001_4_net_222")), cache_dir=sys.argv[1])
loss = k.loss_and_grad(k.values_from_spec())[0]
s = k.raw.loss_grad.stats
print(repr(loss), sum(s.cache_misses.values()))
"""


def run(cache: Path, misses: int | None = None) -> float:
    """The loss computed in a fresh process; ``misses``: how many Numba cache misses it must have had."""
    r = subprocess.run([sys.executable, "-c", PROGRAM, str(cache)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    loss, missed = r.stdout.strip().splitlines()[-1].split()
    if misses is not None:
        assert int(missed) == misses
    return float(loss)


@pytest.fixture(scope="module")
def warm(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("cache") / "k"
    run(cache)
    assert list(cache.rglob("*.nbi")) and list(cache.rglob("*.nbc"))
    return cache


def _damage(cache: Path, how: str) -> None:
    if how in ("nbi-garbage", "nbi-empty", "nbc-random", "nbc-empty", "nbc-truncated"):
        kind = how.split("-")[0]
        for f in cache.rglob(f"*.{kind}"):
            if how.endswith("garbage"):
                f.write_bytes(b"garbage")
            elif how.endswith("empty"):
                f.write_bytes(b"")
            elif how.endswith("random"):
                f.write_bytes(os.urandom(200))
            else:
                f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    elif how == "meta":
        for f in cache.rglob("meta.json"):
            f.write_text('{"x')
    elif how == "module":
        for f in cache.rglob("kernel.py"):
            f.write_text("raise SystemExit('damaged')\n")
    elif how == "pointer":
        for f in (cache / "structures").glob("*.json"):
            f.write_text("[1")


@pytest.mark.parametrize("how", ["nbi-garbage", "nbi-empty", "nbc-random", "nbc-empty", "nbc-truncated",
                                 "meta", "module", "pointer"])
def test_a_damaged_cache_entry_is_rebuilt(warm, tmp_path, how):
    cache = tmp_path / "k"
    shutil.copytree(warm, cache)
    _damage(cache, how)
    expected = float(net222()["Error"])
    assert run(cache) == pytest.approx(expected, rel=1e-12)
    # the rebuilt entry is used again: loaded, not compiled
    assert run(cache, misses=0) == pytest.approx(expected, rel=1e-12)


def test_an_intact_cache_is_loaded_not_compiled(warm, tmp_path):
    cache = tmp_path / "k"
    shutil.copytree(warm, cache)
    assert run(cache, misses=0) == pytest.approx(float(net222()["Error"]), rel=1e-12)
