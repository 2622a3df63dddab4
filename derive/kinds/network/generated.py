"""Weights written as a rule instead of a list: ``weights = { seed = 7, low = "-0.5", high = "0.5", decimals = 2 }``.

A spec file is at most 1 MB (``spec.MAX_FILE_BYTES``), and a 1000×1000 matrix written out with two
decimals is 5.4 MB, so a wide layer may give its weights (or biases) by a seed instead.  The numbers
are exact decimals with ``decimals`` places, drawn uniformly from ``[low, high]`` by a generator
defined here and nowhere else (so the same spec means the same numbers on every machine and
version):

    element k (row-major, from 0) = (round(low·10^d) + r_k mod (round(high·10^d) − round(low·10^d) + 1)) / 10^d,
    r_k = splitmix64(seed + (k + 1)·0x9E3779B97F4A7C15 mod 2^64)

with splitmix64 the finaliser z ← (z ⊕ z≫30)·0xBF58476D1CE4E5B9, z ← (z ⊕ z≫27)·0x94D049BB133111EB,
z ← z ⊕ z≫31 (mod 2^64).  ``low`` and ``high`` must have at most ``decimals`` places.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from derive.core.errors import SpecError
from derive.core.numbers import parse_stated

MAX_GENERATED = 4_000_000       # elements of one generated matrix or vector
KEYS = {"seed", "low", "high", "decimals"}
GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def splitmix64(seed: int, count: int) -> np.ndarray:
    """r_0 … r_{count−1} of the module docstring (uint64, wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange(1, count + 1, dtype=np.uint64) * np.uint64(GOLDEN))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        return z ^ (z >> np.uint64(31))


def _bound(table: dict, key: str, path: str, decimals: int) -> int:
    raw = table.get(key)
    if not isinstance(raw, str):
        raise SpecError(f"{path}.{key}", 'expected a number written as a string, such as "-0.5"')
    q = parse_stated(raw, f"{path}.{key}").value
    scaled = q * sp.Integer(10) ** decimals
    if not scaled.is_Integer or abs(scaled) > 10**15:
        raise SpecError(f"{path}.{key}", f"expected at most {decimals} decimals and a size below 1e15/10^{decimals}")
    return int(scaled)


def values(table: Any, path: str, count: int) -> list[sp.Rational]:
    """``count`` numbers from a generator table (errors name the key path)."""
    if not isinstance(table, dict):
        raise SpecError(path, "expected a list of numbers or a table { seed, low, high, decimals }")
    unknown = set(table) - KEYS
    if unknown or KEYS - set(table):
        raise SpecError(path, f"a generated matrix needs exactly the keys {', '.join(sorted(KEYS))}")
    seed, decimals = table["seed"], table["decimals"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise SpecError(f"{path}.seed", "expected a whole number from 0 to 2^63 − 1")
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 6:
        raise SpecError(f"{path}.decimals", "expected a whole number from 0 to 6")
    low, high = _bound(table, "low", path, decimals), _bound(table, "high", path, decimals)
    if low > high:
        raise SpecError(f"{path}.high", "expected high ≥ low")
    if count > MAX_GENERATED:
        raise SpecError(path, f"{count} numbers is too many to generate (at most {MAX_GENERATED})")
    r = splitmix64(seed, count) % np.uint64(high - low + 1)
    den = 10**decimals
    return [sp.Rational(low + int(k), den) for k in r.tolist()]


def matrix(table: Any, path: str, rows: int, cols: int) -> tuple[tuple[sp.Rational, ...], ...]:
    flat = values(table, path, rows * cols)
    return tuple(tuple(flat[i * cols:(i + 1) * cols]) for i in range(rows))
