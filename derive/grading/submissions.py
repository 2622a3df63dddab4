"""``nnderive check SPEC ANSWERS...``: grade students' answer files against one problem (or its variants).

Work is split so that nothing hostile can stop the rest:

1. the spec is first loaded and solved in a sandboxed worker (time and memory limits), then once
   more in this process, so that every worker forked later inherits the prepared problem;
2. each answer file is read, parsed and its numbers graded in a worker of its own
   (:func:`derive.core.sandbox.run_many`, wall-clock limit, memory cap, CPU-time backstop);
3. each LaTeX answer is parsed and compared in a worker of its own, with a shorter limit; one
   that runs out of time or memory is ``invalid`` with that reason, and its neighbours are graded.

Exit codes: 0 when every file was graded (whatever the verdicts), 1 when a submission could not be
graded because of an internal error (reported in its records), 2 for unusable arguments.
"""
from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path
from typing import Any

from derive.core.errors import InputError, one_line
from derive.core.files import shown
from derive.core.commandline import EXIT_INPUT, EXIT_OK, EXIT_WRONG  # docs/guide.md#exit-statuses


ANSWER_SUFFIXES = (".toml", ".json")
MANIFEST = "variants.json"
MAX_FORMULAS = 200       # LaTeX answers graded per file (--max-formulas)
FORMULA_BUDGET = 120.0   # seconds of workers for one file's LaTeX answers together (--formula-budget)

_PROBLEMS: dict[str, Any] = {}   # name -> grading.Problem, filled before workers are forked


# ----------------------------------------------------------------------------- workers

def _probe(path: str) -> str:
    from derive.grading.grade import Problem
    from derive.kinds import load
    Problem.build(load(path))
    return "ok"


def _peek(path: str) -> tuple[str | None, str | None]:
    """The ``problem`` and ``student`` named by an answer file (variant mode), or None each."""
    from derive.grading.answers import read_answer_file
    data = read_answer_file(Path(path))
    name, student = data.get("problem"), data.get("student")
    return (Path(name).stem if isinstance(name, str) and len(name) < 300 else None,
            student.strip() if isinstance(student, str) and len(student) < 300 else None)


def _phase1(item: tuple) -> dict:
    """Read one answer file and grade its numbers; LaTeX answers are listed for phase 2.

    ``item`` is (problem, path) or (problem, path, flag): a flag (the file names another variant
    than its student's) becomes a record of its own, and the file is graded against ``problem``."""
    from derive.core.errors import SpecError
    from derive.grading.answers import INVALID, Record, read_answer_file
    from derive.grading.grade import grade_data
    problem_name, path, flag = (*item, None)[:3]
    p = _PROBLEMS[problem_name]
    out = {"file": path, "student": None, "problem": problem_name, "records": [], "latex": [], "flag": flag}
    try:
        data = read_answer_file(Path(path))
    except SpecError as err:
        out["records"] = [Record(None, None, None, INVALID, 0.0, _total_points(p), None, err.message).as_dict()]
        return out
    student = data.get("student")
    out["student"] = student[:200] if isinstance(student, str) else None
    named = data.get("problem")
    if flag is None and named is not None and (not isinstance(named, str) or Path(named).stem != problem_name):
        reason = f"this answer file is for problem {str(named)[:80]!r}, not {problem_name!r}"
        out["records"] = [Record(None, None, None, INVALID, 0.0, _total_points(p), None, reason).as_dict()]
        return out
    records, latex = grade_data(p, data)
    out["records"] = [r.as_dict() for r in records]
    if flag is not None:
        out["records"].insert(0, Record("problem", None, str(named)[:80], INVALID, 0.0, 0.0, problem_name,
                                        flag).as_dict())
        latex = [(i + 1, a) for i, a in latex]
    out["latex"] = [(i, a.quantity, a.index, a.text) for i, a in latex]
    return out


def _phase1_chunk(item: tuple[str, list[tuple[str, str | None]]]) -> list[dict]:
    """Several files in one worker (warm caches, one fork); a chunk that fails is re-run file by file."""
    name, paths = item
    return [_phase1((name, path, flag)) for path, flag in paths]


def _phase2(item: tuple) -> dict:
    from derive.grading.grade import grade_latex
    problem_name, quantity, index, text, seed = item
    return grade_latex(_PROBLEMS[problem_name], quantity, index, text, seed)


def _total_points(p) -> float:
    try:
        return float(sum(p.policy.points_of(n) for n, _ in p.asked()))
    except Exception:  # noqa: BLE001 - a bad [grading] is reported when the problem loads
        return 0.0


# ----------------------------------------------------------------------------- orchestration

class Entry:
    """One submission found on the command line: its path, its name for outputs, or why it is not read."""

    def __init__(self, path: Path, name: str, problem: str | None = None):
        self.path, self.name, self.problem = path, name, problem

    def __fspath__(self) -> str:
        return str(self.path)


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return what
    return "not a regular file"


def _walk(root: Path) -> list[Entry]:
    """Answer files under ``root``; links are never followed, odd files become entries with a problem."""
    import os
    out: list[Entry] = []
    real_root = root.resolve()
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        for n in sorted(names + [d for d in dirs if Path(folder, d).is_symlink()]):
            f = Path(folder, n)
            if f.suffix.lower() not in ANSWER_SUFFIXES:
                continue
            rel = str(f.relative_to(root))
            try:
                st = f.lstat()
            except OSError as err:
                out.append(Entry(f, rel, f"cannot read: {err.strerror or err}"))
                continue
            if stat.S_ISLNK(st.st_mode):
                try:
                    dest = f.resolve(strict=True)
                except (OSError, RuntimeError):
                    out.append(Entry(f, rel, "a symbolic link to nothing readable (not followed)"))
                    continue
                if real_root not in dest.parents:
                    out.append(Entry(f, rel, "a symbolic link to a file outside the submissions folder (not followed)"))
                else:
                    out.append(Entry(f, rel, f"a symbolic link to another submission, {str(dest.relative_to(real_root))!r} "
                                             "(not followed)"))
            elif not stat.S_ISREG(st.st_mode):
                out.append(Entry(f, rel, f"{_kind(st.st_mode)}, not a regular file (not read)"))
            else:
                out.append(Entry(f, rel))
    return out


def answer_files(args: list[str]) -> list[Entry]:
    """Every submission named by the arguments (files, or folders searched for .toml/.json files)."""
    files: list[Entry] = []
    for a in args:
        p = Path(a)
        try:
            st = p.stat()
        except OSError:
            if p.is_symlink():
                files.append(Entry(p, p.name, "a symbolic link to nothing readable"))
                continue
            raise InputError(f"{shown(a)}: no such file or directory") from None
        if stat.S_ISDIR(st.st_mode):
            files.extend(_walk(p))
        elif stat.S_ISREG(st.st_mode):
            files.append(Entry(p, p.name))
        else:
            files.append(Entry(p, p.name, f"{_kind(st.st_mode)}, not a regular file (not read)"))
    if not files:
        raise InputError("no answer files (.toml or .json) found")
    return files


def result_names(files: list[Entry]) -> list[str]:
    """Gradescope result names (path relative to the submissions folder); a clash is an InputError."""
    names = [str(Path(e.name).with_suffix("")) + ".results.json" for e in files]
    seen: dict[str, list[Entry]] = {}
    for n, e in zip(names, files):
        seen.setdefault(n, []).append(e)
    clashes = {n: es for n, es in seen.items() if len(es) > 1}
    if clashes:
        n, es = sorted(clashes.items())[0]
        raise InputError(f"--gradescope: {', '.join(shown(str(e.path)) for e in es)} would all be written as "
                         f"{shown(n)}; rename them or grade them apart")
    return names


SPEC_TIMEOUT = 120.0     # seconds to load and solve the lecturer's spec (--timeout is per answer file)
_LOADED_FROM: dict = {}  # (spec path, size, mtime) -> its name in _PROBLEMS


def load_problem(spec_path: Path, name: str | None = None, timeout: float = SPEC_TIMEOUT):
    """Load and solve a spec in a sandbox first, then here; registered under ``name``."""
    from derive.grading.grade import Problem
    from derive.core.sandbox import Limit, run
    from derive.kinds import load
    try:
        st = Path(spec_path).stat()
        stamp = (str(Path(spec_path).resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = None
    if stamp is not None and _LOADED_FROM.get(stamp) in _PROBLEMS and (name is None or name == _LOADED_FROM[stamp]):
        return _PROBLEMS[_LOADED_FROM[stamp]]      # this process built it already (a Dask worker's next file)
    try:
        run(_probe, str(spec_path), timeout=timeout)
    except Limit as err:
        raise InputError(f"{spec_path}: {err}") from None
    problem = Problem.build(load(spec_path))
    _PROBLEMS[name or problem.spec.name] = problem
    if stamp is not None:
        _LOADED_FROM[stamp] = name or problem.spec.name
    return problem


def warm_up(problem) -> None:
    """Grade a key and parse a few answers here, so that forked workers inherit warm caches
    (SymPy's, and latex2sympy2's parser tables)."""
    from derive.grading.grade import grade_data, rounded
    from derive.grading.parse import LatexError, parse_answer
    if problem.values:
        key = {}
        for step in problem.derivation.steps:
            for sym in step.target.symbols():
                key[sym.name] = rounded(problem.values[sym], problem.policy.asked_decimals(step.name))
        answers = {}
        for step in problem.derivation.steps:
            q = step.target
            if q.shape:
                for i in q.indices():
                    answers[f"{q.name}[{','.join(map(str, i))}]"] = key[q.symbol(i).name]
            else:
                answers[q.name] = key[q.name]
        grade_data(problem, {"answers": answers})
    leaves = [n for n, v in problem.vocab.values.items() if not hasattr(v, "shape")][:2] or ["1"]
    a = leaves[0]
    b = leaves[-1]
    for text in (f"$({a} - {b}) \\cdot 2 {a}(1 - {b})$", f"$\\frac{{{a}}}{{2}} + e^{{-{b}}}$",
                 f"$\\sqrt{{{a}}} - \\ln({b})^2 + |{a}|$", f"${a}^{{2}} \\odot {b}$"):
        try:
            parse_answer(text, problem.vocab)
        except (LatexError, Exception):  # noqa: BLE001 - warming only
            pass


def grade(spec: str, answers: list[str], *, jobs: int | None = None, timeout: float = 60.0,
          latex_timeout: float = 10.0, memory_mb: int = 1024, progress=None,
          files: list[Entry] | None = None, max_formulas: int | None = None,
          formula_budget: float | None = None, roster: tuple[bytes, set[str]] | None = None) -> list[dict]:
    """Grade every answer file; returns the submissions in the ``--json`` format.  ``max_formulas`` and
    ``formula_budget`` (the command's options) override the spec's ``[grading]``; None: the spec's, else
    the defaults."""
    import worked_examples
    from derive.core.sandbox import run_many
    files = files if files is not None else answer_files(answers)
    spec_path = Path(spec)
    groups: dict[str, list[int]] = {}
    results: list[dict | None] = [None] * len(files)
    readable = [i for i, f in enumerate(files) if f.problem is None]
    flags: dict[int, str] = {}
    if roster is not None and not spec_path.is_dir():
        raise InputError("--roster needs the folder written by 'nnderive variants --roster' as SPEC")
    if spec_path.is_dir():
        manifest = _manifest(spec_path)
        peeked = run_many(_peek, [str(files[i].path) for i in readable], timeout=timeout, memory_mb=memory_mb,
                          jobs=jobs)
        for i, got in zip(readable, peeked):
            if isinstance(got, BaseException):
                results[i] = _failed(files[i], _reason(got))
                continue
            name, student = got
            if roster is not None:
                name, why = _assigned(roster, manifest, name, student)
                if name is None:
                    results[i] = _failed(files[i], why)
                    continue
                if why:
                    flags[i] = why
            if name not in manifest:
                results[i] = _failed(files[i], f"names no variant of {spec_path} (give problem = \"variant_007\")")
            else:
                groups.setdefault(name, []).append(i)
        for name in groups:
            load_problem(spec_path / manifest[name], name, max(timeout, SPEC_TIMEOUT))
        total_of = {name: _total_points(_PROBLEMS[name]) for name in groups}
        for r in results:   # every variant has the same [grading]: a file that fails scores 0 of that total
            if r is not None and total_of:
                r["records"][0]["max_score"] = next(iter(total_of.values()))
    else:
        try:
            path = worked_examples.resolve(spec)
        except KeyError:
            raise InputError(f"{spec}: no such file and no bundled example of that name (see 'nnderive list')") from None
        if not path.is_file():
            raise InputError(f"{spec}: no such file")
        problem = load_problem(path, None, max(timeout, SPEC_TIMEOUT))
        groups[problem.spec.name] = readable
        total_of = {problem.spec.name: _total_points(problem)}
    fallback = next(iter(total_of.values()), 0.0)
    for i, f in enumerate(files):
        if f.problem is not None:
            results[i] = _failed(f, f.problem, fallback)
    for name in groups:
        warm_up(_PROBLEMS[name])
    total = len(files)
    done = [sum(r is not None for r in results)]

    def tick(_d, _t):
        done[0] += 1
        if progress:
            progress(done[0], total)

    for name, idx in groups.items():
        chunks = _chunks(idx, jobs)
        out = run_many(_phase1_chunk, [(name, [(str(files[i].path), flags.get(i)) for i in c]) for c in chunks],
                       timeout=timeout,
                       memory_mb=memory_mb, jobs=jobs, progress=lambda d, t, n=[0]: None)
        retry = []
        for c, r in zip(chunks, out):
            if isinstance(r, list):
                for i, sub in zip(c, r):
                    results[i] = sub
                    tick(0, 0)
            else:
                retry.extend(c)
        if retry:  # a chunk failed as a whole: grade its files one per worker so only the culprit fails
            again = run_many(_phase1, [(name, str(files[i].path), flags.get(i)) for i in retry], timeout=timeout,
                             memory_mb=memory_mb, jobs=jobs, progress=tick)
            for i, r in zip(retry, again):
                results[i] = r if isinstance(r, dict) else _failed(files[i], _reason(r),
                                                                   _total_points(_PROBLEMS[name]), name)
    caps = {name: formula_caps(_PROBLEMS[name].policy, max_formulas, formula_budget) for name in groups}
    _phase_latex(results, groups, jobs, latex_timeout, memory_mb, caps)
    return [_finish(r) for r in results]


def formula_caps(policy, max_formulas: int | None = None, formula_budget: float | None = None) -> dict:
    """The formula cap and budget of one file and where each comes from: the command's option when
    given, else the spec's ``[grading]`` key, else the default."""
    def pick(option, key, spec_value, default):
        if option is not None:
            return option, "--" + key.replace("_", "-")
        if spec_value is not None:
            return spec_value, f"[grading] {key}"
        return default, "--" + key.replace("_", "-")
    (mf, mf_from), (fb, fb_from) = (pick(max_formulas, "max_formulas", policy.max_formulas, MAX_FORMULAS),
                                    pick(formula_budget, "formula_budget", policy.formula_budget, FORMULA_BUDGET))
    return {"max_formulas": mf, "max_formulas_from": mf_from, "formula_budget": fb, "formula_budget_from": fb_from}


# ----------------------------------------------------------------------------- on a Dask cluster

def grade_on_cluster(address, spec: str, files: list[Entry], *, timeout: float = 60.0, latex_timeout: float = 10.0,
                     memory_mb: int = 1024, max_formulas: int | None = None, formula_budget: float | None = None,
                     progress=None) -> list[dict]:
    """:func:`grade`, one answer file per Dask task: each Dask worker runs this module's own
    :func:`grade` on its file, so the sandboxed workers, their limits and the verdicts are the
    ones of a local run.  ``address`` is a scheduler address or a ``distributed.Client``; its
    workers must be non-daemonic to fork graders (``DASK_DISTRIBUTED__WORKER__DAEMON=False``)."""
    import worked_examples
    from derive.core.errors import SpecError
    from derive.grading.answers import read_bounded
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--cluster needs the 'cluster' extra: pip install 'nnderive[cluster]'") from None
    if Path(spec).is_dir():
        raise InputError("--cluster grades against one spec; grade a variants folder without --cluster")
    try:
        path = worked_examples.resolve(spec)
    except KeyError:
        raise InputError(f"{spec}: no such file and no bundled example of that name (see 'nnderive list')") from None
    problem = load_problem(path, None, max(timeout, SPEC_TIMEOUT))       # its total, for files that fail here
    total, name = _total_points(problem), problem.spec.name
    source = (path.read_text(encoding="utf-8"), path.suffix, path.name)
    limits = {"timeout": timeout, "latex_timeout": latex_timeout, "memory_mb": memory_mb,
              "max_formulas": max_formulas, "formula_budget": formula_budget}
    try:
        client = address if isinstance(address, Client) else Client(address, timeout="10s")
    except OSError as err:
        raise InputError(f"--cluster {address}: cannot reach the scheduler ({err})") from None
    out: list = [None] * len(files)
    futures = {}
    for i, f in enumerate(files):
        if f.problem is not None:
            out[i] = _finish(_failed(f, f.problem, total, name))
            continue
        try:
            data = read_bounded(f.path)
        except (SpecError, OSError) as err:
            out[i] = _finish(_failed(f, getattr(err, "message", None) or str(err), total, name))
            continue
        futures[i] = client.submit(_grade_remote, source, f.path.name, data, str(f.path), limits, pure=False)
    for k, (i, fut) in enumerate(futures.items(), start=1):
        try:
            out[i] = fut.result()
        except Exception as err:  # noqa: BLE001 - a lost worker: this file's record says so
            out[i] = _finish(_failed(files[i], f"internal error: {type(err).__name__}: {err}", total, name))
        if progress:
            progress(k, len(futures))
    if not isinstance(address, Client):
        client.close()
    return out


def _grade_remote(source: tuple[str, str, str], file_name: str, data: bytes, shown_path: str, limits: dict) -> dict:
    """On a Dask worker: the spec written once per worker, the answer file in a fresh folder, graded by
    :func:`grade` exactly as on one machine."""
    import hashlib
    import tempfile
    text, suffix, spec_name = source
    digest = hashlib.sha256(f"{suffix}\0{spec_name}\0{text}".encode()).hexdigest()[:16]
    spec_dir = Path(tempfile.gettempdir()) / f"nnderive-cluster-{digest}"
    spec_file = spec_dir / spec_name
    if not spec_file.exists():
        from derive.core.files import write_atomic
        write_atomic(spec_file, text)
    with tempfile.TemporaryDirectory(prefix="nnderive-answer-") as tmp:
        answer = Path(tmp) / file_name
        answer.write_bytes(data)
        (sub,) = grade(str(spec_file), [str(answer)], jobs=1, **limits)
    sub["file"] = shown_path
    return sub


def _assigned(roster: tuple[bytes, set[str]], manifest: dict, named: str | None,
              student: str | None) -> tuple[str | None, str]:
    """(the variant of the file's student, a flag when the file names another one), or (None, why not)."""
    from derive.grading.roster import variant_name, variant_of
    key, ids = roster
    if not student:
        return None, "no student id: with a roster, an answer file gives student = \"<student id>\""
    if student not in ids:
        return None, f"student id {student[:80]!r} is not on the roster"
    count = len(manifest)
    mine = variant_name(variant_of(key, student, count), count)
    if named is not None and named != mine:
        return mine, (f"this file names {named[:80]}, but student {student[:80]} was given {mine}: "
                      f"graded against {mine}")
    return mine, ""


def _chunks(idx: list[int], jobs: int | None, most: int = 25) -> list[list[int]]:
    import os
    workers = max(1, jobs or os.cpu_count() or 1)
    size = max(1, min(most, -(-len(idx) // (4 * workers))))
    return [idx[k:k + size] for k in range(0, len(idx), size)]


def _phase_latex(results, groups, jobs, latex_timeout, memory_mb, caps: dict) -> None:
    """Grade the LaTeX answers: at most ``max_formulas`` per file, and at most ``formula_budget``
    seconds of workers per file (``caps``: :func:`formula_caps` per problem name); past either, the
    rest of that file's formulas are undetermined."""
    from derive.core.sandbox import OverBudget, run_many
    from derive.grading.answers import INVALID, UNDETERMINED
    items, where, owner, budget, cap_of = [], [], [], {}, {}
    for name, idx in groups.items():
        cap = caps[name]
        for i in idx:
            budget[i], cap_of[i] = cap["formula_budget"], cap
            for k, (rec, quantity, index, text) in enumerate(results[i].get("latex", [])):
                if k >= cap["max_formulas"]:
                    results[i]["records"][rec].update(
                        verdict=UNDETERMINED, expected=None,
                        feedback=f"not graded: a file may hold at most {cap['max_formulas']} formulas "
                                 f"({cap['max_formulas_from']})")
                    continue
                items.append((name, quantity, tuple(index) if index is not None else None, text, k))
                where.append((i, rec))
                owner.append(i)
    if not items:
        return
    out = run_many(_phase2, items, timeout=latex_timeout, memory_mb=memory_mb, jobs=jobs,
                   groups=owner, budget=budget)
    for (i, rec), r in zip(where, out):
        record = results[i]["records"][rec]
        if isinstance(r, dict):
            record.update(verdict=r["verdict"], expected=r["expected"], feedback=r["feedback"])
        elif isinstance(r, OverBudget):
            record.update(verdict=UNDETERMINED, expected=None,
                          feedback=f"not graded: this file's formulas used up the {cap_of[i]['formula_budget']:g} s "
                                   f"allowed per file ({cap_of[i]['formula_budget_from']})")
        else:
            record.update(verdict=INVALID, expected=None, feedback=_reason(r))


def _reason(err: BaseException) -> str:
    from derive.core.errors import SpecError
    from derive.core.sandbox import Limit
    if isinstance(err, Limit):
        return f"stopped: {err}"
    if isinstance(err, SpecError):
        return err.message
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"internal error: {first}"


def _failed(entry: Entry, reason: str, total: float = 0.0, problem: str | None = None) -> dict:
    """A submission that could not be graded: one invalid record worth the problem's whole total."""
    from derive.grading.answers import INVALID
    return {"file": str(entry.path), "student": None, "problem": problem, "latex": [],
            "internal": reason.startswith("internal"),
            "records": [{"quantity": None, "index": None, "answer": None, "verdict": INVALID, "score": 0.0,
                         "max_score": total, "expected": None, "feedback": reason}]}


def _finish(r: dict) -> dict:
    from derive.grading.grade import DEFAULT_CREDIT
    problem = _PROBLEMS.get(r.get("problem") or "")
    credit = problem.policy.credit if problem is not None else DEFAULT_CREDIT
    for rec in r["records"]:
        rec["score"] = round(rec["max_score"] * credit[rec["verdict"]], 6)
    sub = {"file": r["file"], "student": r.get("student"), "problem": r.get("problem"),
           "score": round(sum(x["score"] for x in r["records"]), 6),
           "max_score": round(sum(x["max_score"] for x in r["records"]), 6),
           "records": r["records"]}
    if r.get("internal"):
        sub["internal_error"] = True
    if r.get("flag"):
        sub["flag"] = r["flag"]
    return escaped(sub)


_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """``text`` safe to print anywhere: what is not printable (ANSI escapes, newlines, bidi overrides,
    unassigned code points) and bytes of a file name that were not UTF-8 become visible escapes."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        o = ord(ch)
        if ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= o <= 0xDCFF:               # os.fsdecode's surrogateescape of a non-UTF-8 byte
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch in _CONTROL:
            out.append(_CONTROL[ch])
        else:
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return "".join(out)


def escaped(value: Any) -> Any:
    """Every string inside ``value`` (dicts, lists) passed through :func:`escape`."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {k: escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escaped(v) for v in value]
    return value


def _manifest(directory: Path) -> dict[str, str]:
    m = directory / MANIFEST
    if not m.is_file():
        raise InputError(f"{directory}: a directory SPEC must hold the {MANIFEST} written by 'nnderive variants'")
    try:
        data = json.loads(m.read_text(encoding="utf-8"))
        return {v["name"]: v["spec"] for v in data["variants"]}
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{m}: not a variants manifest ({err})") from None


# ----------------------------------------------------------------------------- reports

def _idx(index) -> str:
    return "" if index is None else "[" + ",".join(map(str, index)) + "]"


def _cell(x: Any, width: int = 24) -> str:
    s = "—" if x is None else str(x)
    s = s.replace("\n", " ")
    return s if len(s) <= width else s[:width - 1] + "…"


def _pts(x: float) -> str:
    return f"{x:g}"


def text_report(sub: dict) -> str:
    who = f" ({sub['student']})" if sub.get("student") else ""
    lines = [f"{sub['file']}{who}: {_pts(sub['score'])} / {_pts(sub['max_score'])}"]
    head = ("quantity", "answer", "verdict", "score", "expected")
    rows = [((r["quantity"] or "—") + _idx(r["index"]), _cell(r["answer"]), r["verdict"],
             f"{_pts(r['score'])}/{_pts(r['max_score'])}", _cell(r["expected"])) for r in sub["records"]]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    lines.append(fmt.format(*head, "feedback"))
    for row, r in zip(rows, sub["records"]):
        lines.append(fmt.format(*row, r["feedback"]))
    return "\n".join(lines)


def summary(subs: list[dict]) -> dict:
    from derive.grading.answers import VERDICTS
    per_quantity: dict[str, dict[str, int]] = {}
    totals = {v: 0 for v in VERDICTS}
    for s in subs:
        for r in s["records"]:
            totals[r["verdict"]] += 1
            if r["quantity"]:
                q = per_quantity.setdefault(r["quantity"], {v: 0 for v in VERDICTS})
                q[r["verdict"]] += 1
    return {"submissions": len(subs), "verdicts": totals, "quantities": per_quantity,
            "mean_score": round(sum(s["score"] for s in subs) / len(subs), 4) if subs else 0.0}


def summary_table(subs: list[dict]) -> str:
    from derive.grading.answers import VERDICTS
    head = ("file", "student", "score", *VERDICTS)
    rows = []
    for s in subs:
        counts = {v: 0 for v in VERDICTS}
        for r in s["records"]:
            counts[r["verdict"]] += 1
        rows.append((_cell(Path(s["file"]).name, 32), _cell(s.get("student"), 20),
                     f"{_pts(s['score'])}/{_pts(s['max_score'])}", *(str(counts[v]) for v in VERDICTS)))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = ["summary", fmt.format(*head)] + [fmt.format(*row) for row in rows]
    per_q = summary(subs)["quantities"]
    if per_q:
        lines.append("")
        lines.append("by quantity (most often not correct first)")
        qhead = ("quantity", *VERDICTS)
        qrows = sorted(per_q.items(), key=lambda kv: -(sum(kv[1].values()) - kv[1]["correct"]))
        qw = [max(len(qhead[0]), *(len(k) for k, _ in qrows))] + [len(v) for v in VERDICTS]
        qfmt = "  ".join(f"{{:<{w}}}" for w in qw)
        lines.append(qfmt.format(*qhead))
        lines.extend(qfmt.format(k, *(str(c[v]) for v in VERDICTS)) for k, c in qrows)
    return "\n".join(lines)


VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


def gradescope(sub: dict, visibility: str = "after_due_date", expected_visibility: str = "after_published") -> dict:
    """Gradescope's results.json for one submission: one test per answer (verdict, score and feedback,
    shown as ``visibility`` says), and the expected values in tests of their own, worth nothing and
    shown as ``expected_visibility`` says (by default only once the grades are published)."""
    tests, expected = [], []
    for r in sub["records"]:
        name = (r["quantity"] or "submission") + _idx(r["index"])
        out = f"{r['verdict']}"
        if r["answer"] is not None:
            out += f": your answer {r['answer']}"
        feedback = r["feedback"] or ""
        if r["expected"] is not None:
            feedback = feedback.replace(f"expected {r['expected']}", "expected value shown later")
            expected.append({"name": f"{name}: expected", "score": 0.0, "max_score": 0.0,
                             "output": f"expected {r['expected']}", "visibility": expected_visibility})
        if feedback:
            out += f"\n{feedback}"
        tests.append({"name": name, "score": r["score"], "max_score": r["max_score"], "output": out,
                      "visibility": visibility})
    return {"score": sub["score"], "output": f"{_pts(sub['score'])} / {_pts(sub['max_score'])} points",
            "visibility": visibility, "tests": tests + expected}


def _bar(done: int, total: int) -> None:
    width = 30
    filled = int(width * done / total)
    sys.stderr.write(f"\rgrading [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


# ----------------------------------------------------------------------------- command

def _spec_error(spec: str, err) -> str:
    """One line naming the spec file once (the error may already start with its name)."""
    path = err.path
    if path.startswith("--"):           # an option's file (--roster, --course-key), not the spec
        return str(err)
    name = Path(spec).name
    if path == name or path.startswith(name + ":"):
        path = path[len(name):].lstrip(": ")
    return one_line(f"{shown(spec)}: {path}: {err.message}" if path else f"{shown(spec)}: {err.message}")


def _gradescope_plan(target: Path, files: list[Entry]) -> tuple[bool, list[str]]:
    """(one file?, result names); refuses a .json target for several files and clashing names."""
    from derive.core.files import check_folder
    if target.suffix.lower() == ".json":
        if len(files) != 1:
            raise InputError(f"--gradescope {shown(str(target))}: a .json file holds one submission, "
                             f"and {len(files)} were given; name a folder instead")
        return True, []
    check_folder(target)
    return False, result_names(files)


def cmd_check(args) -> int:
    from derive.core.errors import SpecError
    from derive.core.files import OutputError, write_atomic, write_folder
    started = time.perf_counter()
    show_bar = args.progress if args.progress is not None else sys.stderr.isatty()
    try:
        roster = None
        if args.roster:
            from derive.grading.roster import course_key, read_roster
            roster = (course_key(args.course_key), set(read_roster(args.roster)))
        files = answer_files(args.answers)
        plan = _gradescope_plan(Path(args.gradescope), files) if args.gradescope else None
        if args.cluster:
            if roster is not None:
                raise InputError("--cluster grades against one spec; grade with --roster without --cluster")
            subs = grade_on_cluster(args.cluster, args.spec, files, timeout=args.timeout,
                                    latex_timeout=args.latex_timeout, memory_mb=args.memory,
                                    max_formulas=args.max_formulas, formula_budget=args.formula_budget,
                                    progress=_bar if (show_bar and len(files) > 1) else None)
        else:
            subs = grade(args.spec, args.answers, jobs=args.jobs, timeout=args.timeout,
                         latex_timeout=args.latex_timeout, memory_mb=args.memory,
                         progress=_bar if (show_bar and len(files) > 1) else None, files=files,
                         max_formulas=args.max_formulas, formula_budget=args.formula_budget, roster=roster)
        if plan is not None:
            one, names = plan
            results = [json.dumps(gradescope(s, args.visibility, args.expected_visibility), ensure_ascii=False,
                                  indent=2) for s in subs]
            if one:
                write_atomic(Path(args.gradescope), results[0])
            else:
                write_folder(Path(args.gradescope), dict(zip(names, results)), "nnderive check --gradescope")
    except (InputError, OutputError) as err:
        print(f"nnderive: error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except SpecError as err:
        print(f"nnderive: error: {_spec_error(args.spec, err)}", file=sys.stderr)
        return EXIT_INPUT
    if args.json:
        print(json.dumps({"submissions": subs, "summary": summary(subs)}, ensure_ascii=False, indent=2))
    else:
        for s in subs:
            print(text_report(s))
            print()
        print(summary_table(subs))
        print(f"\n{len(subs)} submission{'s' if len(subs) != 1 else ''} graded in "
              f"{time.perf_counter() - started:.1f} s")
    # like verify: 1 when something wrong was found (an answer short of its points, or a file that
    # could not be graded), 0 when every answer of every file earned its full points
    short = any(s.get("internal_error") or s.get("score", 0) < s.get("max_score", 0) or
                any(r["verdict"] != "correct" for r in s["records"]) for s in subs)
    return EXIT_WRONG if short else EXIT_OK


def positive(kind):
    """An argparse type: a number above zero (``--timeout 0`` and ``--jobs 0`` are refused at once)."""
    import argparse

    def parse(text: str):
        try:
            x = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number, got {text!r}") \
                from None
        if not x > 0 or x != x or x == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
        return x
    parse.__name__ = kind.__name__
    return parse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check", help="grade students' answer files (numbers and LaTeX) against a problem",
        description="Grade answer files: every number correct / carried / precision / wrong with feedback, "
                    "every $LaTeX$ answer equivalent or not to the derivation. See docs/checking.md.")
    p.add_argument("spec", metavar="SPEC", help="spec file, bundled example name, or a directory written by "
                                                "'nnderive variants'")
    p.add_argument("answers", nargs="+", metavar="ANSWERS", help="answer files or directories of them")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--gradescope", metavar="RESULTS_JSON",
                   help="write Gradescope's results.json (a directory of them for several submissions)")
    p.add_argument("--roster", metavar="CSV", help="grade each file against the variant of its student id "
                                                   "(the roster given to 'nnderive variants --roster')")
    p.add_argument("--course-key", metavar="FILE", help="file holding the secret course key (default: the "
                                                        "NNDERIVE_COURSE_KEY environment variable)")
    p.add_argument("--visibility", choices=VISIBILITIES, default="after_due_date",
                   help="when Gradescope shows students their verdicts and feedback (default after_due_date)")
    p.add_argument("--expected-visibility", choices=VISIBILITIES, default="after_published",
                   help="when Gradescope shows the expected values (default after_published)")
    p.add_argument("--jobs", type=positive(int), default=None, help="workers at once (default: one per CPU)")
    p.add_argument("--timeout", type=positive(float), default=60.0, help="seconds per answer file (default 60)")
    p.add_argument("--latex-timeout", type=positive(float), default=10.0,
                   help="seconds per LaTeX answer (default 10)")
    p.add_argument("--max-formulas", type=positive(int), default=None,
                   help="LaTeX answers graded per file; the rest are undetermined (default: the spec's "
                        f"[grading] max_formulas, else {MAX_FORMULAS})")
    p.add_argument("--formula-budget", type=positive(float), default=None,
                   help="seconds of work for all LaTeX answers of one file together; past it the rest are "
                        f"undetermined (default: the spec's [grading] formula_budget, else {FORMULA_BUDGET:g})")
    p.add_argument("--memory", type=positive(int), default=1024, help="MB per worker (default 1024)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="grade on a Dask cluster (tcp://host:8786): one answer file per task, the same sandboxed "
                        "workers and limits on each Dask worker (the 'cluster' extra; docs/serve.md)")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show a progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=cmd_check)
