"""``nnderive serve``: a course's self-check site (see docs/serve.md).

The web stack (Starlette, uvicorn, Jinja2, python-multipart) is the optional ``serve`` extra and is
imported only when the command runs, so the base install and ``nnderive --help`` do not need it.
"""
from __future__ import annotations

import csv
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path

from derive.core.commandline import EXIT_INPUT, EXIT_OK

HERE = Path(__file__).resolve().parent
DEMO = HERE / "demo"
STATE = ".nnderive-serve"
NEEDS = {"starlette": "starlette", "uvicorn": "uvicorn", "jinja2": "jinja2", "multipart": "python-multipart"}
USER_ID = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
MAX_ROSTER = 100_000


def missing_packages() -> list[str]:
    return [pip for module, pip in NEEDS.items() if importlib.util.find_spec(module) is None]


def read_roster(path: Path) -> list[tuple[str, str]]:
    """``id,name`` rows of a roster CSV (header line required); a ValueError names the line at fault."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["id", "name"]:
        raise ValueError(f"{path}: the first line must be the header 'id,name'")
    out, seen = [], set()
    for n, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) < 2:
            raise ValueError(f"{path}: line {n}: expected 'id,name'")
        sid, name = row[0].strip(), row[1].strip()
        if not USER_ID.fullmatch(sid) or sid == "lecturer":
            raise ValueError(f"{path}: line {n}: id {sid[:40]!r} must be 1-64 letters, digits or _.@+- "
                             "(and not 'lecturer')")
        if not name or len(name) > 200:
            raise ValueError(f"{path}: line {n}: name must be 1-200 characters")
        if sid in seen:
            raise ValueError(f"{path}: line {n}: id {sid!r} appears twice")
        seen.add(sid)
        out.append((sid, name))
        if len(out) > MAX_ROSTER:
            raise ValueError(f"{path}: more than {MAX_ROSTER} students")
    if not out:
        raise ValueError(f"{path}: no students in the roster")
    return out


def _write_private(path: Path, text: str) -> None:
    """Atomically, readable by the owner only (the file holds sign-in tokens)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def link(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/login?token={token}"


def issue_tokens(db, roster: list[tuple[str, str]], base: str) -> str:
    """New tokens for every student of the roster and for the lecturer; the CSV text to hand out."""
    import io
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["id", "name", "role", "token", "link"])
    for sid, name in roster:
        token = db.set_user(sid, name, "student")
        w.writerow([sid, name, "student", token, link(base, token)])
    token = db.set_user("lecturer", "Lecturer", "lecturer")
    w.writerow(["lecturer", "Lecturer", "lecturer", token, link(base, token)])
    return out.getvalue()


def _fail(message: str) -> int:
    print(f"nnderive: error: {message}", file=sys.stderr)
    return EXIT_INPUT


def cmd_serve(args) -> int:
    missing = missing_packages()
    if missing:
        return _fail(f"'nnderive serve' needs {', '.join(missing)}: run  pip install 'nnderive[serve]'  "
                     f"(or  pip install {' '.join(NEEDS.values())})")
    from derive.serve.course import Course, CourseError
    from derive.serve.db import Database
    if args.demo == bool(args.course):
        return _fail("give a COURSE_DIR, or --demo for the bundled demo course")
    base = args.base_url or f"http://{args.host}:{args.port}"
    if args.demo:
        course_dir = DEMO
        state = Path(args.state) if args.state else Path(tempfile.mkdtemp(prefix="nnderive-demo-"))
    else:
        course_dir = Path(args.course)
        if not course_dir.is_dir():
            return _fail(f"{course_dir}: no such directory")
        state = Path(args.state) if args.state else course_dir / STATE
    try:
        state.mkdir(parents=True, exist_ok=True)
        db = Database(state / "course.sqlite")
    except OSError as err:
        return _fail(f"{state}: cannot use as the state directory: {err.strerror or err}")
    if args.issue_tokens:
        try:
            roster = read_roster(Path(args.issue_tokens))
        except ValueError as err:
            return _fail(str(err))
        target = Path(args.output) if args.output else Path(args.issue_tokens).with_name(
            Path(args.issue_tokens).stem + "_tokens.csv")
        _write_private(target, issue_tokens(db, roster, base))
        print(f"{len(roster)} student tokens and a lecturer token written to {target} "
              f"(readable by you only; earlier tokens of these users no longer work)")
        return EXIT_OK
    lines = []
    if args.demo:
        student = db.set_user("demo", "Demo Student", "student")
        lecturer = db.set_user("lecturer", "Demo Lecturer", "lecturer")
        lines = [f"  student:  {link(base, student)}", f"  lecturer: {link(base, lecturer)}"]
    print(f"preparing the problems of {course_dir} (state in {state}) ...", file=sys.stderr, flush=True)
    try:
        course = Course(course_dir, state, timeout=args.timeout, latex_timeout=args.latex_timeout,
                        memory_mb=args.memory, jobs=args.jobs)
    except CourseError as err:
        return _fail(str(err))
    if args.cluster:
        from derive.serve.cluster import DaskExecutor
        try:
            course.executor = DaskExecutor(args.cluster)
        except (RuntimeError, OSError) as err:
            return _fail(f"--cluster {args.cluster}: {err}")
        print(f"grading on the Dask cluster at {args.cluster}", file=sys.stderr)
    import uvicorn

    from derive.serve.app import create_app
    app = create_app(course, db, jobs=args.jobs or os.cpu_count() or 1, rate=(args.rate, args.rate_window),
                     secure_cookies=base.startswith("https://"))
    students = len(db.users("student"))
    print(f"nnderive serve: {course.title!r}, {len(course.problems)} problems, {students} students, at {base}")
    if lines:
        print("sign-in links of the demo course:\n" + "\n".join(lines))
    elif students == 0:
        print(f"no tokens issued yet: nnderive serve {course_dir} --issue-tokens ROSTER.csv")
    print("press Ctrl-C to stop", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
    return EXIT_OK


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="a course's self-check web site (needs the 'serve' extra)",
        description="Serve a course directory of problem specs: students sign in by token, answer their own "
                    "variant of each problem and get the verdicts of 'nnderive check'; the lecturer sees "
                    "statistics and exports grades. See docs/serve.md.")
    p.add_argument("course", nargs="?", metavar="COURSE_DIR", help="directory of problem specs (and course.toml)")
    p.add_argument("--demo", action="store_true", help="serve the bundled demo course and print its sign-in links")
    p.add_argument("--issue-tokens", metavar="ROSTER_CSV",
                   help="write sign-in tokens for the roster's students (id,name) and the lecturer, then exit")
    p.add_argument("-o", "--output", metavar="TOKENS_CSV", help="where --issue-tokens writes (default ROSTER_tokens.csv)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--base-url", help="the site's address in sign-in links (default http://HOST:PORT)")
    p.add_argument("--state", metavar="DIR", help=f"database and drawn variants (default COURSE_DIR/{STATE}; "
                                                  "a new temporary directory for --demo)")
    p.add_argument("--jobs", type=int, default=None, help="answer sets graded at once (default: one per CPU)")
    p.add_argument("--rate", type=int, default=10, help="submissions allowed per student per window (default 10)")
    p.add_argument("--rate-window", type=float, default=60.0, help="the window in seconds (default 60)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per answer set (default 60)")
    p.add_argument("--latex-timeout", type=float, default=10.0, help="seconds per LaTeX answer (default 10)")
    p.add_argument("--memory", type=int, default=1024, help="MB per grading worker (default 1024)")
    p.add_argument("--cluster", metavar="ADDRESS", help="grade on this Dask scheduler (tcp://host:8786; "
                                                        "the 'cluster' extra)")
    p.set_defaults(func=cmd_serve)
