"""Subcommands ``nnderive bench`` and ``nnderive demo``; Numba, torch and JAX load inside them."""
from __future__ import annotations

import json
import sys

WORKLOADS = ("tiny", "many", "many-f32", "nielsen", "big", "cold")


def register(subparsers) -> None:
    from derive.core.commandline import int_from
    p = subparsers.add_parser(
        "bench", help="benchmark the generated kernels against NumPy, PyTorch and JAX",
        description="Workloads tiny, many, many-f32, nielsen, big and cold start (docs/kernels.md), every contender "
                    "checked against the generated kernel and timed side by side; medians per call.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quick", action="store_true", help="fewer and shorter rounds")
    p.add_argument("--only", metavar="NAMES", help=f"comma-separated workloads among {', '.join(WORKLOADS)}")
    p.add_argument("--cache", metavar="DIR", help="kernel cache directory (default: $NNDERIVE_CACHE or ~/.cache)")
    p.add_argument("--no-torch-compile", action="store_true",
                   help="leave out the torch.compile peers (compiling them takes minutes on a loaded machine)")
    p.set_defaults(func=cmd_bench)

    p = subparsers.add_parser(
        "demo", help="train a network with the generated kernels (xor, digits)",
        description="xor: the XOR net of slide 003 until its error is below 0.01. digits: scikit-learn's "
                    "8×8 digits (needs the 'digits' extra), test accuracy on a held-out quarter.")
    p.add_argument("name", choices=["xor", "digits"])
    p.add_argument("--seed", type=int_from(0), default=None, help="random seed, >= 0 (default: the documented one)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_demo)


def cmd_bench(args) -> int:
    from derive.core.errors import InputError
    import kernels.bench as bench
    only = None
    if args.only:
        only = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = set(only) - set(WORKLOADS)
        if unknown:
            raise InputError(f"--only: unknown workload(s) {', '.join(sorted(unknown))} (known: {', '.join(WORKLOADS)})")
    log = (lambda s: print(s, file=sys.stderr)) if not args.json else (lambda s: None)
    result = bench.run(quick=args.quick, only=only, cache_dir=args.cache, log=log,
                       skip=("torch.compile",) if args.no_torch_compile else ())
    print(bench.main_json(result) if args.json else bench.table(result))
    return 0


def cmd_demo(args) -> int:
    from derive.core.errors import InputError
    import kernels.demos as demos
    quiet = (lambda s: None) if args.json else print
    kwargs = {} if args.seed is None else {"seed": args.seed}
    if args.name == "xor":
        result = demos.xor(log=quiet, **kwargs)
        ok = result["converged"]
    else:
        try:
            result = demos.digits(log=quiet, **kwargs)
        except RuntimeError as err:
            raise InputError(str(err)) from None
        ok = result["accuracy"] >= 0.95
    if args.json:
        print(json.dumps(result, indent=2))
    return 0 if ok else 1
