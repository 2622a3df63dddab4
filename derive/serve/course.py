"""A course for ``nnderive serve``: its problems, each student's variant, statements, and grading.

A course directory holds problem specs (``*.toml`` / ``*.json``, one problem each, named by the file
stem) and optionally ``course.toml`` (``title``, ``variants`` = how many variants to draw for a spec
with a ``[variants]`` table, ``seed``).  A spec with ``[variants]`` is drawn once by
:func:`derive.grading.variants.generate` into the state directory; a student's variant is chosen by an HMAC
of the student's id and the problem under the course's secret, so it is stable and unguessable.

Everything the lecturer's files could make slow (solving, drawing, the statement) first runs in a
sandboxed worker (:mod:`derive.core.sandbox`); then the prepared :class:`derive.grading.grade.Problem` objects
live in this process, so that every grading worker forked later inherits them.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from derive.core.errors import SpecError

COURSE_FILE = "course.toml"
SPEC_SUFFIXES = (".toml", ".json")
MAX_PROBLEMS = 200
MAX_FIELD_CHARS = 2000          # one answer field; LaTeX answers have their own, smaller limit
_LOADED: dict[str, Any] = {}    # version key -> grading.Problem, filled before workers fork


@dataclass(frozen=True)
class Field:
    key: str          # as in an answer file: "h1", "W1[0,1]"
    label: str        # LaTeX of the element, in the handout's notation
    decimals: int | None = None   # decimals asked (None: the problem has no numbers)
    points: float = 1.0


@dataclass
class Version:
    """One variant of a problem (or the problem itself when it has no ``[variants]``)."""

    key: str
    title: str
    pieces: list
    fields: list[Field]


@dataclass
class CourseProblem:
    id: str
    title: str
    versions: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- sandboxed work

def _describe(path: str) -> dict:
    """Title, statement pieces and answer fields of one spec (run in a worker)."""
    from derive.grading.grade import Problem
    from derive.handout.assemble import build
    from derive.kinds import load
    spec = load(path)
    problem = Problem.build(spec)
    handout = build(spec)
    return {"title": spec.title, "pieces": statement(handout, spec, problem), "fields": fields_of(spec, problem)}


def _draw(item: tuple) -> dict:
    from derive.grading.variants import generate
    spec, count, seed, out = item
    return generate(spec, count, seed, out)


def _grade_numbers(key: str, data: dict) -> dict:
    from derive.grading.grade import grade_data
    records, latex = grade_data(_LOADED[key], data)
    return {"records": [r.as_dict() for r in records],
            "latex": [(i, a.quantity, a.index, a.text) for i, a in latex]}


def _grade_latex(item: tuple) -> dict:
    from derive.grading.grade import grade_latex
    key, quantity, index, text, seed = item
    return grade_latex(_LOADED[key], quantity, index, text, seed)


# ----------------------------------------------------------------------------- statements

def _names(spec, problem):
    from derive import kinds
    from derive.printing.notation import profile
    derivations = kinds.companions(spec, problem.derivation)
    return kinds.names(derivations, profile(dict(spec.notation).get("profile", "xjtu"), "notation.profile"), spec.notation)


def _parts(caption) -> list:
    from derive.printing.latex import Math
    return [["m", p.tex] if isinstance(p, Math) else ["t", str(p)] for p in caption]


def _cell(cell) -> list:
    from derive.printing.latex import Code, Math
    if isinstance(cell, Math):
        return [["m", cell.tex]]
    if isinstance(cell, Code):
        return [["c", cell.text]]
    return [["t", str(cell)]]


def statement(handout, spec, problem) -> list:
    """The handout's problem section as plain pieces for the page: paragraphs of text and inline
    maths, displayed maths, tables; the definitions of nodes written in the spec (a graph's: its drawing
    is TikZ, which the page does not show)."""
    import sympy as sp

    from derive.printing.latex import Block
    from derive.printing.render import math_rows
    from derive.core.steps import Node
    from derive.printing.tikz import Figure
    pieces: list = []
    for item in handout.sections[0].items if handout.sections else ():
        if isinstance(item, Figure):
            continue
        if isinstance(item, Block):
            if item.caption:
                pieces.append({"kind": "para", "parts": _parts(item.caption)})
            if item.chains:
                rows = math_rows(item.chains, 60, item.columns)
                pieces.append({"kind": "math", "tex": "\\begin{aligned}" + rows + "\\end{aligned}"})
        elif isinstance(item, tuple):
            pieces.append({"kind": "para", "parts": _parts(item)})
        else:
            pieces.append({"kind": "table", "caption": _parts(item.caption) if item.caption else [],
                           "header": [_cell(h) for h in item.header],
                           "rows": [[_cell(c) for c in row] for row in item.rows]})
    written = [s for s in problem.derivation.steps if isinstance(s, Node) and s.text]
    if written:
        nm = _names(spec, problem)
        rows = []
        for step in written:
            for sym, expr in step.items():
                names = {x: nm(x.name) for x in expr.free_symbols}
                rows.append(f"{nm(sym.name)} &= {sp.latex(expr, symbol_names=names)}")
        if rows:
            pieces.append({"kind": "para", "parts": [["t", "The nodes of the graph:"]]})
            pieces.append({"kind": "math", "tex": "\\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}"})
    return pieces


def fields_of(spec, problem) -> list[dict]:
    """One field per asked element (``[grading] ask``; without it, every derived element)."""
    from derive.core.steps import Given
    nm = _names(spec, problem)
    asked = problem.asked()
    if not asked:
        for step in problem.derivation.steps:
            if isinstance(step, Given):
                continue
            q = step.target
            asked.extend((q.name, i) for i in q.indices()) if q.shape else asked.append((q.name, None))
    out = []
    for name, idx in asked:
        sym = problem.element_symbol(name, idx)
        key = name if idx is None else f"{name}[{','.join(map(str, idx))}]"
        out.append({"key": key, "label": nm(sym.name), "points": float(problem.policy.points_of(name)),
                    "decimals": problem.policy.asked_decimals(name) if problem.values else None})
    return out


# ----------------------------------------------------------------------------- the course

class CourseError(Exception):
    """An unusable course directory (one line, exit 2)."""


def _secret(state: Path) -> bytes:
    path = state / "secret"
    if not path.exists():
        tmp = state / f".secret.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        os.replace(tmp, path)
    return bytes.fromhex(path.read_text().strip())


def _settings(directory: Path) -> dict:
    path = directory / COURSE_FILE
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise CourseError(f"{path}: not valid TOML: {err}") from None
    unknown = set(data) - {"title", "variants", "seed"}
    if unknown:
        raise CourseError(f"{path}: unknown key {sorted(unknown)[0]!r} (allowed: title, variants, seed)")
    v = data.get("variants", 8)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
        raise CourseError(f"{path}: variants: expected a whole number from 1 to 1000")
    s = data.get("seed", 0)
    if isinstance(s, bool) or not isinstance(s, int):
        raise CourseError(f"{path}: seed: expected a whole number")
    t = data.get("title", directory.name)
    if not isinstance(t, str) or len(t) > 200:
        raise CourseError(f"{path}: title: expected text of at most 200 characters")
    return {"title": t, "variants": v, "seed": s}


def _has_variants(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False        # the spec's own error is reported when it is loaded
    return isinstance(data, dict) and "variants" in data


class Course:
    def __init__(self, directory: Path, state: Path, *, timeout: float = 60.0, latex_timeout: float = 10.0,
                 memory_mb: int = 1024, jobs: int | None = None):
        self.directory, self.state = Path(directory), Path(state)
        self.timeout, self.latex_timeout, self.memory_mb, self.jobs = timeout, latex_timeout, memory_mb, jobs
        if not self.directory.is_dir():
            raise CourseError(f"{directory}: no such directory")
        self.state.mkdir(parents=True, exist_ok=True)
        settings = _settings(self.directory)
        self.title = settings.get("title", self.directory.name)
        self.count, self.seed = settings.get("variants", 8), settings.get("seed", 0)
        self.secret = _secret(self.state)
        self.executor = None                 # a cluster.DaskExecutor sends grading to a Dask cluster
        self.sources: dict = {}              # version key -> Source (its spec text)
        self.problems: dict[str, CourseProblem] = {}
        self.versions: dict[str, Version] = {}
        self._load()

    # -- loading
    def _specs(self) -> list[Path]:
        specs = sorted(p for p in self.directory.iterdir()
                       if p.is_file() and p.suffix.lower() in SPEC_SUFFIXES and p.name != COURSE_FILE)
        if not specs:
            raise CourseError(f"{self.directory}: no problem specs (.toml or .json) in it")
        if len(specs) > MAX_PROBLEMS:
            raise CourseError(f"{self.directory}: more than {MAX_PROBLEMS} problem specs")
        return specs

    def _load(self) -> None:
        from derive.grading.grade import Problem
        from derive.core.sandbox import Limit, run_many
        from derive.kinds import load
        specs = self._specs()
        plan: list[tuple[str, str, Path]] = []     # (problem id, version key, spec path)
        to_draw = []
        for path in specs:
            pid = path.stem
            if _has_variants(path):
                out = self.state / "variants" / pid
                stamp = hashlib.sha256(path.read_bytes()).hexdigest() + f":{self.count}:{self.seed}"
                fresh = (out / "variants.json").is_file() and (out / "stamp").is_file() \
                    and (out / "stamp").read_text() == stamp
                if not fresh:
                    to_draw.append((path, out, stamp))
            else:
                plan.append((pid, pid, path))
        drawn = run_many(_draw, [(str(p), self.count, self.seed, str(o)) for p, o, _ in to_draw],
                         timeout=max(self.timeout, 30.0 * self.count), memory_mb=self.memory_mb * 2, jobs=self.jobs)
        for (path, out, stamp), result in zip(to_draw, drawn):
            if isinstance(result, BaseException):
                raise CourseError(f"{path}: cannot draw its variants: {result}")
            (out / "stamp").write_text(stamp)
        for path in specs:
            if _has_variants(path):
                out = self.state / "variants" / path.stem
                manifest = json.loads((out / "variants.json").read_text(encoding="utf-8"))
                plan.extend((path.stem, f"{path.stem}/{v['name']}", out / v["spec"]) for v in manifest["variants"])
        described = run_many(_describe, [str(p) for _, _, p in plan], timeout=self.timeout,
                             memory_mb=self.memory_mb * 2, jobs=self.jobs)
        for (pid, key, path), d in zip(plan, described):
            if isinstance(d, Limit):
                raise CourseError(f"{path}: {d}")
            if isinstance(d, SpecError):
                raise CourseError(f"{path}: {d}")
            if isinstance(d, BaseException):
                raise CourseError(f"{path}: cannot be prepared: {str(d).splitlines()[0]}")
            if not d["fields"]:
                raise CourseError(f"{path}: the problem asks for nothing to answer")
            _LOADED[key] = Problem.build(load(path))
            self.sources[key] = Source(Path(path).read_text(encoding="utf-8"),
                                       "json" if Path(path).suffix.lower() == ".json" else "toml", Path(path).stem)
            self.versions[key] = Version(key, d["title"], d["pieces"], [Field(**f) for f in d["fields"]])
            cp = self.problems.setdefault(pid, CourseProblem(pid, d["title"].split(" (variant ")[0]))
            cp.versions.append(key)
        from derive.grading.submissions import warm_up
        for key in {cp.versions[0] for cp in self.problems.values()}:
            warm_up(_LOADED[key])

    # -- students
    def version_for(self, problem_id: str, student_id: str) -> Version:
        cp = self.problems[problem_id]
        if len(cp.versions) == 1:
            return self.versions[cp.versions[0]]
        digest = hmac.new(self.secret, f"{problem_id}\0{student_id}".encode(), hashlib.sha256).digest()
        return self.versions[cp.versions[int.from_bytes(digest[:8], "big") % len(cp.versions)]]

    # -- grading (blocking: call it from a worker thread)
    def grade(self, key: str, answers: dict[str, str]) -> dict:
        """Records (verdict, score, feedback, ...) of one answer set, as ``nnderive check`` grades it."""
        if self.executor is not None:
            return self.executor.grade(self.sources[key], answers, (self.timeout, self.latex_timeout, self.memory_mb))
        return grade_answers(key, answers, timeout=self.timeout, latex_timeout=self.latex_timeout,
                             memory_mb=self.memory_mb)


def grade_answers(key: str, answers: dict[str, str], *, timeout: float = 60.0, latex_timeout: float = 10.0,
                  memory_mb: int = 1024) -> dict:
    """Grade one answer set of the loaded version ``key`` in sandboxed workers; scores as ``check`` gives them."""
    from derive.grading.answers import INVALID
    from derive.core.sandbox import Limit, run, run_many
    problem = _LOADED[key]
    data = {"problem": key, "answers": dict(answers)}
    try:
        out = run(_grade_numbers, key, data, timeout=timeout, memory_mb=memory_mb)
    except (Limit, SpecError, RuntimeError) as err:
        reason = _reason(err)
        return {"score": 0.0, "max_score": 0.0, "internal_error": not isinstance(err, Limit),
                "records": [{"quantity": None, "index": None, "answer": None, "verdict": INVALID, "score": 0.0,
                             "max_score": 0.0, "expected": None, "feedback": reason}]}
    records = out["records"]
    items = [(key, q, tuple(i) if i is not None else None, text, k) for k, (_, q, i, text) in enumerate(out["latex"])]
    if items:
        results = run_many(_grade_latex, items, timeout=latex_timeout, memory_mb=memory_mb, jobs=2)
        for (rec, *_), r in zip(out["latex"], results):
            if isinstance(r, dict):
                records[rec].update(verdict=r["verdict"], expected=r["expected"], feedback=r["feedback"])
            else:
                records[rec].update(verdict=INVALID, expected=None, feedback=_reason(r))
    credit = problem.policy.credit
    for r in records:
        r["score"] = round(r["max_score"] * credit[r["verdict"]], 6)
    return {"score": round(sum(r["score"] for r in records), 6),
            "max_score": round(sum(r["max_score"] for r in records), 6), "records": records}


def _reason(err: BaseException) -> str:
    """A failed worker as ``nnderive check`` words it (its own function)."""
    from derive.grading.submissions import _reason as check_reason
    return check_reason(err)


@dataclass(frozen=True)
class Source:
    """What a Dask worker needs to build a problem: its spec text and format."""

    text: str
    fmt: str          # "toml" or "json"
    name: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.fmt}\0{self.name}\0{self.text}".encode()).hexdigest()
