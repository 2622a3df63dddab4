"""Time symbolic decisions (parse + compare + mistake search) as ``nnderive check``'s workers do them.

    python benchmarks/bench_symbolic.py

The parser is warmed first, as ``check`` does before forking; each formula is then graded in a
fresh forked worker (derive.core.sandbox.run), and the wall-clock time per formula is printed.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    import worked_examples
    from derive.grading.submissions import warm_up
    from derive.grading.grade import Problem, grade_latex
    from derive.core.sandbox import run
    from derive.kinds import load
    from test_check_symbolic import RIGHT_222, RIGHT_MLP, WRONG_222, WRONG_MLP
    cases = [("001_4_net_222", q, None, t) for q, t in RIGHT_222] + \
            [("001_4_net_222", q, None, t) for q, t, _ in WRONG_222] + \
            [("000_3_mlp_3333", q, i, t) for q, i, t in RIGHT_MLP] + \
            [("000_3_mlp_3333", q, None, t) for q, t, _ in WRONG_MLP]
    problems = {n: Problem.build(load(worked_examples.path(n))) for n in ("001_4_net_222", "000_3_mlp_3333")}
    for p in problems.values():
        warm_up(p)
    times = []
    for name, q, idx, text in cases:
        t = time.perf_counter()
        r = run(grade_latex, problems[name], q, idx, text, timeout=30)
        times.append(time.perf_counter() - t)
        print(f"{times[-1]:6.2f} s  {r['verdict']:9} {name} {q}: {text}")
    print(f"{len(times)} formulas: median {statistics.median(times):.2f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()
