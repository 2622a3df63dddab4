"""The web application of ``nnderive serve`` (Starlette, Jinja2 with autoescaping).

Students sign in by the link of their token, see their own variant of each problem, submit answer
sets and read the verdicts; the lecturer sees statistics and exports grades.  Every page is built
from the session's own user id: no form field or URL names a user, and an attempt id that is not
the user's own is answered 404 like one that does not exist.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import csv
import hmac
import io
import json
import re
import time
import zipfile
from collections import Counter
from pathlib import Path

from jinja2 import Environment, FileSystemLoader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from derive.serve.course import MAX_FIELD_CHARS, Course
from derive.serve.db import Database

HERE = Path(__file__).resolve().parent
COOKIE = "nnd_session"
MAX_BODY = 256 * 1024
RIGHT = ("correct", "carried")
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Grader:
    """Grades attempts in a pool of threads, each grading in sandboxed worker processes."""

    def __init__(self, course: Course, db: Database, workers: int):
        self.course, self.db = course, db
        self.pool = concurrent.futures.ThreadPoolExecutor(max(1, workers), thread_name_prefix="grader")
        self.futures: dict[int, concurrent.futures.Future] = {}

    def submit(self, attempt_id: int) -> concurrent.futures.Future:
        fut = self.futures.get(attempt_id)
        if fut is None:
            fut = self.futures[attempt_id] = self.pool.submit(self._grade, attempt_id)
            fut.add_done_callback(lambda _f: self.futures.pop(attempt_id, None))
        return fut

    def _grade(self, attempt_id: int) -> None:
        row = self.db.attempt(attempt_id)
        if row is None or row["status"] != "pending":
            return
        if row["version"] not in self.course.versions:     # the course changed since: record why
            result = {"score": 0.0, "max_score": 0.0, "records": [{
                "quantity": None, "index": None, "answer": None, "verdict": "invalid", "score": 0.0, "max_score": 0.0,
                "expected": None, "feedback": f"problem {row['version']} is no longer in the course"}]}
        else:
            result = self.course.grade(row["version"], json.loads(row["answers"]))
        self.db.set_result(attempt_id, result)

    def recover(self) -> int:
        """Queue every attempt committed but not graded (after a crash); returns how many."""
        ids = self.db.pending()
        for i in ids:
            self.submit(i)
        return len(ids)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class Limiter:
    """At most ``count`` events per ``seconds`` per key (in memory; failed sign-ins per address)."""

    def __init__(self, count: int, seconds: float):
        self.count, self.seconds = count, seconds
        self.events: dict[str, list[float]] = {}

    def _recent(self, key: str) -> list[float]:
        now = time.monotonic()
        if len(self.events) > 10_000:
            self.events.clear()
        recent = self.events[key] = [t for t in self.events.get(key, []) if now - t < self.seconds]
        return recent

    def blocked(self, key: str) -> bool:
        return len(self._recent(key)) >= self.count

    def add(self, key: str) -> None:
        self._recent(key).append(time.monotonic())


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True)
    env.filters["idx"] = lambda index: "" if index is None else "[" + ",".join(map(str, index)) + "]"
    env.filters["pts"] = lambda x: "—" if x is None else f"{x:g}"
    env.filters["many"] = lambda n, word: f"{n} {word}" + ("" if n == 1 else "s")
    env.filters["when"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    return env


def create_app(course: Course, db: Database, *, jobs: int = 2, rate: tuple[int, float] = (10, 60.0),
               wait: float = 20.0, secure_cookies: bool = False) -> Starlette:
    env = _env()
    grader = Grader(course, db, jobs)
    failed = Limiter(30, 60.0)      # failed sign-ins per address (a class behind one NAT signs in at once)

    def page(name: str, status: int = 200, **ctx) -> HTMLResponse:
        ctx.setdefault("course_title", course.title)
        return HTMLResponse(env.get_template(name).render(**ctx), status_code=status, headers=_HEADERS)

    def message(title: str, text: str, status: int, user=None) -> HTMLResponse:
        return page("message.html", status, title=title, text=text, user=user)

    def current(request: Request):
        sid = request.cookies.get(COOKIE)
        if not sid or len(sid) > 100:
            return None
        return db.session(sid)

    async def form_of(request: Request, user) -> tuple[dict | None, Response | None]:
        """The posted form, once the body size, the origin and the CSRF token check out."""
        size = request.headers.get("content-length")
        if size is None or not size.isdigit():
            return None, message("Refused", "The form was sent without its length.", 411, user)
        if int(size) > MAX_BODY:
            return None, message("Too large", "The form is larger than this site accepts.", 413, user)
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
            return None, message("Refused", "The form came from another site.", 403, user)
        form = await request.form(max_files=0, max_fields=5000)
        token = form.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), user["csrf"].encode()):
            return None, message("Refused", "This form has expired. Reload the page and submit again.", 403, user)
        return form, None

    # -- pages
    async def home(request: Request):
        user = current(request)
        if user is None:
            return page("signin.html", user=None)
        if user["role"] == "lecturer":
            return RedirectResponse("/lecturer", 303)
        latest = {}
        for pid in course.problems:
            attempts = db.attempts_of(user["id"], pid)
            graded = [a for a in attempts if a["status"] == "graded"]
            latest[pid] = {"attempts": len(attempts), "score": graded[0]["score"] if graded else None,
                           "max": graded[0]["max_score"] if graded else None}
        problems = [(pid, course.version_for(pid, user["id"]).title, latest[pid]) for pid in course.problems]
        return page("home.html", user=user, problems=problems)

    async def login(request: Request):
        token = request.query_params.get("token", "")
        ip = request.client.host if request.client else "?"
        if failed.blocked(ip):
            return message("Slow down", "Too many failed sign-ins from your address; wait a minute.", 429)
        user = db.user_by_token(token) if 10 <= len(token) <= 100 else None
        if user is None:
            failed.add(ip)
            return message("Not signed in", "That sign-in link or token is not valid. Ask your lecturer for yours.",
                           403)
        sid, _ = db.new_session(user["id"])
        resp = RedirectResponse("/lecturer" if user["role"] == "lecturer" else "/", 303)
        resp.set_cookie(COOKIE, sid, httponly=True, samesite="lax", secure=secure_cookies, path="/",
                        max_age=14 * 24 * 3600)
        return resp

    async def logout(request: Request):
        user = current(request)
        if user is None:
            return RedirectResponse("/", 303)
        form, bad = await form_of(request, user)
        if bad:
            return bad
        db.end_session(request.cookies[COOKIE])
        resp = RedirectResponse("/", 303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    def signed_in_as(request: Request, role: str, title: str, text: str):
        """(user, None) for a signed-in user of ``role``; else (None, the response to send instead)."""
        user = current(request)
        if user is None:
            return None, RedirectResponse("/", 303)
        if user["role"] != role:
            return None, message(title, text, 403, user)
        return user, None

    def student(request: Request):
        user, bad = signed_in_as(request, "student", "Students only", "This page is for students.")
        if bad:
            return None, bad
        pid = request.path_params["pid"]
        if pid not in course.problems:
            return None, message("Not found", "There is no such problem.", 404, user)
        return user, None

    async def problem(request: Request):
        user, bad = student(request)
        if bad:
            return bad
        pid = request.path_params["pid"]
        version = course.version_for(pid, user["id"])
        attempts = db.attempts_of(user["id"], pid)
        shown = attempts[0] if attempts else None
        wanted = request.query_params.get("attempt")
        if wanted is not None:
            shown = db.attempt_of(user["id"], int(wanted)) if wanted.isdigit() and len(wanted) < 12 else None
            if shown is None or shown["problem"] != pid:
                return message("Not found", "There is no such attempt of yours.", 404, user)
        answers = json.loads(shown["answers"]) if shown else {}
        result = json.loads(shown["result"]) if shown and shown["result"] else None
        by_key, others = {}, []
        if result:
            for r in result["records"]:
                key = (r["quantity"] or "") + ("" if r["index"] is None else "[" + ",".join(map(str, r["index"])) + "]")
                if key in {f.key for f in version.fields}:
                    by_key[key] = r
                else:
                    others.append(r)
        return page("problem.html", user=user, pid=pid, version=version, answers=answers, shown=shown,
                    result=result, by_key=by_key, others=others, attempts=attempts, limit=rate,
                    max_chars=MAX_FIELD_CHARS)

    async def submit(request: Request):
        user, bad = student(request)
        if bad:
            return bad
        form, bad = await form_of(request, user)
        if bad:
            return bad
        pid = request.path_params["pid"]
        version = course.version_for(pid, user["id"])
        allowed = {f.key for f in version.fields}
        answers = {}
        for name, value in form.multi_items():
            if name == "csrf":
                continue
            if not name.startswith("a:") or name[2:] not in allowed or not isinstance(value, str):
                return message("Refused", f"The form has a field this problem does not ask for: {name[:60]}", 400,
                               user)
            text = value.strip()
            if len(text) > MAX_FIELD_CHARS:
                return message("Too long", f"The answer to {name[2:]} is longer than {MAX_FIELD_CHARS} characters.",
                               413, user)
            if text:
                if name[2:] in answers:
                    return message("Refused", f"{name[2:]} was sent twice.", 400, user)
                answers[name[2:]] = text
        if not answers:
            return message("Nothing to grade", "Type at least one answer, then submit.", 400, user)
        if db.recent_attempts(user["id"], rate[1]) >= rate[0]:
            return message("Slow down", f"At most {rate[0]} submissions per {rate[1]:g} seconds; wait a little "
                                        "and submit again (your answers are still in the form).", 429, user)
        attempt_id = db.add_attempt(user["id"], pid, version.key, answers)   # committed before grading
        fut = grader.submit(attempt_id)
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), wait)
        except asyncio.TimeoutError:
            pass
        return RedirectResponse(f"/p/{pid}?attempt={attempt_id}#result", 303)

    async def status(request: Request):
        user, bad = student(request)
        if bad:
            return bad
        aid = request.path_params["aid"]
        row = db.attempt_of(user["id"], aid)
        if row is None or row["problem"] != request.path_params["pid"]:
            return JSONResponse({"error": "not found"}, 404, headers=_HEADERS)
        return JSONResponse({"status": row["status"]}, headers=_HEADERS)

    # -- lecturer
    def lecturer(request: Request):
        return signed_in_as(request, "lecturer", "Lecturers only", "This page is for the lecturer.")

    def table():
        names = {u["id"]: u["name"] for u in db.users("student")}
        latest: dict[str, dict[str, dict]] = {}
        for row in db.latest_graded():
            latest.setdefault(row["user_id"], {})[row["problem"]] = json.loads(row["result"])
        return names, latest

    async def lecturer_page(request: Request):
        user, bad = lecturer(request)
        if bad:
            return bad
        names, latest = table()
        counts = db.counts()
        stats = []
        for pid, cp in course.problems.items():
            per: dict[str, dict] = {}
            for results in latest.values():
                if pid not in results:
                    continue
                for r in results[pid]["records"]:
                    if r["quantity"] is None:
                        continue
                    key = r["quantity"] + ("" if r["index"] is None else "[" + ",".join(map(str, r["index"])) + "]")
                    q = per.setdefault(key, {"answered": 0, "right": 0, "feedback": Counter()})
                    if r["answer"] is not None:
                        q["answered"] += 1
                    if r["verdict"] in RIGHT:
                        q["right"] += 1
                    elif r["answer"] is not None:
                        q["feedback"][_slip(r["feedback"])] += 1
            graded = [results[pid] for results in latest.values() if pid in results]
            mean = sum(g["score"] for g in graded) / len(graded) if graded else None
            order = {f.key: k for k, f in enumerate(course.versions[cp.versions[0]].fields)}
            stats.append({"id": pid, "title": cp.title, "attempts": counts.get(pid, (0, 0))[0],
                          "students": counts.get(pid, (0, 0))[1], "graded": len(graded), "mean": mean,
                          "quantities": [(k, v["answered"], v["right"], v["feedback"].most_common(3))
                                         for k, v in sorted(per.items(), key=lambda kv: order.get(kv[0], 1e9))]})
        return page("lecturer.html", user=user, stats=stats, roster=len(names))

    async def grades_csv(request: Request):
        user, bad = lecturer(request)
        if bad:
            return bad
        names, latest = table()
        out = io.StringIO()
        w = csv.writer(out)
        pids = list(course.problems)
        w.writerow(["student_id", "name"] + [f"{p} {k}" for p in pids for k in ("score", "max")] + ["total"])
        for sid, name in names.items():
            cells, total = [], 0.0
            for p in pids:
                r = latest.get(sid, {}).get(p)
                cells += [f"{r['score']:g}", f"{r['max_score']:g}"] if r else ["", ""]
                total += r["score"] if r else 0.0
            w.writerow([_csv_safe(sid), _csv_safe(name)] + cells + [f"{total:g}"])
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={**_HEADERS, "Content-Disposition": 'attachment; filename="grades.csv"'})

    async def gradescope_zip(request: Request):
        from derive.grading.submissions import gradescope
        user, bad = lecturer(request)
        if bad:
            return bad
        names, latest = table()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for sid in names:
                records = []
                for p in course.problems:
                    r = latest.get(sid, {}).get(p)
                    for rec in (r["records"] if r else []):
                        records.append({**rec, "quantity": f"{p}: {rec['quantity'] or 'submission'}"})
                sub = {"score": round(sum(r["score"] for r in records), 6),
                       "max_score": round(sum(r["max_score"] for r in records), 6), "records": records}
                z.writestr(f"{_file_safe(sid)}.results.json", json.dumps(gradescope(sub), ensure_ascii=False, indent=2))
        return Response(buf.getvalue(), media_type="application/zip",
                        headers={**_HEADERS, "Content-Disposition": 'attachment; filename="gradescope_results.zip"'})

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        grader.recover()
        yield
        grader.close()

    routes = [
        Route("/", home), Route("/login", login), Route("/logout", logout, methods=["POST"]),
        Route("/p/{pid}", problem), Route("/p/{pid}", submit, methods=["POST"]),
        Route("/p/{pid}/status/{aid:int}", status),
        Route("/lecturer", lecturer_page), Route("/lecturer/grades.csv", grades_csv),
        Route("/lecturer/gradescope.zip", gradescope_zip),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.grader = grader
    return app


def _slip(feedback: str) -> str:
    """A feedback line without its numbers, so that the same slip counts once whatever the values."""
    return re.sub(r"(?<![A-Za-z_\d])-?\d+\.\d+", "…", feedback or "")[:160]


def _csv_safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:100] or "student"
