"""Grading answer sets in the local sandboxed pool and on a Dask LocalCluster (not part of the tests).

    PYTHONPATH=$PWD python benchmarks/bench_serve_cluster.py --sets 40 --workers 2

Grades the same answer sets of docs/examples/hw_222.toml both ways (the local pool: ``--workers``
threads each grading in forked sandboxed workers, as ``nnderive serve --jobs`` does; the cluster:
``--workers`` Dask worker processes), checks that the records are identical, and prints the wall
time, answer sets per second, and the CPU time of this process and its children (the local pool).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def answer_sets(key: dict, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = {}
        for k, v in key.items():
            roll = rng.random()
            if roll < 0.5:
                s[k] = v
            elif roll < 0.8:
                s[k] = f"{rng.uniform(-1, 1):.4f}"
            elif roll < 0.9:
                s[k] = rng.choice([r"$o_1 - y_1$", r"$(o_1 - y_1)\,o_1(1 - o_1)$", r"$\frac{1}{2}$"])
        out.append(s or {"h1": "0.5"})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    from derive.serve.cluster import DaskExecutor, local_cluster
    from derive.serve.course import Course, grade_answers
    tmp = Path(tempfile.mkdtemp(prefix="nnderive-bench-cluster-"))
    (tmp / "course").mkdir()
    shutil.copy(ROOT / "docs/examples/hw_222.toml", tmp / "course/hw_222.toml")
    (tmp / "course/course.toml").write_text("variants = 1\n")
    course = Course(tmp / "course", tmp / "state", jobs=args.workers)
    key = course.problems["hw_222"].versions[0]
    answers = json.loads((tmp / "state/variants/hw_222/key_001.json").read_text())["answers"]
    sets = answer_sets(answers, args.sets, 0)
    c0, t0 = cpu(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        local = list(pool.map(lambda s: grade_answers(key, s), sets))
    t_local, c_local = time.perf_counter() - t0, cpu() - c0
    cluster = local_cluster(args.workers)
    ex = DaskExecutor(cluster.get_client())
    try:
        ex.grade_many(course.sources[key], sets[:2], (60.0, 10.0, 1024))      # each worker builds the problem once
        t0 = time.perf_counter()
        remote = ex.grade_many(course.sources[key], sets, (60.0, 10.0, 1024))
        t_remote = time.perf_counter() - t0
    finally:
        ex.close()
        cluster.close()
    same = json.dumps(local, sort_keys=True) == json.dumps(remote, sort_keys=True)
    print(f"{args.sets} answer sets, {args.workers} workers: local pool {t_local:.1f} s ({args.sets / t_local:.2f}/s, "
          f"CPU {c_local:.1f} s = {c_local / args.sets * 1000:.0f} ms per set); Dask LocalCluster {t_remote:.1f} s "
          f"({args.sets / t_remote:.2f}/s); records identical: {same}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
