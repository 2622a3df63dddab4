"""Run one piece of work in a forked worker with a hard wall-clock limit and a memory cap.

``signal.alarm`` cannot interrupt SymPy or big-integer arithmetic stuck inside one C call, and
a runaway expression can exhaust memory; a separate process can be killed and capped.  Work
functions return plain data (dicts, lists, strings, numbers), which is all that crosses back.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import resource
import time
import traceback
from typing import Any, Callable

from derive.core.errors import SpecError

DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY_MB = 2048


class Limit(RuntimeError):
    """The work ran out of time or memory, or its worker died; the message says which."""


def _address_space() -> int:
    """Bytes of address space this process holds now (what a forked worker inherits), 0 if unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _worker(conn, fn, args, memory_mb, timeout=None):
    try:
        if memory_mb:
            # the cap is on what the work adds: a worker forked from a process that has mapped
            # PyTorch, JAX or Dask starts with gigabytes of address space it does not use
            limit = _address_space() + memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if timeout:
            # A backstop for the parent's wall-clock kill: should the parent die first, the kernel
            # still ends a worker stuck in C-level arithmetic once it has used this much CPU time.
            cpu = int(math.ceil(timeout)) + 1
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        result = fn(*args)
        conn.send(("ok", result))
    except SpecError as err:
        conn.send(("spec", (err.path, err.message)))
    except MemoryError:
        conn.send(("limit", f"used more than {memory_mb} MB of memory"))
    except RecursionError:
        conn.send(("limit", "nested too deeply"))
    except BaseException as err:  # noqa: BLE001 - everything must come back as a message
        conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}"))
    finally:
        conn.close()


def _start(fn, args, memory_mb, timeout=None):
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker, args=(send, fn, args, memory_mb, timeout), daemon=True)
    proc.start()
    send.close()
    return proc, recv


def _finish(proc, recv, ready: bool, timeout: float) -> tuple[str, Any]:
    try:
        if not ready:
            return "limit", f"took longer than {timeout:g} s"
        try:
            return recv.recv()
        except (EOFError, OSError):
            return "limit", "the worker died (out of memory?)"
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        recv.close()


def _unwrap(kind: str, payload: Any) -> Any:
    if kind == "ok":
        return payload
    if kind == "spec":
        return SpecError(*payload)
    if kind == "limit":
        return Limit(payload)
    return RuntimeError(payload)


def run(fn: Callable[..., Any], *args, timeout: float = DEFAULT_TIMEOUT,
        memory_mb: int | None = DEFAULT_MEMORY_MB) -> Any:
    """``fn(*args)`` in a forked process; raises :class:`Limit` past ``timeout`` seconds or ``memory_mb``.

    A :class:`SpecError` raised by ``fn`` is raised again here; any other exception becomes
    ``RuntimeError`` carrying the worker's traceback.
    """
    if os.environ.get("NNDERIVE_NO_SANDBOX") == "1":
        return fn(*args)
    proc, recv = _start(fn, args, memory_mb, timeout)
    result = _unwrap(*_finish(proc, recv, recv.poll(timeout), timeout))
    if isinstance(result, BaseException):
        raise result
    return result


def _budget_of(budget, group) -> float:
    return budget[group] if isinstance(budget, dict) else budget


class OverBudget(Limit):
    """The item was not started: its group had used up its time budget."""


def run_many(fn: Callable[[Any], Any], items: list, *, timeout: float = DEFAULT_TIMEOUT,
             memory_mb: int | None = DEFAULT_MEMORY_MB, jobs: int | None = None,
             progress: Callable[[int, int], None] | None = None,
             groups: list | None = None, budget: float | dict | None = None) -> list:
    """``[fn(item) for item in items]``, up to ``jobs`` workers at a time, each with its own limits.

    A failed item's entry is the exception (SpecError, Limit or RuntimeError) instead of a result,
    so one bad item never loses the others.  ``progress(done, total)`` is called after each item.

    With ``groups`` (a key per item) and ``budget`` (seconds), the items of one group together use
    at most ``budget`` seconds of workers: each starts with the time its group has left (less what
    its running items may still use) as its limit, and once nothing is left the rest of the group
    is not started (:class:`OverBudget`).  ``budget`` may also be a dict: each group's own seconds.
    """
    jobs = max(1, jobs or os.cpu_count() or 1)
    results: list = [None] * len(items)
    left: dict = {}        # group -> seconds not yet spent nor reserved by a running item
    if os.environ.get("NNDERIVE_NO_SANDBOX") == "1":
        for i, item in enumerate(items):
            try:
                results[i] = fn(item)
            except (SpecError, Limit, RuntimeError) as err:
                results[i] = err
            if progress:
                progress(i + 1, len(items))
        return results
    pending = list(enumerate(items))[::-1]
    running: dict = {}  # recv -> (index, proc, deadline)
    done = 0
    while pending or running:
        while pending and len(running) < jobs:
            i, item = pending.pop()
            limit = timeout
            if budget is not None and groups is not None:
                g = groups[i]
                remaining = left.setdefault(g, _budget_of(budget, g))
                limit = min(timeout, remaining)
                if remaining < min(0.05, timeout):     # the group's time is used up (not a short limit)
                    results[i] = OverBudget(f"not started: the {_budget_of(budget, g):g} s allowed for this group "
                                            "were used up")
                    done += 1
                    if progress:
                        progress(done, len(items))
                    continue
                left[g] -= limit
            proc, recv = _start(fn, (item,), memory_mb, limit)
            running[recv] = (i, proc, time.monotonic(), limit)
        if not running:
            continue
        now = time.monotonic()
        wait_for = max(0.0, min(t0 + lim for _, _, t0, lim in running.values()) - now)
        ready = set(mp_connection.wait(list(running), timeout=wait_for))
        now = time.monotonic()
        for recv in list(running):
            i, proc, started, limit = running[recv]
            if recv in ready or now >= started + limit:
                del running[recv]
                results[i] = _unwrap(*_finish(proc, recv, recv in ready, limit))
                if limit < timeout and recv not in ready:    # stopped by its group's budget, not its own limit
                    results[i] = OverBudget(f"stopped: the {_budget_of(budget, groups[i]):g} s allowed for this group "
                                            "were used up")
                if budget is not None and groups is not None:
                    left[groups[i]] += max(0.0, limit - (now - started))   # give back what was not used
                done += 1
                if progress:
                    progress(done, len(items))
    return results
