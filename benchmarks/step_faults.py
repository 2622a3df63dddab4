"""A generated sgd_step's time and page faults, in a process that does nothing but step.

A step that allocates large buffers at every call can pay for fresh pages each time (malloc gives
memory back to the operating system when a large block at the top of its heap is freed).  This
times one module's ``sgd_step`` on a workload of ``kernels.bench`` and counts the minor page faults
per step (``resource.getrusage``); with ``--work`` the step gets a workspace
(``kernel.workspace``), as the benchmark gives it.  Run it once per module, each in its own process
(the faults depend on what else the process holds, so peers are not loaded here):

    PYTHONPATH=$PWD python benchmarks/step_faults.py big OLD/kernel.py
    PYTHONPATH=$PWD python benchmarks/step_faults.py big NEW/kernel.py --work
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401 -- loaded before threadpoolctl looks for BLAS libraries
from threadpoolctl import ThreadpoolController

from interleaved_step import WORKLOADS, load       # the same workloads, modules loaded the same way
from kernels.bench import _classification

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=sorted(WORKLOADS))
    ap.add_argument("module", help="a kernel.py from the kernel cache")
    ap.add_argument("--work", action="store_true", help="pass a workspace (kernel.workspace(rows))")
    ap.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2)")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    w = WORKLOADS[args.workload]
    k, theta, X, T, lr = _classification(w["sizes"], w["acts"], w["loss"], w["batch"], w["dtype"], w["lr"],
                                         w["seed"], None)
    module = load(args.module, 0)
    mine = theta.copy()
    calls = 10 * w["calls"]                      # the interleaved rounds' calls, ten times over
    if args.work:
        work = np.empty(k.workspace(len(X)).size, dtype=w["dtype"])

        def step():
            module.sgd_step(mine, X, T, lr, work)
    else:
        def step():
            module.sgd_step(mine, X, T, lr)
    with ThreadpoolController().limit(limits=args.threads, user_api="blas"):
        step()
        step()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for _ in range(calls):
                step()
            times.append((time.perf_counter() - t0) / calls)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (args.rounds * calls)
    scale, unit = (1e3, "ms") if args.workload == "big" else (1e6, "µs")
    print(f"{args.workload} {args.module}{' --work' if args.work else ''}: median {statistics.median(times) * scale:.2f} "
          f"{unit}, min {min(times) * scale:.2f} {unit}; {faults:.0f} minor page faults a step; {args.threads} BLAS threads")


if __name__ == "__main__":
    main()
