"""Every bundled example: the engine's values, recomputed values and verdicts agree with
independent computations (NumPy floats for networks and CNNs, 50-digit mpmath for graphs).

No verdict is typed here: the expected verdict is derived from the oracle's numbers
(``oracles.allowed_verdicts``), with values within 1e-9 of a rounding boundary allowed either way.
"""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import worked_examples
from derive.kinds import load
from derive.verify.stated import verify_spec

import oracles

NUMERIC = [n for n in worked_examples.names()
           if any(k in oracles.load(worked_examples.path(n))
                  for k in ("network", "graph", "cnn", "perceptron", "architecture"))
           and oracles.load(worked_examples.path(n)).get("stated")]


def _stated_arrays(data: dict, table: dict, shapes: dict) -> dict:
    """Stated values as float arrays with NaN where nothing was printed (network quantities)."""
    out = {}
    for key, value in table.items():
        if key == "label":
            continue
        name = key.split("[")[0]
        arr = out.setdefault(name, np.full(shapes[name], np.nan))
        if "[" in key:
            idx = tuple(int(i) for i in key[key.index("[") + 1:-1].split(","))
            arr[idx] = oracles.stated_value(value)[0]
        else:
            arr[...] = np.vectorize(lambda s: oracles.stated_value(s)[0] if s != "" else np.nan)(np.array(value, dtype=object))
    return out


def _oracle(data: dict, stated_tables: list[dict]):
    """(true values, carried values) from the oracle, as lookups by (quantity, index)."""
    if "network" in data or "cnn" in data:
        values = oracles.network_values if "network" in data else oracles.cnn_values
        true = values(data)
        shapes = {k: np.shape(v) for k, v in true.items()}
        stated = {}
        for table in stated_tables:
            stated.update(_stated_arrays(data, table, shapes))
        carried = values(data, stated)
        get = lambda vals, q, idx: float(np.asarray(vals[q])[tuple(idx or ())])
    elif "perceptron" in data or "architecture" in data:
        values = oracles.perceptron_values if "perceptron" in data else (lambda d, st=None: oracles.architecture_params(d))
        true = values(data)
        stated = {}
        for table in stated_tables:
            stated.update({k: [oracles._exact(x) for x in v] if isinstance(v, list) else oracles._exact(v)
                           for k, v in table.items() if k != "label"})
        carried = values(data, stated)
        get = lambda vals, q, idx: float(vals[q][idx[0]] if idx else vals[q])
    else:
        true = oracles.graph_values(data)
        stated = {}
        for table in stated_tables:
            stated.update({k: sum(mpmath.mpf(p) for p in _terms(v))
                           for k, v in table.items() if k != "label"})
        carried = oracles.graph_values(data, stated)
        get = lambda vals, q, idx: float(vals[q])
    return true, carried, get


def _terms(text: str) -> list[str]:
    return str(text).replace("\u2212", "-").replace(" ", "").replace("-", " -").replace("+", " +").split()


@pytest.mark.parametrize("name", NUMERIC)
def test_values_carried_values_and_verdicts_match_the_oracle(name):
    path = worked_examples.path(name)
    data = oracles.load(path)
    report = verify_spec(load(path))
    assert report.records
    frames = {"": [data.get("stated", {})]}
    for fr in data.get("restated", []):
        frames[fr.get("label")] = [data.get("stated", {}), fr]
    oracle = {label: _oracle(data, tables) for label, tables in frames.items()}
    for rec in report.records:
        true, carried, get = oracle[rec.frame or ""]
        t = get(true, rec.quantity, rec.index)
        c = get(carried, rec.quantity, rec.index)
        assert math.isclose(float(rec.value), t, rel_tol=1e-9, abs_tol=1e-12), (rec.quantity, rec.index)
        if rec.carried is not None:
            assert math.isclose(float(rec.carried), c, rel_tol=1e-9, abs_tol=1e-12), (rec.quantity, rec.index)
        allowed = oracles.allowed_verdicts(rec.stated.text, t, c)
        assert rec.verdict in allowed, (rec.quantity, rec.index, rec.stated.text, t, c, rec.verdict)


@pytest.mark.parametrize("name", NUMERIC)
def test_every_printed_number_gets_a_record(name):
    path = worked_examples.path(name)
    data = oracles.load(path)
    report = verify_spec(load(path))

    def count(table):
        n = 0
        for k, v in table.items():
            if k == "label":
                continue
            flat = np.array(v, dtype=object).ravel() if isinstance(v, list) else [v]
            n += sum(1 for s in flat if s != "")
        return n
    expected = count(data.get("stated", {})) + sum(count(fr) for fr in data.get("restated", []))
    assert len(report.records) == expected


def test_the_bundled_set_covers_the_catalogue_items_of_the_core_issue():
    sources = " ".join(load(worked_examples.path(n)).source for n in worked_examples.names())
    for deck in ("000_9ff9b7f9e4790c65.txt", "001_0a5ce40d7d59efe7.txt", "002_e780c23990bc6025.txt",
                 "003_67241637582786d1.txt", "004_d00e0ad09de1f318.txt"):
        assert deck in sources
