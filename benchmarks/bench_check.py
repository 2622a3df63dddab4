"""Time ``nnderive check`` on N generated submissions of the 2-2-2 example (numeric answers for every quantity).

    python benchmarks/bench_check.py [N] [--jobs J]

Each submission answers every quantity that is not given (51 numbers), rounded to 4 decimals from
the engine's exact values; one in three perturbs one early answer and recomputes the rest from it
(carried), one in five rounds some answers to 2 decimals (precision).  Prints the wall-clock time of
the grading call (spec loading included) and the verdict counts.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_submissions(directory: Path, n: int, seed: int = 0) -> None:
    import sympy as sp
    import worked_examples
    from derive.kinds import derive
    from derive.core.evaluate import evaluate
    from derive.grading.grade import rounded
    from derive.kinds import load
    from derive.core.steps import Given
    d = derive(load(worked_examples.path("001_4_net_222")))
    true = evaluate(d)
    names = [s.name for s in d.steps if not isinstance(s, Given)]
    rng = random.Random(seed)
    for k in range(n):
        values = true
        if k % 3 == 1:  # perturb h1 and carry it through the rest
            from derive.core.evaluate import carry
            h1 = sp.Symbol("h1", real=True)
            values, _ = carry(d, true, {h1: sp.Rational(rounded(true[h1], 4)) + sp.Rational(1, 100)})
            values[h1] = __import__("derive.core.evaluate", fromlist=["rational"]).rational(
                sp.Rational(rounded(true[h1], 4)) + sp.Rational(1, 100))
        lines = ['problem = "001_4_net_222"', f'student = "student {k:04d}"', "[answers]"]
        for name in names:
            sym = sp.Symbol(name, real=True)
            digits = 2 if (k % 5 == 2 and rng.random() < 0.3) else 4
            lines.append(f'{name} = "{rounded(values[sym], digits)}"')
        (directory / f"s{k:04d}.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args()
    from derive.grading.submissions import grade, summary
    with tempfile.TemporaryDirectory() as tmp:
        make_submissions(Path(tmp), args.n)
        t0 = time.perf_counter()
        subs = grade("001_4_net_222", [tmp], jobs=args.jobs)
        elapsed = time.perf_counter() - t0
    s = summary(subs)
    answers = sum(len(x["records"]) for x in subs)
    print(f"{len(subs)} submissions, {answers} answers graded in {elapsed:.1f} s "
          f"({1000 * elapsed / len(subs):.1f} ms per submission); verdicts {s['verdicts']}")


if __name__ == "__main__":
    main()
