"""The ``nnderive`` command.

Exit codes: 0 success (for ``verify``: no stated number is wrong and no formula differs), 1 some
stated number is wrong or a formula differs, 2 unusable input (one line on stderr naming it).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
from typing import Callable

from derive import __version__
from derive.core.errors import InputError, SpecError
from derive.core.commandline import EXIT_INPUT, EXIT_OK, EXIT_WRONG, in_file, int_from, positive_float, spec_paths
from derive.core.files import OutputError


def _verify_one(path) -> dict:
    from derive.verify.report import report_dict
    from derive.kinds import load
    from derive.verify.stated import verify_spec
    return in_file(path, lambda: report_dict(verify_spec(load(path))))


def _solve_one(path) -> dict:
    from derive.kinds import derive
    from derive.verify.report import solve_dict
    from derive.kinds import load

    def work():
        spec = load(path)
        derivation = derive(spec)
        if derivation is None:
            raise SpecError("", "a spec of formulas only has no quantities to solve")
        return solve_dict(spec.name, derivation)
    return in_file(path, work)


def _limited(fn: Callable, path, timeout: float):
    from derive.core.sandbox import Limit, run
    try:
        return run(fn, path, timeout=timeout)
    except Limit as err:
        raise InputError(f"{path}: {err}") from None


def cmd_list(args) -> int:
    import worked_examples
    from derive.kinds import load
    rows = []
    for name in worked_examples.names():
        spec = load(worked_examples.path(name))
        rows.append({"name": name, "title": spec.title, "source": spec.source})
    if args.json:
        print(json.dumps({"examples": rows}, ensure_ascii=False, indent=2))
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['name']:<{width}}  {r['title']}\n{'':<{width}}  source: {r['source']}")
    return EXIT_OK


def cmd_verify(args) -> int:
    from derive.verify.report import summary_dicts, summary_line, text_table
    from derive.core.sandbox import Limit, run_many
    started = time.perf_counter()
    _preload()
    paths = spec_paths(args.specs)
    examples = run_many(_verify_one, paths, timeout=args.timeout, jobs=args.jobs)
    for path, ex in zip(paths, examples):
        if isinstance(ex, Limit):
            raise InputError(f"{path}: {ex}")
        if isinstance(ex, BaseException):
            raise ex
    total = summary_dicts(examples)
    if args.json:
        print(json.dumps({"examples": examples, "summary": total}, ensure_ascii=False, indent=2))
    elif args.markdown:
        from derive.verify.report import markdown
        print(markdown(examples), end="")
    else:
        for ex in examples:
            print(text_table(ex))
            print()
        print(f"{len(examples)} example{'s' if len(examples) != 1 else ''}: {summary_line(total)} "
              f"({time.perf_counter() - started:.1f} s)")
    return EXIT_WRONG if total.get("wrong") or total.get("differs") else EXIT_OK


_WARM_UP = """
[network]
input = ["0.5", "-1"]
target = ["1", "0"]
loss = "half_sse"
learning_rate = "0.5"
[[network.layer]]
weights = [["0.1", "0.2"], ["0.3", "-0.4"]]
bias = ["0.1", "0.2"]
activation = "sigmoid"
[stated]
h1 = ["0.5", "0.4"]
[[claim]]
lhs = "dL_dz1"
rhs = "grad_y * gprime1"
"""


def _preload() -> None:
    """Import the engine and verify a tiny spec once here, so that each forked worker starts with
    SymPy's machinery loaded and its caches warm (copy-on-write) instead of building them again:
    for a small spec that is most of its time."""
    from derive import kinds
    from derive.verify import claims, report, stated  # noqa: F401  (loaded here, before the workers fork)
    kinds.kinds()
    stated.verify_spec(kinds.loads(_WARM_UP, name="warm-up"))


def cmd_solve(args) -> int:
    from derive.verify.report import solve_text
    result = _limited(_solve_one, spec_paths([args.spec])[0], args.timeout)
    print(json.dumps(result, indent=2) if args.json else solve_text(result))
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (exit 2), like every other input error."""

    def error(self, message: str):
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnderive",
        description="Derive backpropagation symbolically and check every number and formula against it.",
        epilog="Docs: docs/guide.md.  A SPEC is a .toml/.json file or the name of a bundled example.")
    parser.add_argument("--version", action="version", version=f"nnderive {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="list the bundled worked examples")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("verify", help="check every stated number (exact/carried/wrong) and formula",
                       description="For every stated number: the engine's exact value, the value recomputed "
                                   "from the stated inputs, and a verdict. Exit 1 if any is wrong.")
    p.add_argument("specs", nargs="*", metavar="SPEC", help="spec files or example names (default: all bundled)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--markdown", action="store_true", help="print a Markdown report (docs/verdicts.md)")
    p.add_argument("--timeout", type=positive_float, default=60.0, help="seconds allowed per spec (default 60)")
    p.add_argument("--jobs", type=int_from(1, 256), default=None, help="specs checked at once (default: one per CPU)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("solve", help="every quantity of a problem (forward, loss, gradients, update)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--timeout", type=positive_float, default=60.0, help="seconds allowed (default 60)")
    p.set_defaults(func=cmd_solve)

    for module in _EXTENSIONS:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).register(sub)
    return parser


# Modules that add subcommands: each defines ``register(subparsers)`` and keeps its heavy imports
# (Numba, TeX) inside the command function, so ``nnderive --help`` stays fast.
_EXTENSIONS = ["derive.handout.assemble", "derive.grading.submissions", "derive.grading.variants", "derive.serve", "kernels.cli"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_INPUT
    try:
        return args.func(args)
    except (SpecError, InputError, OutputError) as err:
        print(f"nnderive: error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("nnderive: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
