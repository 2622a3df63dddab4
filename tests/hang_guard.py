"""A hang guard for unit tests: a generous limit that only catches a test that never ends.

Speed is measured in ``benchmarks/`` (``python benchmarks/bench_timings.py``), never asserted in a
unit test: a loaded machine would fail a timing that is fine on a quiet one.
"""
from __future__ import annotations

import contextlib
import signal

HANG_SECONDS = 120


class Hung(AssertionError):
    pass


@contextlib.contextmanager
def hang_guard(seconds: int = HANG_SECONDS):
    """Fail (raise :class:`Hung`) when the block runs longer than ``seconds``; SIGALRM, main thread."""
    def alarm(signum, frame):
        raise Hung(f"still running after {seconds} s: a hang, not a slow machine")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
