"""Which forward product wins at which size: BLAS, or the blocked loop of the generated modules.

A BLAS-shape ``sgd_step`` that updates W in place (kernels/gemmffi.py) needs Z = H Wᵀ and the
norms ‖H‖, ‖W‖.  Two ways, timed here interleaved in one process, one BLAS thread:

* ``blas``: ``np.dot(H, W.T, Z)`` (SciPy's OpenBLAS, as Numba calls it), then ``sumsq`` of H and
  of W (two more passes over them);
* ``blocked``: ``mm_abt_norms(H, W, Z)``: 5 × 3 register blocks, the norms read while the rows
  are in L1.

    PYTHONPATH=$PWD python benchmarks/small_gemm.py [--rounds 15]

Prints, for each (rows, inputs, units), the minimum and median microseconds of each and the
ratio; docs/kernels.md keeps a run and ``kernels/blas.py`` (``BLOCKED_ROWS_MAX``) the rule.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401 -- loaded before threadpoolctl looks for BLAS libraries
from numba import njit
from threadpoolctl import ThreadpoolController

from kernels.gemmffi import GEMM

SIZES = [(1, 784, 15), (10, 784, 15), (10, 784, 30), (10, 784, 100), (32, 784, 15), (64, 784, 15),
         (100, 784, 30), (10, 100, 15), (10, 512, 512), (128, 512, 512)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    ThreadpoolController().limit(limits=1, user_api="blas")
    ns = {"np": np, "njit": njit, "math": math}
    exec(GEMM.replace("cache=True", "cache=False"), ns)      # the source the generated modules print
    mm_abt_norms, sumsq = ns["mm_abt_norms"], ns["sumsq"]

    @njit
    def blas(H, W, Z):
        np.dot(H, W.T, Z)
        return sumsq(H), sumsq(W)

    rng = np.random.default_rng(0)
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; 1 BLAS thread; float64; µs per call")
    print(f"{'rows, in, units':>18}  {'blas min':>9} {'median':>8}  {'blocked min':>11} {'median':>8}  blas/blocked")
    for B, K, I in SIZES:
        H, W = rng.uniform(0, 1, (B, K)), rng.normal(0, 0.1, (I, K))
        Z1, Z2 = np.empty((B, I)), np.empty((B, I))
        n1, n2 = blas(H, W, Z1), mm_abt_norms(H, W, Z2)
        np.testing.assert_allclose(Z2, Z1, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(n2, n1, rtol=1e-12)
        calls = max(3, int(2e6 / (B * K * I + 1000)))
        runs = {"blas": lambda: blas(H, W, Z1), "blocked": lambda: mm_abt_norms(H, W, Z2)}
        samples = {k: [] for k in runs}
        for _ in range(args.rounds):
            for name, f in runs.items():
                t0 = time.perf_counter()
                for _ in range(calls):
                    f()
                samples[name].append((time.perf_counter() - t0) / calls * 1e6)
        b, k = samples["blas"], samples["blocked"]
        print(f"{str((B, K, I)):>18}  {min(b):9.2f} {statistics.median(b):8.2f}  {min(k):11.2f} "
              f"{statistics.median(k):8.2f}  {min(b) / min(k):6.2f}")


if __name__ == "__main__":
    main()
