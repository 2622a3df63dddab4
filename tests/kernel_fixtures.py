"""The kernel tests' fixture: one generated-module cache per test session.

Imported by each kernel test module (not a conftest.py, which other parts of the project may own)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def kernel_cache(tmp_path_factory):
    """A fresh cache directory, so CI exercises generation and compilation, not a stale cache."""
    return tmp_path_factory.mktemp("kernel-cache")
