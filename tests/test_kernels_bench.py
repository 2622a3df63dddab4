"""The benchmark's machinery: peers are checked against the kernels before anything is timed."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import bench, peers
from kernel_fixtures import CACHE


def test_tiny_workload_runs_and_every_peer_agrees():
    result = bench.run(quick=True, only=["tiny"], cache_dir=CACHE, skip=("torch.compile",))
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


def _small_classifier(loss, acts):
    import kernels
    import numpy as np
    k = kernels.compile(bench._spec((5, 4, 3), acts, loss), cache_dir=CACHE)
    rng = np.random.default_rng(1)
    theta = k.init_params(1)
    X = rng.normal(0, 1, (6, 5))
    T = np.eye(3)[rng.integers(0, 3, 6)]
    return k, theta, X, T


@pytest.mark.parametrize("loss, acts", [("softmax_cross_entropy", ["relu", "identity"]),
                                         ("half_sse", ["sigmoid", "relu"])])
def test_the_numpy_peer_with_preallocated_buffers_steps_as_the_kernel_does(loss, acts):
    """The `out=` NumPy peer, several steps in a row (its buffers are reused), against the kernel."""
    k, theta, X, T = _small_classifier(loss, acts)
    step, params = peers.numpy_mlp(bench._split(k, theta), acts, loss, X, T, 0.3)
    for _ in range(3):
        step()
        k.sgd_step(theta, X, T, 0.3)
    for got, want in zip(params(), k.unpack(theta).values()):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_the_stacked_numpy_peer_steps_every_problem_as_the_kernel_does():
    import kernels
    k = kernels.compile("000_3_mlp_3333", cache_dir=CACHE)
    rng = np.random.default_rng(2)
    Theta = k.params_from_spec() + 0.1 * rng.standard_normal((7, k.n_params))
    X, T = rng.uniform(0, 1, (7, 3)), rng.uniform(0, 1, (7, 3))
    step, params = peers.numpy_many([v.copy() for v in k.unpack(Theta).values()], ["relu", "sigmoid", "sigmoid"],
                                    X, T, 0.5)
    for _ in range(2):
        step()
        k.many_sgd_step(Theta, X, T, 0.5)
    for got, want in zip(params(), k.unpack(Theta).values()):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_a_fragile_peer_that_fails_is_left_out_and_named_a_sturdy_one_stops_the_run():
    k, theta, X, T = _small_classifier("half_sse", ["sigmoid", "relu"])

    def broken():
        raise RuntimeError("no compiler\nsecond line")
    ours = bench._ours(k, theta, X, T, 0.3)
    wl = bench.Workload("tiny", "", [ours, bench.Contender("torch.compile", broken, ours.params, fragile=True)])
    bench.validate(wl)
    assert [c.name for c in wl.contenders] == ["ours"]
    assert wl.dropped == {"torch.compile": "RuntimeError: no compiler"}
    wl = bench.Workload("tiny", "", [bench._ours(k, theta, X, T, 0.3), bench.Contender("numpy", broken, ours.params)])
    with pytest.raises(RuntimeError):
        bench.validate(wl)


def test_the_thread_setter_reaches_scipys_blas_even_before_scipy_is_loaded():
    """The kernels call SciPy's OpenBLAS; a setter made before anything loaded it must still set its
    threads (it did not: SciPy's BLAS kept every CPU, which made small products in the kernels slow)."""
    pytest.importorskip("threadpoolctl", reason="threadpoolctl is the optional 'bench' extra")
    import subprocess
    import sys
    code = ("import sys; from kernels import bench; assert 'scipy.linalg.cython_blas' not in sys.modules\n"
            "bench._blas_threads()(1)\n"
            "import scipy.linalg.cython_blas\n"
            "from threadpoolctl import threadpool_info\n"
            "print(sorted({lib['num_threads'] for lib in threadpool_info() if 'scipy' in lib['filepath']}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[1]"



@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_many_workloads_contenders_agree(dtype):
    """Ours on the blocked layout and every installed peer step 100 problems alike (``validate``)."""
    wl = bench.many(cache_dir=CACHE, problems=100, skip=("torch.compile",), dtype=dtype)
    assert wl.name == ("many" if dtype == np.float64 else "many-f32")
    errors = bench.validate(wl)
    assert "numpy" in errors and all(e <= wl.tolerance for e in errors.values())


@pytest.mark.parametrize("peer", ["numpy", "torch", "jax"])
def test_float32_peers_and_ours_compute_in_float32(peer):
    """The many-f32 contenders really compute in float32: from the same float32 numbers, each one's
    update differs from the float64 kernel's by float32 rounding (more than float64's, less than 1e-4)."""
    import kernels
    if peer != "numpy":
        pytest.importorskip(peer, reason=f"{peer} is an optional extra")
    if peer == "jax":
        import jax
        jax.config.update("jax_enable_x64", True)            # as the bench runs it: float32 must stay float32
    k32 = kernels.compile("000_3_mlp_3333", dtype=np.float32, cache_dir=CACHE)
    k64 = kernels.compile("000_3_mlp_3333", cache_dir=CACHE)
    rng = np.random.default_rng(5)
    Theta = (k64.params_from_spec() + 0.1 * rng.standard_normal((50, k64.n_params))).astype(np.float32)
    X, T = (rng.uniform(0, 1, (50, 3)).astype(np.float32) for _ in range(2))
    exact = Theta.astype(np.float64)
    k64.many_sgd_step(exact, X.astype(np.float64), T.astype(np.float64), 0.5)
    want = exact - Theta
    make = {"numpy": peers.numpy_many, "torch": peers.torch_many, "jax": peers.jax_many}[peer]
    step, params = make([v.copy() for v in k32.unpack(Theta).values()], ["relu", "sigmoid", "sigmoid"], X, T, 0.5)
    step()
    theirs = np.concatenate([p.reshape(50, -1) for p in params()], axis=1) - Theta
    ours = Theta.copy()
    k32.many_sgd_step(ours, X, T, 0.5)
    for got in (theirs, ours - Theta):
        err = np.abs(got - want).max() / np.abs(want).max()
        assert 1e-9 < err < 1e-4
