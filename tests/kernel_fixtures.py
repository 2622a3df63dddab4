"""The kernel tests' generated-module cache: one fresh directory per test run, removed at exit.

Fresh, so that CI exercises derivation, generation and compilation rather than a stale cache.
(A module, not a conftest.py fixture, which other parts of the project may own.)
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

CACHE = Path(tempfile.mkdtemp(prefix="nnderive-test-kernels-"))
atexit.register(shutil.rmtree, CACHE, ignore_errors=True)
