"""``nnderive bench``: the generated kernels against NumPy, PyTorch and JAX, side by side.

Workloads (docs/kernels.md; issue 4):

* tiny — the 3-3-3-3 net of slide 000 (ReLU, sigmoid, sigmoid, ½‖y − t‖²), one SGD step on one
  sample per call, float64;
* many, many-f32 — 100 000 independent 3-3-3-3 problems, one SGD step each, one call, in float64 and
  in float32 (ours: the vectorised kernel on its blocked layout; rows = problems timed beside it);
* nielsen — 784-15-10 sigmoid net, ½‖y − t‖², minibatch 10, one SGD step, float64;
* big — 512-512-512-10, ReLU, softmax cross-entropy, batch 1024, float32, one SGD step (GFLOP/s);
* cold start — a new process computing its first 3-3-3-3 step: with an empty cache and a warm one.

Every contender is first run once from the same parameters and its update compared with ours
(a peer that computes something else stops the benchmark).  Timing interleaves the contenders
in rounds (a short pause between them, so one library's spinning threads do not eat the next
one's time) and reports the median seconds per call of each.  The machine is shared: run it a
few times.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import kernels.peers as peers

TARGETS = {"tiny": (30.0, "≥ 30× fastest peer"), "many": (3.5, "≥ 3.5× fastest peer"),
           "many-f32": (6.0, "≥ 6× fastest peer"),
           "nielsen": (3.0, "≥ 3× fastest peer"), "big": (1.0, "≥ 1.0× fastest peer"),
           "cold start, empty cache": (3.0, "≤ 3 s"), "cold start, warm cache": (0.5, "≤ 0.5 s")}


PEERS = ("numpy", "torch", "torch.compile", "jax")


@dataclass
class Contender:
    name: str
    step: Callable[[], None]
    params: Callable[[], list]
    threads: Callable[[int], None] | None = None     # sets its BLAS / intra-op thread count
    fragile: bool = False                            # may fail to build (torch.compile): dropped, said so


@dataclass
class Workload:
    name: str
    what: str
    contenders: list[Contender]
    flops: float | None = None
    tolerance: float = 1e-9
    extra: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)        # contender -> why it could not run
    also: dict = field(default_factory=dict)           # context timed in the same rounds, not a contender
    first_call_s: dict = field(default_factory=dict)   # contender -> its first step (compiling, if it does)


def available(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def _spec(sizes, acts, loss):
    from derive.kinds import from_mapping
    return from_mapping({"network": {"input_size": sizes[0], "loss": loss,
                                     "layer": [{"size": n, "activation": a} for n, a in zip(sizes[1:], acts)]}})


def _ours(kernel, theta, X, T, lr) -> Contender:
    """The raw Numba step (the documented fast path), with the NaN check its caller makes and, for
    the BLAS shape, its workspace (``kernel.workspace``)."""
    theta = theta.copy()
    raw = kernel.raw.sgd_step
    work = kernel.workspace(len(X))          # reused by every call, as the peers reuse their buffers

    def step():
        loss = raw(theta, X, T, lr)
        if loss != loss:
            raise FloatingPointError("the generated step reported a non-finite value")

    def step_in_work():
        loss = raw(theta, X, T, lr, work)
        if loss != loss:
            raise FloatingPointError("the generated step reported a non-finite value")
    return Contender("ours", step if work is None else step_in_work,
                     lambda: [v.astype(np.float64) for v in kernel.unpack(theta).values()],
                     _blas_threads() if kernel.shape == "blas" else None)     # the other shapes call no BLAS


def _split(kernel, theta) -> list[np.ndarray]:
    return [v.copy() for v in kernel.unpack(theta).values()]


def _blas_threads():
    """A setter of the BLAS thread count of NumPy's and SciPy's OpenBLAS (the generated kernels call
    SciPy's), through threadpoolctl; None without it."""
    if not available("threadpoolctl"):
        return None
    if available("scipy"):
        import scipy.linalg.cython_blas  # noqa: F401 -- SciPy's OpenBLAS loaded, so the controller sees it
    from threadpoolctl import ThreadpoolController
    controller = ThreadpoolController()
    return lambda n: controller.limit(limits=n, user_api="blas")


def _torch_threads(n: int) -> None:
    import torch
    torch.set_num_threads(n)


def _peers(params, acts, loss, X, T, lr, many=False, skip=()) -> list[Contender]:
    out = []
    for name, module, mlp, stacked in [("numpy", "numpy", peers.numpy_mlp, peers.numpy_many),
                                       ("torch", "torch", peers.torch_mlp, peers.torch_many),
                                       ("torch.compile", "torch", peers.torch_compiled_mlp, peers.torch_compiled_many),
                                       ("jax", "jax", peers.jax_mlp, peers.jax_many)]:
        if not available(module) or name in skip:
            continue
        if name == "jax":
            import jax
            jax.config.update("jax_enable_x64", True)   # float64 where the data are float64
        step, current = stacked(params, acts, X, T, lr) if many else mlp(params, acts, loss, X, T, lr)
        threads = _blas_threads() if name == "numpy" else _torch_threads if module == "torch" else None
        out.append(Contender(name, step, current, threads, fragile=name == "torch.compile"))
    return out


# ----------------------------------------------------------------------------- workloads

def tiny(cache_dir=None, skip=()) -> Workload:
    import kernels
    k = kernels.compile("000_3_mlp_3333", cache_dir=cache_dir)
    theta = k.params_from_spec()
    x, t, lr = k.spec_sample()
    X, T = x.reshape(1, -1).copy(), t.reshape(1, -1).copy()
    acts = ["relu", "sigmoid", "sigmoid"]
    checked = theta.copy()
    wl = Workload("tiny", "3-3-3-3 of slide 000, one SGD step on one sample, float64",
                  [_ours(k, theta, X, T, lr)] + _peers(_split(k, theta), acts, "half_sse", X, T, lr, skip=skip))
    wl.also["checked_api"] = lambda: k.sgd_step(checked, X, T, lr)
    return wl


def many(cache_dir=None, problems: int = 100_000, skip=(), dtype=np.float64) -> Workload:
    """100 000 problems.  Ours: the vectorised kernel on its blocked layout (``many_sgd_step_blocked``,
    the documented fast path: a user keeps the problems in that layout across steps); the same step
    on rows = problems (``many_sgd_step``, transposes inside) is timed beside it as context."""
    import kernels
    dtype = np.dtype(dtype)
    k = kernels.compile("000_3_mlp_3333", dtype=dtype, cache_dir=cache_dir)
    rng = np.random.default_rng(4)
    theta = k.params_from_spec().astype(np.float64)
    Theta = (theta + 0.1 * rng.standard_normal((problems, k.n_params))).astype(dtype)
    X, T = rng.uniform(0, 1, (problems, 3)).astype(dtype), rng.uniform(0, 1, (problems, 3)).astype(dtype)
    lr = 0.5
    ThetaB, XB, TB = k.to_blocked(Theta), k.to_blocked(X), k.to_blocked(T)
    lossesB = np.empty(ThetaB.shape[0] * k.many_block, dtype=dtype)
    blocked = k._many("many_sgd_step_blocked")

    def step():
        blocked(ThetaB, XB, TB, lr, lossesB)

    import numba
    # its threads: the parallel driver's (Numba's), 1 or every CPU, chosen like the peers' (and used by the
    # context entries below)
    ours = Contender("ours", step, lambda: [v.astype(np.float64) for v in k.unpack(k.from_blocked(ThetaB, problems)).values()],
                     numba.set_num_threads)
    stacked = [v.copy() for v in k.unpack(Theta).values()]
    name = "many" if dtype == np.float64 else "many-f32"
    wl = Workload(name, f"{problems:,} independent 3-3-3-3 problems, one SGD step each, one call, {dtype.name}; "
                  "ours on its blocked layout",
                  [ours] + _peers(stacked, ["relu", "sigmoid", "sigmoid"], "half_sse", X, T, lr, many=True, skip=skip),
                  tolerance=1e-9 if dtype == np.float64 else 1e-4)
    # context, not a contender: the same step on rows = problems (the kernel transposes each block in and out)
    rows, mine, losses = k._many("many_sgd_step"), Theta.copy(), np.empty(problems, dtype=dtype)
    wl.also["rows_api"] = lambda: rows(mine, X, T, lr, losses)
    # context: the time to read and write the stacked parameters once
    scratch = Theta.copy()
    wl.also["memory_floor"] = lambda: np.multiply(scratch, 1.0, out=scratch)
    return wl


def many_f32(cache_dir=None, problems: int = 100_000, skip=()) -> Workload:
    """The many workload in float32: the kernel's float32 twin against float32 peers."""
    return many(cache_dir, problems, skip, dtype=np.float32)


def _classification(sizes, acts, loss, batch, dtype, lr, seed, cache_dir):
    import kernels
    k = kernels.compile(_spec(sizes, acts, loss), dtype=dtype, cache_dir=cache_dir)
    rng = np.random.default_rng(seed)
    theta = k.init_params(seed)
    X = rng.uniform(0, 1, (batch, sizes[0])).astype(dtype)
    T = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], batch)]
    return k, theta, X, T, lr


def nielsen(cache_dir=None, skip=()) -> Workload:
    acts = ["sigmoid", "sigmoid"]
    k, theta, X, T, lr = _classification((784, 15, 10), acts, "half_sse", 10, np.float64, 3.0, 5, cache_dir)
    wl = Workload("nielsen", "784-15-10 sigmoid, ½‖y − t‖², minibatch 10, one SGD step, float64",
                  [_ours(k, theta, X, T, lr)] + _peers(_split(k, theta), acts, "half_sse", X, T, lr, skip=skip))
    checked = theta.copy()
    wl.also["checked_api"] = lambda: k.sgd_step(checked, X, T, lr)
    return wl


def big(cache_dir=None, skip=()) -> Workload:
    sizes, acts = (512, 512, 512, 10), ["relu", "relu", "identity"]
    k, theta, X, T, lr = _classification(sizes, acts, "softmax_cross_entropy", 1024, np.float32, 0.01, 6, cache_dir)
    pairs = sum(a * b for a, b in zip(sizes, sizes[1:]))
    flops = 2 * len(X) * (2 * pairs + sum(a * b for a, b in zip(sizes[1:], sizes[2:])))  # Z, ∂W, ∂h products
    return Workload("big", "512-512-512-10 ReLU, softmax cross-entropy, batch 1024, one SGD step, float32",
                    [_ours(k, theta, X, T, lr)] + _peers(_split(k, theta), acts, "softmax_cross_entropy", X, T, lr, skip=skip),
                    flops=flops, tolerance=2e-3)


# ----------------------------------------------------------------------------- measuring

def validate(wl: Workload) -> dict[str, float]:
    """One step of every contender from the same start: each update must match ours."""
    start = [p.copy() for p in wl.contenders[0].params()]
    deltas = {}
    for c in list(wl.contenders):
        t0 = time.perf_counter()
        try:
            c.step()
        except Exception as err:                 # noqa: BLE001 -- a fragile peer that fails is dropped, and said so
            if not c.fragile:
                raise
            wl.contenders.remove(c)
            wl.dropped[c.name] = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:160]}"
            continue
        wl.first_call_s[c.name] = time.perf_counter() - t0
        deltas[c.name] = [a - b for a, b in zip(c.params(), start)]
    ref = deltas["ours"]
    scale = max(float(np.abs(d).max()) for d in ref) or 1.0
    errors = {}
    for name, d in deltas.items():
        err = max(float(np.abs(a - b).max()) for a, b in zip(d, ref)) / scale
        errors[name] = err
        if err > wl.tolerance:
            raise AssertionError(f"{wl.name}: {name}'s update differs from the generated kernel's "
                                 f"(relative {err:.2e} > {wl.tolerance:.0e})")
    return errors


def _block(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def choose_threads(wl: Workload, calls: dict[str, int], tries: int = 3) -> dict[str, int]:
    """Each contender's thread count (1 or every CPU) that is faster for this size, by the best of
    ``tries`` short blocks each, interleaved."""
    cpus = os.cpu_count() or 1
    chosen = {}
    for c in wl.contenders:
        if c.threads is None or cpus == 1:
            continue
        best = {}
        for _ in range(tries):
            for n in (1, cpus):
                c.threads(n)
                best[n] = min(best.get(n, math.inf), _block(c.step, max(1, calls[c.name] // 4)))
        chosen[c.name] = min(best, key=best.get)
        c.threads(chosen[c.name])
    return chosen


def measure(wl: Workload, rounds: int, block_s: float, pause_s: float = 0.1) -> dict[str, float]:
    """Median seconds per call of each contender over interleaved rounds (min in ``wl.extra``);
    each contender runs at the thread count that is fastest for it (``wl.extra['threads']``)."""
    calls = {}
    timed = [(c.name, c.step) for c in wl.contenders] + list(wl.also.items())
    for name, step in timed:                      # calls per block, from one timed call after a warm-up
        step()
        t0 = time.perf_counter()
        step()
        calls[name] = max(1, int(block_s / max(time.perf_counter() - t0, 1e-7)))
    threads = wl.extra["threads"] = choose_threads(wl, calls)
    samples: dict[str, list[float]] = {name: [] for name, _ in timed}
    for _ in range(rounds):
        for name, step in timed:
            setter = next((c.threads for c in wl.contenders if c.name == name), None)
            if name in threads:
                setter(threads[name])
            elif name in wl.also and "ours" in threads:       # context runs as ours does
                wl.contenders[0].threads(threads["ours"])
            time.sleep(pause_s)
            samples[name].append(_block(step, calls[name]))
    wl.extra["min_s"] = {name: min(v) for name, v in samples.items()}
    return {name: statistics.median(v) for name, v in samples.items()}


# ----------------------------------------------------------------------------- cold start

_COLD_OURS = """
import kernels
k = kernels.compile("000_3_mlp_3333")
theta = k.params_from_spec(); x, t, lr = k.spec_sample()
print(k.sgd_step(theta, x, t, lr))
"""
_COLD_PEER = """
import numpy as np
import kernels.peers as peers
W1 = np.array([[0.1, 0.3, 0.4], [0.2, 0.2, 0.3], [0.3, 0.7, 0.9]]); W2 = np.array([[0.2, 0.3, 0.6], [0.3, 0.5, 0.4], [0.5, 0.7, 0.8]])
W3 = np.array([[0.1, 0.3, 0.5], [0.4, 0.7, 0.2], [0.8, 0.2, 0.9]]); b = np.ones(3)
X = np.array([[0.1, 0.2, 0.7]]); T = np.array([[1.0, 0.0, 0.0]])
{setup}
step, params = peers.{fn}([W1, b, W2, b.copy(), W3, b.copy()], ["relu", "sigmoid", "sigmoid"], "half_sse", X, T, 0.5)
step()
print(params()[0][0, 0])
"""


_TRIVIAL = """
from numba import njit

@njit(cache=True)
def f(x):
    return x + 1.0

f(1.0)
"""


def _run(code: str, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def cold_start(repeats: int) -> list[dict]:
    env = dict(os.environ)
    rows = []
    peer_times = {}
    for name, module, fn, setup in [("numpy", "numpy", "numpy_mlp", ""), ("torch", "torch", "torch_mlp", ""),
                                    ("jax", "jax", "jax_mlp", "import jax; jax.config.update('jax_enable_x64', True)")]:
        if available(module):
            code = _COLD_PEER.format(fn=fn, setup=setup)
            peer_times[name] = statistics.median(_run(code, env) for _ in range(repeats))
    with tempfile.TemporaryDirectory(prefix="nnderive-cold-") as tmp:
        empty = []
        for r in range(repeats):
            env["NNDERIVE_CACHE"] = os.path.join(tmp, f"empty{r}")
            empty.append(_run(_COLD_OURS, env))
        warm = [_run(_COLD_OURS, env) for _ in range(repeats)]     # the last empty run filled this cache
    # context: a new process that only imports NumPy and Numba, and one that calls a trivial function
    # from Numba's own on-disk cache (what any cached Numba start pays: the first call loads Numba's
    # typing and lowering registries)
    floor = statistics.median(_run("import numpy, numba", env) for _ in range(repeats))
    with tempfile.TemporaryDirectory(prefix="nnderive-trivial-") as tmp:
        path = os.path.join(tmp, "trivial.py")
        with open(path, "w") as f:
            f.write(_TRIVIAL)
        code = f"import sys; sys.path.insert(0, {tmp!r}); import trivial"
        _run(code, env)                                                          # fills Numba's cache
        trivial = statistics.median(_run(code, env) for _ in range(repeats))
    for name, times in [("cold start, empty cache", empty), ("cold start, warm cache", warm)]:
        rows.append({"name": name, "what": "new process, 3-3-3-3 kernel of slide 000, first SGD step",
                     "ours_s": statistics.median(times), "peers": dict(peer_times), "import_numba_s": floor,
                     "numba_cached_trivial_s": trivial})
    return rows


# ----------------------------------------------------------------------------- the run

def _row(wl: Workload, times: dict, errors: dict) -> dict:
    peers_s = {p: times.get(p) for p in PEERS}
    row = {"name": wl.name, "what": wl.what, "ours_s": times["ours"], "peers": peers_s,
           "min_s": wl.extra.get("min_s", {}), "threads": wl.extra.get("threads", {}),
           "agreement": {k: v for k, v in errors.items() if k != "ours"}}
    if wl.dropped:
        row["dropped"] = dict(wl.dropped)
    if "torch.compile" in wl.first_call_s:
        row["torch_compile_first_call_s"] = wl.first_call_s["torch.compile"]
    if wl.flops:
        row["gflops"] = {name: wl.flops / t / 1e9 for name, t in times.items()}
    return row


def _finish(row: dict) -> dict:
    present = {k: v for k, v in row["peers"].items() if v is not None}
    fastest = min(present.values()) if present else None
    row["speedup_vs_fastest_peer"] = fastest / row["ours_s"] if fastest else None
    goal, text = TARGETS[row["name"]]
    row["target"] = text
    if row["name"].startswith("cold"):
        row["met"] = row["ours_s"] <= goal
    else:
        row["met"] = row["speedup_vs_fastest_peer"] >= goal if fastest else None
    return row


def run(quick: bool = False, only: list[str] | None = None, cache_dir=None, log=None,
        skip: tuple[str, ...] = ()) -> dict:
    """Every workload (or ``only`` those), its contenders but the peers named in ``skip``."""
    rounds, block = (3, 0.05) if quick else (7, 0.2)
    load_start = os.getloadavg()
    blas = blas_in_use()                # before the benchmark sets any thread count
    factories = {"tiny": tiny, "many": many, "many-f32": many_f32, "nielsen": nielsen, "big": big}
    rows = []
    for name, make in factories.items():
        if only and name not in only:
            continue
        if log:
            log(f"{name}: preparing")
        wl = make(cache_dir=cache_dir, skip=skip)
        errors = validate(wl)
        if log:
            log(f"{name}: measuring {', '.join(c.name for c in wl.contenders)}")
        times = measure(wl, rounds, block)
        row = _row(wl, times, errors)
        if "checked_api" in times:
            row["ours_checked_api_s"] = times["checked_api"]
        if "memory_floor" in times:
            row["memory_floor_s"] = times["memory_floor"]
        if "rows_api" in times:
            row["ours_rows_api_s"] = times["rows_api"]
        rows.append(_finish(row))
    if not only or "cold" in only:
        if log:
            log("cold start: new processes")
        rows += [_finish(r) for r in cold_start(1 if quick else 3)]
    return {"workloads": rows, "machine": {**_machine(), "blas": blas, "load_average_start": load_start}, "quick": quick}


def _machine() -> dict:
    import platform
    import numba
    info = {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "load_average": os.getloadavg()}
    for m in ("torch", "jax"):
        if available(m):
            info[m] = __import__(m).__version__
    return info


def blas_in_use() -> dict[str, str]:
    """Which BLAS each contender's matrix products run on (threadpoolctl for the loaded OpenBLAS
    libraries; PyTorch's and XLA's own build information for theirs)."""
    out = {}
    if available("threadpoolctl"):
        from threadpoolctl import threadpool_info
        if available("scipy"):
            import scipy.linalg.cython_blas  # noqa: F401 -- loads the OpenBLAS the kernels' np.dot calls
        for lib in threadpool_info():
            if lib.get("user_api") != "blas":
                continue
            path = lib.get("filepath", "")
            who = "numpy" if "numpy" in path else "scipy (the kernels' np.dot)" if "scipy" in path else path
            out[who] = (f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')}, "
                        f"{lib.get('num_threads')} threads)")
    else:
        out["numpy"] = "unknown (install threadpoolctl, extra 'bench')"
    if available("torch"):
        import torch
        out["torch"] = ("MKL" if torch.backends.mkl.is_available() else "its own BLAS") + \
            f", oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}, {torch.get_num_threads()} threads"
    if available("jax"):
        import jax
        out["jax"] = f"XLA:{jax.default_backend()} (Eigen and oneDNN kernels inside XLA)"
    return out


def _fmt(s: float | None) -> str:
    if s is None:
        return "—"
    for unit, f in (("s", 1), ("ms", 1e3), ("µs", 1e6), ("ns", 1e9)):
        if s * f >= 1:
            return f"{s * f:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def table(result: dict) -> str:
    head = ("workload", "ours", "numpy", "torch", "torch.compile", "jax", "ours vs fastest peer", "target", "met")
    lines = []
    rows = []
    for r in result["workloads"]:
        ratio = r.get("speedup_vs_fastest_peer")
        ratio_s = "—" if ratio is None else f"{ratio:.2f}×"
        met = {True: "yes", False: "NO", None: "—"}[r.get("met")]
        rows.append((r["name"], _fmt(r["ours_s"]), *(_fmt(r["peers"].get(p)) for p in PEERS),
                     ratio_s, r["target"], met))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines.append(fmt.format(*head))
    lines.append(fmt.format(*("-" * w for w in widths)))
    lines += [fmt.format(*row) for row in rows]
    lines.append("")
    for r in result["workloads"]:
        notes = []
        if "gflops" in r:
            notes.append("GFLOP/s " + ", ".join(f"{k} {v:.1f}" for k, v in r["gflops"].items()))
        if "ours_checked_api_s" in r:
            fastest = min((v for v in r["peers"].values() if v), default=None)
            notes.append(f"checked API kernel.sgd_step: {_fmt(r['ours_checked_api_s'])} per call"
                         + (f" ({fastest / r['ours_checked_api_s']:.2f}× the fastest peer)" if fastest else ""))
        if r.get("min_s"):
            notes.append("min per call " + ", ".join(f"{k} {_fmt(v)}" for k, v in r["min_s"].items()))
        if r.get("threads"):
            notes.append("threads " + ", ".join(f"{k} {v}" for k, v in r["threads"].items()))
        if "torch_compile_first_call_s" in r:
            notes.append(f"torch.compile's first step (compiling) took {_fmt(r['torch_compile_first_call_s'])}")
        for name, why in r.get("dropped", {}).items():
            notes.append(f"{name} left out: it failed ({why})")
        if "ours_rows_api_s" in r:
            fastest = min((v for v in r["peers"].values() if v), default=None)
            notes.append("ours is many_sgd_step_blocked (the blocked layout); on rows = problems "
                         f"(many_sgd_step, transposes inside) {_fmt(r['ours_rows_api_s'])}"
                         + (f" ({fastest / r['ours_rows_api_s']:.2f}× the fastest peer)" if fastest else ""))
        if "memory_floor_s" in r:
            notes.append(f"reading and writing the stacked parameters once (NumPy, in place) takes "
                         f"{_fmt(r['memory_floor_s'])}")
        if "import_numba_s" in r and r["name"].endswith("warm cache"):
            notes.append(f"a new process importing only NumPy and Numba takes {_fmt(r['import_numba_s'])}; "
                         f"one calling a trivial function from Numba's cache takes {_fmt(r['numba_cached_trivial_s'])}")
        if notes:
            lines.append(f"{r['name']}: " + "; ".join(notes))
    m = result["machine"]
    for who, what in m.get("blas", {}).items():
        lines.append(f"BLAS of {who}: {what}")
    start = m.get("load_average_start")
    lines.append(f"medians per call, contenders interleaved in one run; {m['cpus']} CPUs, load average "
                 + (f"{', '.join(f'{x:.2f}' for x in start)} at the start, " if start else "")
                 + f"{', '.join(f'{x:.2f}' for x in m['load_average'])} at the end"
                 + (" (quick: fewer rounds)" if result.get("quick") else ""))
    return "\n".join(lines)


def main_json(result: dict) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False)
