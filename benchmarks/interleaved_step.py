"""Generated sgd_step modules side by side, interleaved in one process, with the bench's peers.

For before/after comparisons on a shared, noisy machine: each KERNEL.py (a module from the kernel
cache, e.g. one generated at an older commit) is loaded from its text (Numba's on-disk cache off),
checked to step like the first one, and timed in rounds that alternate between the contenders;
minimum and median per call are printed.

    PYTHONPATH=$PWD python benchmarks/interleaved_step.py nielsen OLD/kernel.py NEW/kernel.py [--peers numpy,jax]
    PYTHONPATH=$PWD python benchmarks/interleaved_step.py big OLD/kernel.py NEW/kernel.py --rounds 10

The workloads and data are ``kernels.bench``'s; SciPy's and NumPy's BLAS run one thread.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
from functools import partial

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401 -- loaded before threadpoolctl looks for BLAS libraries
from threadpoolctl import ThreadpoolController

import kernels.peers as peers
from kernels.bench import _classification, _split

WORKLOADS = {
    "nielsen": dict(sizes=(784, 15, 10), acts=["sigmoid", "sigmoid"], loss="half_sse", batch=10,
                    dtype=np.float64, lr=3.0, seed=5, calls=300),
    "big": dict(sizes=(512, 512, 512, 10), acts=["relu", "relu", "identity"], loss="softmax_cross_entropy",
                batch=1024, dtype=np.float32, lr=0.01, seed=6, calls=3),
}


def load(path: str, k: int):
    text = open(path, encoding="utf-8").read().replace("cache=True", "cache=False")
    module = types.ModuleType(f"interleaved_{k}")
    module.__file__ = path
    exec(compile(text, path, "exec"), module.__dict__)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=sorted(WORKLOADS))
    ap.add_argument("modules", nargs="+")
    ap.add_argument("--peers", default="numpy,jax")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    ThreadpoolController().limit(limits=1, user_api="blas")
    w = WORKLOADS[args.workload]
    k, theta, X, T, lr = _classification(w["sizes"], w["acts"], w["loss"], w["batch"], w["dtype"], w["lr"],
                                         w["seed"], None)
    runs, first = {}, None
    for i, path in enumerate(args.modules):
        step = load(path, i).sgd_step
        if "work" in step.py_func.__code__.co_varnames[:step.py_func.__code__.co_argcount]:
            # a module whose step takes a workspace gets one, as the bench gives it (kernel.workspace)
            step = partial(step, work=np.empty(k.workspace(len(X)).size, dtype=w["dtype"]))
        stepped = theta.copy()
        loss = step(stepped, X, T, lr)
        if first is None:
            first = (loss, stepped)
        else:
            tol = 1e-12 if w["dtype"] == np.float64 else 1e-5
            np.testing.assert_allclose(loss, first[0], rtol=tol)
            np.testing.assert_allclose(stepped, first[1], rtol=tol, atol=tol * np.abs(theta).max())
        mine = theta.copy()
        # the workload's learning rate, as the bench steps: with lr = 0, BLAS skips a product whose α is 0
        runs[f"{i}: {path}"] = lambda step=step, mine=mine: step(mine, X, T, lr)
    for name in filter(None, args.peers.split(",")):
        if name == "jax":
            import jax
            jax.config.update("jax_enable_x64", True)
        make = {"numpy": peers.numpy_mlp, "torch": peers.torch_mlp, "jax": peers.jax_mlp}[name]
        runs[name] = make(_split(k, theta), w["acts"], w["loss"], X, T, lr)[0]
    for f in runs.values():
        f()
    samples = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, f in runs.items():
            time.sleep(0.02)
            t0 = time.perf_counter()
            for _ in range(w["calls"]):
                f()
            samples[name].append((time.perf_counter() - t0) / w["calls"])
    unit, scale = ("µs", 1e6) if args.workload == "nielsen" else ("ms", 1e3)
    print(f"{args.workload}: {args.rounds} rounds of {w['calls']} calls; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; 1 BLAS thread")
    for name, v in samples.items():
        print(f"  {name:<60} min {min(v) * scale:8.2f} {unit}   median {statistics.median(v) * scale:8.2f} {unit}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
