"""``nnderive check SPEC ANSWERS...``: grade students' answer files against one problem (or its variants).

Work is split so that nothing hostile can stop the rest:

1. the spec is first loaded and solved in a sandboxed worker (time and memory limits), then once
   more in this process, so that every worker forked later inherits the prepared problem;
2. each answer file is read, parsed and its numbers graded in a worker of its own
   (:func:`derive.sandbox.run_many`, wall-clock limit, memory cap, CPU-time backstop);
3. each LaTeX answer is parsed and compared in a worker of its own, with a shorter limit; one
   that runs out of time or memory is ``invalid`` with that reason, and its neighbours are graded.

Exit codes: 0 when every file was graded (whatever the verdicts), 1 when a submission could not be
graded because of an internal error (reported in its records), 2 for unusable arguments.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2
ANSWER_SUFFIXES = (".toml", ".json")
MANIFEST = "variants.json"

_PROBLEMS: dict[str, Any] = {}   # name -> grading.Problem, filled before workers are forked


# ----------------------------------------------------------------------------- workers

def _probe(path: str) -> str:
    from .grading import Problem
    from .spec import load
    Problem.build(load(path))
    return "ok"


def _peek(path: str) -> str | None:
    """The ``problem`` named by an answer file (variant mode), or None."""
    from .grading import read_answer_file
    data = read_answer_file(Path(path))
    name = data.get("problem")
    return Path(name).stem if isinstance(name, str) and len(name) < 300 else None


def _phase1(item: tuple[str, str]) -> dict:
    """Read one answer file and grade its numbers; LaTeX answers are listed for phase 2."""
    from .errors import SpecError
    from .grading import INVALID, Record, grade_data, read_answer_file
    problem_name, path = item
    p = _PROBLEMS[problem_name]
    out = {"file": path, "student": None, "problem": problem_name, "records": [], "latex": []}
    try:
        data = read_answer_file(Path(path))
    except SpecError as err:
        out["records"] = [Record(None, None, None, INVALID, 0.0, _total_points(p), None, err.message).as_dict()]
        return out
    student = data.get("student")
    out["student"] = student[:200] if isinstance(student, str) else None
    named = data.get("problem")
    if named is not None and (not isinstance(named, str) or Path(named).stem != problem_name):
        reason = f"this answer file is for problem {str(named)[:80]!r}, not {problem_name!r}"
        out["records"] = [Record(None, None, None, INVALID, 0.0, _total_points(p), None, reason).as_dict()]
        return out
    records, latex = grade_data(p, data)
    out["records"] = [r.as_dict() for r in records]
    out["latex"] = [(i, a.quantity, a.index, a.text) for i, a in latex]
    return out


def _phase1_chunk(item: tuple[str, list[str]]) -> list[dict]:
    """Several files in one worker (warm caches, one fork); a chunk that fails is re-run file by file."""
    name, paths = item
    return [_phase1((name, path)) for path in paths]


def _phase2(item: tuple) -> dict:
    from .grading import grade_latex
    problem_name, quantity, index, text, seed = item
    return grade_latex(_PROBLEMS[problem_name], quantity, index, text, seed)


def _total_points(p) -> float:
    try:
        return float(sum(p.policy.points_of(n) for n, _ in p.asked()))
    except Exception:  # noqa: BLE001 - a bad [grading] is reported when the problem loads
        return 0.0


# ----------------------------------------------------------------------------- orchestration

class InputError(Exception):
    """Unusable arguments (exit 2)."""


def answer_files(args: list[str]) -> list[Path]:
    files: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in ANSWER_SUFFIXES))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{a}: no such file or directory")
    if not files:
        raise InputError("no answer files (.toml or .json) found")
    return files


def load_problem(spec_path: Path, name: str | None = None, timeout: float = 60.0):
    """Load and solve a spec in a sandbox first, then here; registered under ``name``."""
    from .grading import Problem
    from .sandbox import Limit, run
    from .spec import load
    try:
        run(_probe, str(spec_path), timeout=timeout)
    except Limit as err:
        raise InputError(f"{spec_path}: {err}") from None
    problem = Problem.build(load(spec_path))
    _PROBLEMS[name or problem.spec.name] = problem
    return problem


def warm_up(problem) -> None:
    """Grade a key and parse a few answers here, so that forked workers inherit warm caches
    (SymPy's, and latex2sympy2's parser tables)."""
    from .grading import grade_data, rounded
    from .parse import LatexError, parse_answer
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
          latex_timeout: float = 10.0, memory_mb: int = 1024, progress=None) -> list[dict]:
    """Grade every answer file; returns the submissions in the ``--json`` format."""
    import worked_examples
    from .sandbox import run_many
    files = answer_files(answers)
    spec_path = Path(spec)
    groups: dict[str, list[int]] = {}
    results: list[dict | None] = [None] * len(files)
    if spec_path.is_dir():
        manifest = _manifest(spec_path)
        names = run_many(_peek, [str(f) for f in files], timeout=timeout, memory_mb=memory_mb, jobs=jobs)
        for i, (f, name) in enumerate(zip(files, names)):
            if isinstance(name, BaseException) or name not in manifest:
                why = f"names no variant of {spec_path} (give problem = \"variant_007\")" if not \
                    isinstance(name, BaseException) else str(name)
                results[i] = _failed(f, why)
            else:
                groups.setdefault(name, []).append(i)
        for name in groups:
            load_problem(spec_path / manifest[name], name, timeout)
    else:
        try:
            path = worked_examples.resolve(spec)
        except KeyError:
            raise InputError(f"{spec}: no such file and no bundled example of that name (see 'nnderive list')") from None
        if not path.is_file():
            raise InputError(f"{spec}: no such file")
        problem = load_problem(path, None, timeout)
        groups[problem.spec.name] = list(range(len(files)))
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
        out = run_many(_phase1_chunk, [(name, [str(files[i]) for i in c]) for c in chunks], timeout=timeout,
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
            again = run_many(_phase1, [(name, str(files[i])) for i in retry], timeout=timeout,
                             memory_mb=memory_mb, jobs=jobs, progress=tick)
            for i, r in zip(retry, again):
                results[i] = r if isinstance(r, dict) else _failed(files[i], _reason(r))
    _phase_latex(results, groups, jobs, latex_timeout, memory_mb)
    return [_finish(r) for r in results]


def _chunks(idx: list[int], jobs: int | None, most: int = 25) -> list[list[int]]:
    import os
    workers = max(1, jobs or os.cpu_count() or 1)
    size = max(1, min(most, -(-len(idx) // (4 * workers))))
    return [idx[k:k + size] for k in range(0, len(idx), size)]


def _phase_latex(results, groups, jobs, latex_timeout, memory_mb) -> None:
    from .grading import INVALID
    from .sandbox import run_many
    items, where = [], []
    for name, idx in groups.items():
        for i in idx:
            for k, (rec, quantity, index, text) in enumerate(results[i].get("latex", [])):
                items.append((name, quantity, tuple(index) if index is not None else None, text, k))
                where.append((i, rec))
    if not items:
        return
    out = run_many(_phase2, items, timeout=latex_timeout, memory_mb=memory_mb, jobs=jobs)
    for (i, rec), r in zip(where, out):
        record = results[i]["records"][rec]
        if isinstance(r, dict):
            record.update(verdict=r["verdict"], expected=r["expected"], feedback=r["feedback"])
        else:
            record.update(verdict=INVALID, expected=None, feedback=_reason(r))


def _reason(err: BaseException) -> str:
    from .errors import SpecError
    from .sandbox import Limit
    if isinstance(err, Limit):
        return f"stopped: {err}"
    if isinstance(err, SpecError):
        return err.message
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"internal error: {first}"


def _failed(path: Path, reason: str) -> dict:
    from .grading import INVALID
    return {"file": str(path), "student": None, "problem": None, "latex": [], "internal": reason.startswith("internal"),
            "records": [{"quantity": None, "index": None, "answer": None, "verdict": INVALID, "score": 0.0,
                         "max_score": 0.0, "expected": None, "feedback": reason}]}


def _finish(r: dict) -> dict:
    from .grading import DEFAULT_CREDIT
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
    return sub


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
    from .grading import VERDICTS
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
    from .grading import VERDICTS
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


def gradescope(sub: dict) -> dict:
    """Gradescope's results.json for one submission: one test per answer."""
    tests = []
    for r in sub["records"]:
        name = (r["quantity"] or "submission") + _idx(r["index"])
        out = f"{r['verdict']}"
        if r["answer"] is not None:
            out += f": your answer {r['answer']}"
        if r["expected"] is not None:
            out += f"; expected {r['expected']}"
        if r["feedback"]:
            out += f"\n{r['feedback']}"
        tests.append({"name": name, "score": r["score"], "max_score": r["max_score"], "output": out,
                      "visibility": "visible"})
    return {"score": sub["score"], "output": f"{_pts(sub['score'])} / {_pts(sub['max_score'])} points",
            "visibility": "visible", "tests": tests}


def _bar(done: int, total: int) -> None:
    width = 30
    filled = int(width * done / total)
    sys.stderr.write(f"\rgrading [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


# ----------------------------------------------------------------------------- command

def cmd_check(args) -> int:
    from .errors import SpecError
    started = time.perf_counter()
    show_bar = args.progress if args.progress is not None else sys.stderr.isatty()
    try:
        files = answer_files(args.answers)
        subs = grade(args.spec, args.answers, jobs=args.jobs, timeout=args.timeout, latex_timeout=args.latex_timeout,
                     memory_mb=args.memory, progress=_bar if (show_bar and len(files) > 1) else None)
    except InputError as err:
        print(f"nnderive: error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except SpecError as err:
        print(f"nnderive: error: {args.spec}: {err}", file=sys.stderr)
        return EXIT_INPUT
    if args.gradescope:
        _write_gradescope(Path(args.gradescope), subs)
    if args.json:
        print(json.dumps({"submissions": subs, "summary": summary(subs)}, ensure_ascii=False, indent=2))
    else:
        for s in subs:
            print(text_report(s))
            print()
        print(summary_table(subs))
        print(f"\n{len(subs)} submission{'s' if len(subs) != 1 else ''} graded in "
              f"{time.perf_counter() - started:.1f} s")
    return EXIT_INTERNAL if any(s.get("internal_error") for s in subs) else EXIT_OK


def _write_gradescope(target: Path, subs: list[dict]) -> None:
    if len(subs) == 1 and target.suffix.lower() == ".json":
        target.write_text(json.dumps(gradescope(subs[0]), ensure_ascii=False, indent=2), encoding="utf-8")
        return
    target.mkdir(parents=True, exist_ok=True)
    for s in subs:
        (target / (Path(s["file"]).stem + ".results.json")).write_text(
            json.dumps(gradescope(s), ensure_ascii=False, indent=2), encoding="utf-8")


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
    p.add_argument("--jobs", type=int, default=None, help="workers at once (default: one per CPU)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per answer file (default 60)")
    p.add_argument("--latex-timeout", type=float, default=10.0, help="seconds per LaTeX answer (default 10)")
    p.add_argument("--memory", type=int, default=1024, help="MB per worker (default 1024)")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show a progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=cmd_check)
