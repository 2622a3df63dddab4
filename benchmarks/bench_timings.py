"""Times that unit tests used to assert (issue 10: 11.9 s was measured under load for a 0.94 s
case); the tests keep only a hang guard (tests/hang_guard.py).  Run on a quiet machine:

    python benchmarks/bench_timings.py

Each case runs ``REPEATS`` times in this process after one warm-up; the median and the bound the
tests used to assert are printed.  Symbolic grading per formula: benchmarks/bench_symbolic.py.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
REPEATS = 5


def _cases():
    import worked_examples
    from derive.core.errors import SpecError
    from derive.grading.grade import Problem, grade_latex
    from derive.handout.assemble import build
    from derive.kinds import load, loads
    from test_check_symbolic import BIG_POWER

    def handout():
        h = build(load(worked_examples.path("000_3_mlp_3333")))
        h.tex(), h.markdown()

    def conv_error():
        try:
            loads('[cnn]\ninput = [[1, 2], [3, 4]]\n[[cnn.layer]]\ntype = "conv2d"\nsize = 2\nstride = 0', name="bad")
        except SpecError:
            return
        raise AssertionError("the spec error was not raised")

    net222 = Problem.build(load(worked_examples.path("001_4_net_222")))

    def big_power():
        grade_latex(net222, "grad_w5", None, BIG_POWER)

    return [("handout of 000_3_mlp_3333, tex and md", handout, 3.0),
            ("a cnn spec error", conv_error, 1.0),
            ("grading (w1 + … + w8)^64 (decided, not expanded)", big_power, 5.0)]


def main() -> None:
    for name, fn, bound in _cases():
        fn()
        times = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        print(f"{statistics.median(times):7.3f} s median of {REPEATS} (max {max(times):.3f} s; "
              f"former test bound {bound:g} s)  {name}")


if __name__ == "__main__":
    main()
