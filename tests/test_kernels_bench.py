"""The benchmark's machinery: peers are checked against the kernels before anything is timed."""
from __future__ import annotations

import pytest

from kernels import bench
from kernel_fixtures import CACHE


def test_tiny_workload_runs_and_every_peer_agrees():
    result = bench.run(quick=True, only=["tiny"], cache_dir=CACHE)
    (row,) = result["workloads"]
    assert set(row) >= {"name", "ours_s", "peers", "speedup_vs_fastest_peer"}
    assert row["ours_s"] > 0 and row["peers"]["numpy"] > 0
    assert all(err <= 1e-9 for err in row["agreement"].values())
    assert row["speedup_vs_fastest_peer"] == pytest.approx(
        min(v for v in row["peers"].values() if v) / row["ours_s"])
    assert "tiny" in bench.table(result)


def test_a_peer_that_computes_something_else_is_refused():
    """A NumPy peer whose learning rate is 1 % off: a subtle difference the check must catch."""
    import kernels
    from kernels import peers
    k = kernels.compile("000_3_mlp_3333", cache_dir=CACHE)
    theta = k.params_from_spec()
    x, t, lr = k.spec_sample()
    X, T = x.reshape(1, -1), t.reshape(1, -1)
    start = [v.copy() for v in k.unpack(theta).values()]
    acts = ["relu", "sigmoid", "sigmoid"]
    good = bench.Contender("numpy", *peers.numpy_mlp(start, acts, "half_sse", X, T, lr))
    off = bench.Contender("off", *peers.numpy_mlp(start, acts, "half_sse", X, T, lr * 1.01))
    wl = bench.Workload("tiny", "", [bench._ours(k, theta, X, T, lr), good])
    assert bench.validate(wl)["numpy"] < 1e-12
    wl = bench.Workload("tiny", "", [bench._ours(k, theta, X, T, lr), off])
    with pytest.raises(AssertionError, match="off"):
        bench.validate(wl)
