"""What every subcommand shares: the exit statuses and the checks of numeric options and spec names.

Exit statuses, the same in every command (docs/guide.md): 0 done, 1 wrong numbers or answers
found, 2 unusable input or usage (one line on stderr naming it).
"""
from __future__ import annotations

import argparse
import difflib
import math
from pathlib import Path
from typing import Callable

from derive.core.errors import InputError, SpecError

EXIT_OK, EXIT_WRONG, EXIT_INPUT = 0, 1, 2


MAX_SECONDS = 1e6


def positive_float(text: str) -> float:
    """An argparse type: a number of seconds, > 0 and at most MAX_SECONDS."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0 and <= {MAX_SECONDS:g}, got {text!r}")
    return value


def int_from(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` (to ``high``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"expected an integer {span}, got {text!r}")
        return value
    parse.__name__ = "integer"
    return parse


def spec_paths(args: list[str]) -> list:
    import worked_examples
    if not args:
        return [worked_examples.path(n) for n in worked_examples.names()]
    paths = []
    for a in args:
        try:
            paths.append(worked_examples.resolve(a))
        except KeyError:
            hint = difflib.get_close_matches(a, worked_examples.names(), n=3)
            extra = f"; did you mean {', '.join(hint)}?" if hint else " (see 'nnderive list')"
            raise InputError(f"{a}: no such file and no bundled example of that name{extra}") from None
    return paths


def in_file(path, work: Callable):
    """Run ``work()``, naming the spec file in any SpecError it raises."""
    name = Path(path).name
    try:
        return work()
    except SpecError as err:
        if err.path.startswith(name):
            raise
        raise SpecError(f"{name}: {err.path}" if err.path else name, err.message) from None
