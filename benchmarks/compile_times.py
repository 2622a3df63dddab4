"""Compile time and step time of the network kernels, by size, each size in a new process with an
empty cache (issue 13: the first call of an ``auto`` kernel should compile in ≤ 3 s).

    python benchmarks/compile_times.py [--sizes 2-2-2,3-3-3-3,...] [--shape auto] [--many] [--timeout 300]

For each size (sigmoid layers, ½‖y − t‖², float64) a child process runs ``kernels.compile`` (the
SymPy derivation and code generation: "derive"), then the first ``sgd_step`` call (Numba's
compile: "first call"), then times the step on one sample (median of interleaved blocks of calls:
"step").  With ``--many`` it also times the first ``many_sgd_step`` call on 1 000 problems.  A size
that runs past ``--timeout`` seconds is reported as such.  The machine is shared: compare ratios,
and run it more than once.
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
SIZES = "2-2-2,3-3-3-3,8-8-8,16-16-16,16-16-16-16,32-32-10"

_CHILD = r"""
import json, statistics, sys, time
t0 = time.perf_counter()
c0 = time.process_time()
import numpy as np
import kernels
from derive.kinds import from_mapping
sizes = {sizes}
spec = from_mapping({{"network": {{"input_size": sizes[0], "loss": "half_sse",
    "layer": [{{"size": n, "activation": "sigmoid"}} for n in sizes[1:]]}}}})
k = kernels.compile(spec, shape={shape!r})
t1 = time.perf_counter()
c1 = time.process_time()
rng = np.random.default_rng(0)
theta = k.init_params(0)
X = rng.uniform(0, 1, (1, sizes[0])); T = rng.uniform(0, 1, (1, sizes[-1]))
k.raw.sgd_step(theta, X, T, 0.1)
t2 = time.perf_counter()
c2 = time.process_time()
out = {{"shape": k.shape, "params": k.n_params, "derive_s": t1 - t0, "first_call_s": t2 - t1,
        "derive_cpu_s": c1 - c0, "first_call_cpu_s": c2 - c1}}
print(json.dumps(out), flush=True)
raw = k.raw.sgd_step
samples = []
for _ in range(7):
    n = 2000 if k.n_params < 2000 else 200
    s = time.perf_counter()
    for _ in range(n):
        raw(theta, X, T, 0.001)
    samples.append((time.perf_counter() - s) / n)
out["step_s"] = statistics.median(samples)
out["step_min_s"] = min(samples)
if {many}:
    P = 1000
    Theta = theta + 0.01 * rng.standard_normal((P, k.n_params))
    XX = rng.uniform(0, 1, (P, sizes[0])); TT = rng.uniform(0, 1, (P, sizes[-1]))
    losses = np.empty(P)
    s = time.perf_counter()
    k.raw.many_sgd_step(Theta, XX, TT, 0.1, losses)
    out["many_first_call_s"] = time.perf_counter() - s
print(json.dumps(out), flush=True)
"""


def one(sizes: list[int], shape: str, many: bool, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="nnd-compile-") as cache:
        env = {**os.environ, "NNDERIVE_CACHE": cache, "PYTHONPATH": str(ROOT)}
        code = _CHILD.format(sizes=sizes, shape=shape, many=many)
        try:
            proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                  timeout=timeout)
            lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
            if proc.returncode or not lines:
                return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
            return json.loads(lines[-1])
        except subprocess.TimeoutExpired as err:
            out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            lines = [l for l in out.splitlines() if l.startswith("{")]
            row = json.loads(lines[-1]) if lines else {}
            return {**row, "timeout_s": timeout}


def _s(v):
    return "—" if v is None else (f"{v:.2f} s" if v >= 0.1 else f"{v * 1e6:.3g} µs" if v < 1e-3 else f"{v * 1e3:.3g} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=SIZES)
    ap.add_argument("--shape", default="auto")
    ap.add_argument("--many", action="store_true")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    print(f"{'net':<14} {'shape':<9} {'params':>6}  {'derive':>8}  {'first call':>10}  {'(CPU)':>8}  {'step':>9}"
          + ("  many first call" if args.many else ""), flush=True)
    for text in args.sizes.split(","):
        sizes = [int(n) for n in text.split("-")]
        row = {"net": text, **one(sizes, args.shape, args.many, args.timeout)}
        rows.append(row)
        if "error" in row:
            print(f"{text:<14} error: {row['error']}", flush=True)
            continue
        first = _s(row.get("first_call_s")) if "first_call_s" in row else f"> {args.timeout:.0f} s"
        print(f"{text:<14} {row.get('shape', '?'):<9} {row.get('params', 0):>6}  {_s(row.get('derive_s')):>8}  "
              f"{first:>10}  {_s(row.get('first_call_cpu_s')):>8}  {_s(row.get('step_s')):>9}"
              + (f"  {_s(row.get('many_first_call_s'))}" if args.many else ""), flush=True)
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
