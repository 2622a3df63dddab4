"""Write a class's worth of answer files for docs/examples/hw_222.toml: honest and hostile.

    python benchmarks/grading_load.py OUT_DIR [--honest 950] [--hostile 50] [--seed 0]
    /usr/bin/time -v nnderive check docs/examples/hw_222.toml OUT_DIR --json > grades.json

Honest files are the true values rounded to 4 decimals, with a few slips a student makes (a
number off in its last digits, one rounded to 2 decimals, one formula in place of a number).
Hostile files try to earn marks without the work or to cost the grader time and memory:
answers that name the asked quantity, all zeros, "0e9" followed by a constant, a product of
binomials in every slot, and one key holding a very long list.  The true values come from the
engine (`nnderive solve --json`): this script makes load, it does not judge anything.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

SPEC = Path(__file__).resolve().parent.parent / "docs" / "examples" / "hw_222.toml"
ASK = ["h1", "h2", "o1", "o2", "Error", "grad_o1", "grad_In_o1", "grad_w5", "grad_h1", "grad_w1", "w5_new"]
FORMULAS = {
    "grad_o1": r"$o_1 - y_1$",
    "grad_In_o1": r"$(o_1 - y_1)\,o_1(1 - o_1)$",
    "grad_w5": r"$(o_1 - y_1)\,o_1(1 - o_1)\,h_1$",
}
SELF = {
    "h1": r"$h_1$", "h2": r"$h_2$", "o1": r"$o_1$", "o2": r"$o_2$", "Error": r"$E$",
    "grad_o1": r"$\frac{\partial E}{\partial o_1}$", "grad_In_o1": r"$\frac{\partial E}{\partial In_{o1}}$",
    "grad_w5": r"$\frac{\partial E}{\partial w_5}$", "grad_h1": r"$\frac{\partial E}{\partial h_1}$",
    "grad_w1": r"$\frac{\partial E}{\partial w_1}$", "w5_new": r"$\mathrm{w5_new}$",
}


def true_values() -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "derive.cli", "solve", str(SPEC), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["quantities"]


def toml_file(student: str, answers: dict[str, str]) -> str:
    lines = ['problem = "hw_222"', f'student = "{student}"', "", "[answers]"]
    for k, v in answers.items():
        lines.append(f"{k} = '{v}'" if v.startswith("$") else f'{k} = "{v}"')
    return "\n".join(lines) + "\n"


def honest(rng: random.Random, values: dict[str, float]) -> dict[str, str]:
    a = {q: f"{values[q]:.4f}" for q in ASK}
    for q in rng.sample(ASK, rng.randint(0, 2)):
        a[q] = f"{values[q] + rng.choice([-1, 1]) * rng.uniform(0.001, 0.05):.4f}"
    if rng.random() < 0.3:
        q = rng.choice(ASK)
        a[q] = f"{values[q]:.2f}"
    if rng.random() < 0.3:
        q = rng.choice(list(FORMULAS))
        a[q] = FORMULAS[q]
    return a


def hostile(i: int) -> str:
    kind = i % 5
    if kind == 0:
        return toml_file(f"hostile {i}", dict(SELF))
    if kind == 1:
        return toml_file(f"hostile {i}", {q: "0" for q in ASK})
    if kind == 2:
        return toml_file(f"hostile {i}", {q: ("0e9" if j == 0 else "0.1234") for j, q in enumerate(ASK)})
    if kind == 3:
        product = r"\cdot".join(f"(w_{1 + k % 8} + {k + 1})" for k in range(18))
        return toml_file(f"hostile {i}", {q: f"${product}$" for q in ASK})
    return 'problem = "hw_222"\nstudent = "long list"\n[answers]\nh1 = [' + ", ".join(["0"] * 200_000) + "]\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--honest", type=int, default=950)
    ap.add_argument("--hostile", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    values = true_values()
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.honest):
        (args.out / f"honest_{i:04d}.toml").write_text(toml_file(f"student {i}", honest(rng, values)))
    for i in range(args.hostile):
        (args.out / f"hostile_{i:04d}.toml").write_text(hostile(i))
    print(f"wrote {args.honest} honest and {args.hostile} hostile answer files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
