"""Size of a generated unrolled module and Numba's compile time of all its entry points (issue 11).

    python benchmarks/module_size.py [--example 000_3_mlp_3333] [--timeout 600]

In a new process with an empty cache: ``kernels.compile`` of the example ("derive"), then one call
of every entry point the module has (Numba compiles each on its first call: "compile all"), wall
and CPU seconds.  Prints the module's line count and its longest line.  The machine is shared:
the load average is printed with the figures; run it more than once.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, time
import numpy as np
import kernels
t0, c0 = time.perf_counter(), time.process_time()
k = kernels.compile({example!r})
t1, c1 = time.perf_counter(), time.process_time()
raw, f = k.raw, np.float64
names = k.meta["functions"]
if k.meta["kind"] == "network":
    n0, n1, P = k.sizes[0], k.sizes[-1], k.n_params
    theta, X, T = np.full(P, 0.1), np.full((2, n0), 0.5), np.full((2, n1), 0.5)
    calls = {{"sgd_step": lambda: raw.sgd_step(theta, X, T, 0.1),
             "loss_grad": lambda: raw.loss_grad(theta, X, T, np.empty(P)),
             "forward": lambda: raw.forward(theta, X, np.empty((2, n1))),
             "many_sgd_step": lambda: raw.many_sgd_step(np.full((40, P), 0.1), np.full((40, n0), 0.5),
                                                       np.full((40, n1), 0.5), 0.1, np.empty(40)),
             "trace": lambda: raw.trace(theta, X[0], T[0], 0.1, np.empty(k.trace_layout.size))}}
else:
    n = len(k.values_from_spec()) if k.meta["kind"] != "graph" else len(k.names)
    v = np.full(n, 0.5)
    calls = {{"sgd_step": lambda: raw.sgd_step(v.copy(), 0.1), "loss_grad": lambda: raw.loss_grad(v, np.empty(n)),
             "many_sgd_step": lambda: raw.many_sgd_step(np.full((4, n), 0.5), 0.1, np.empty(4)),
             "trace": lambda: raw.trace(v, 0.1, np.empty(k.trace_layout.size))}}
done = [name for name in calls if hasattr(raw, name) and (calls[name]() or True)]
t2, c2 = time.perf_counter(), time.process_time()
text = k.source
print(json.dumps({{"lines": len(text.splitlines()), "longest": max(map(len, text.splitlines())),
                  "derive_s": t1 - t0, "compile_all_s": t2 - t1, "compile_all_cpu_s": c2 - c1, "called": done}}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--example", default="000_3_mlp_3333")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nnd-size-") as cache:
        env = {**os.environ, "NNDERIVE_CACHE": cache, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-c", _CHILD.format(example=args.example)], env=env,
                              capture_output=True, text=True, timeout=args.timeout)
    rows = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not rows:
        print((proc.stderr.strip().splitlines() or ["failed"])[-1])
        return 1
    row = json.loads(rows[-1])
    print(f"{args.example}: {row['lines']} lines (longest {row['longest']} chars); derive {row['derive_s']:.2f} s; "
          f"compile all ({', '.join(row['called'])}) {row['compile_all_s']:.2f} s wall, "
          f"{row['compile_all_cpu_s']:.2f} s CPU; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
