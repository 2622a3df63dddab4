"""The many-problems kernel on 100 000 3-3-3-3 problems (slide 000's net), its layouts side by side,
interleaved in one process (issue 13):

    python benchmarks/many_layouts.py [--dtype float64] [--rounds 15] [--problems 100000] [OLD_KERNEL.py ...]

Times, for the current generated module and for each other generated module given (a ``kernel.py``
from the cache, each compiled here as its own module; its block size from the ``meta.json`` beside
it, else 32), ``many_sgd_step`` on rows = problems
and ``many_sgd_step_blocked`` on the blocked layout; and NumPy multiplying Θ by 1 in place (reading
and writing Θ once: the memory floor).  One thread: CPU time of the calling thread (so that other
processes on a shared machine count less); two threads: wall time.  Every module's first step must
equal the current one's (printed).  Reports min and median per call in ms, and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interleaved_step import load as load_module  # noqa: E402 -- a generated module compiled as its own, Numba's cache off


def blocked(A: np.ndarray, b: int) -> np.ndarray:
    nb = -(-len(A) // b)
    out = np.zeros((nb * b, A.shape[1]), A.dtype)
    out[:len(A)] = A
    return np.ascontiguousarray(out.reshape(nb, b, A.shape[1]).transpose(0, 2, 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", nargs="*", help="older generated kernel modules (kernel.py copies) to compare")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--problems", type=int, default=100_000)
    args = ap.parse_args(argv)
    import numba
    import kernels

    dtype = np.dtype(args.dtype)
    k = kernels.compile("000_3_mlp_3333", dtype=dtype)
    rng = np.random.default_rng(4)
    n = args.problems
    Theta = (k.params_from_spec() + 0.1 * rng.standard_normal((n, k.n_params))).astype(dtype)
    X, T = rng.uniform(0, 1, (n, 3)).astype(dtype), rng.uniform(0, 1, (n, 3)).astype(dtype)
    lr = 0.5
    modules = [("current", k.raw, k.many_block)]
    for i, path in enumerate(args.old):
        path = Path(path).resolve()
        meta = path.parent / "meta.json"           # beside a kernel.py from the cache: its block size
        block = json.loads(meta.read_text(encoding="utf-8")).get("many_block", 32) if meta.exists() else 32
        module = load_module(str(path), i)                  # each its own module, compiled here (no Numba cache)
        modules.append((f"{i + 1}: {path.parent.name}/{path.name}", module, block))
    calls = {}
    first = None
    for name, module, b in modules:
        # the float32 twins for float32 arrays, where the module has them (as kernels/api.py calls them)
        tag = "_f32" if dtype == np.float32 and hasattr(module, "many_sgd_step_f32") else ""
        mod = argparse.Namespace(many_sgd_step=getattr(module, "many_sgd_step" + tag),
                                 many_sgd_step_blocked=getattr(module, "many_sgd_step_blocked" + tag))
        th, losses = Theta.copy(), np.empty(n, dtype)
        mod.many_sgd_step(th, X, T, lr, losses)
        if first is None:
            first = th
        else:
            print(f"{name}: largest difference from the current step {np.abs(th - first).max():.3g}")
        th = Theta.copy()
        calls[f"{name} rows"] = lambda mod=mod, th=th, losses=losses: mod.many_sgd_step(th, X, T, lr, losses)
        TB, XB, TTB = blocked(Theta, b), blocked(X, b), blocked(T, b)
        lb = np.empty(TB.shape[0] * b, dtype)
        calls[f"{name} blocked"] = lambda mod=mod, a=(TB, XB, TTB, lr, lb): mod.many_sgd_step_blocked(*a)
    scratch = Theta.copy()
    calls["memory floor (NumPy, Θ *= 1)"] = lambda: np.multiply(scratch, 1.0, out=scratch)
    for f in calls.values():
        f()
    times = {(c, t): [] for c in calls for t in (1, 2)}
    load = os.getloadavg()
    for _ in range(args.rounds):
        for threads in (1, 2):
            numba.set_num_threads(threads)
            clock = time.thread_time if threads == 1 else time.perf_counter
            for c, f in calls.items():
                t0 = clock()
                f(), f(), f()
                times[c, threads].append((clock() - t0) / 3)
    print(f"{n:,} problems, {dtype}; load average {load} at the start, {os.getloadavg()} at the end")
    print("one thread: CPU time of the thread; two threads: wall time")
    for (c, threads), v in times.items():
        print(f"  {c:32s} {threads} thread{'s' if threads > 1 else ' '}: min {min(v) * 1e3:6.2f} ms, "
              f"median {np.median(v) * 1e3:6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
