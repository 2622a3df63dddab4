"""``nnderive serve``: sign-in, grading as ``nnderive check`` grades, isolation between students,
CSRF, rate limits, escaping, crash recovery, the lecturer's statistics and exports.

The oracle for verdicts is ``nnderive check`` itself run on the same answers written to a file
(:func:`derive.grading.submissions.grade`, its own code path: file reading, chunked workers, its scoring), and the
variant's answer key written by ``nnderive variants`` (every key value must be ``correct``).
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import time
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the 'serve' extra (starlette) is not installed")
pytest.importorskip("jinja2", reason="the 'serve' extra (jinja2) is not installed")
pytest.importorskip("multipart", reason="the 'serve' extra (python-multipart) is not installed")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from derive.grading import submissions as check  # noqa: E402
from derive.cli import main  # noqa: E402
from derive.serve import read_roster  # noqa: E402
from derive.serve.app import create_app  # noqa: E402
from derive.serve.course import Course  # noqa: E402
from derive.serve.db import Database  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
ROOT = Path(__file__).resolve().parents[1]
XSS = "<script>alert('x')</script>"
EVIL = f"""
[meta]
title = "{XSS} & <b>bold</b>"
source = "a test"
[graph]
values = {{ a = "0.5", b = "2" }}
nodes = ["c = a*b", "L = c**2"]
loss = "L"
[grading]
ask = ["c", "L", "grad_a"]
"""


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    d = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "docs/examples/hw_222.toml", d / "hw_222.toml")
    (d / "evil.toml").write_text(EVIL, encoding="utf-8")
    (d / "course.toml").write_text('title = "Test course"\nvariants = 2\nseed = 3\n', encoding="utf-8")
    return Course(d, tmp_path_factory.mktemp("state"), jobs=2)


class Site:
    def __init__(self, course, tmp_path, **kw):
        self.db = Database(tmp_path / "site.sqlite")
        self.app = create_app(course, self.db, jobs=2, **kw)
        self.course = course
        self.clients: list[TestClient] = []

    def close(self) -> None:
        for c in self.clients:
            c.__exit__(None, None, None)

    def client(self, user_id: str, name: str = "Student", role: str = "student") -> TestClient:
        token = self.db.set_user(user_id, name, role)
        c = TestClient(self.app, base_url="http://testserver")
        c.__enter__()
        self.clients.append(c)
        r = c.get(f"/login?token={token}", follow_redirects=False)
        assert r.status_code == 303
        return c


@pytest.fixture
def site(course, tmp_path):
    s = Site(course, tmp_path)
    yield s
    s.close()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def submit(c: TestClient, pid: str, answers: dict, csrf: str | None = None, **extra):
    if csrf is None:
        csrf = csrf_of(c.get(f"/p/{pid}").text)
    data = {"csrf": csrf, **{f"a:{k}": v for k, v in answers.items()}, **extra}
    return c.post(f"/p/{pid}", data=data, follow_redirects=False)


def attempt_id(resp) -> int:
    assert resp.status_code == 303, resp.text[:300]
    return int(re.search(r"attempt=(\d+)", resp.headers["location"]).group(1))


def graded(db: Database, aid: int, within: float = 120.0) -> dict:
    end = time.monotonic() + within          # a hang guard, not a timing assertion
    while time.monotonic() < end:
        row = db.attempt(aid)
        if row["status"] == "graded":
            return json.loads(row["result"])
        time.sleep(0.1)
    raise AssertionError(f"attempt {aid} not graded")


def check_records(course: Course, key: str, answers: dict, tmp_path: Path) -> list[dict]:
    """What ``nnderive check`` says of the same answers, from an answer file."""
    pid, _, variant = key.partition("/")
    spec_dir = course.state / "variants" / pid
    f = tmp_path / "answers.json"
    f.write_text(json.dumps({"problem": variant, "answers": answers}), encoding="utf-8")
    (sub,) = check.grade(str(spec_dir), [str(f)], jobs=2)
    return sub


# ----------------------------------------------------------------------------- command line

def test_without_the_extra_serve_names_the_pip_command(monkeypatch, capsys):
    import derive.serve as serve
    monkeypatch.setattr(serve, "missing_packages", lambda: ["starlette"])
    assert main(["serve", "--demo"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'nnderive[serve]'" in err and "Traceback" not in err


def test_serve_needs_a_course_or_demo(capsys, tmp_path):
    assert main(["serve"]) == 2
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_issue_tokens_writes_private_tokens_that_sign_in(tmp_path, course):
    roster = tmp_path / "roster.csv"
    roster.write_text("id,name\ns1,Ada Lovelace\ns2,\"Turing, Alan\"\n", encoding="utf-8")
    state = tmp_path / "state"
    assert main(["serve", str(tmp_path), "--state", str(state), "--issue-tokens", str(roster),
                 "--base-url", "https://example.org/hw"]) == 0
    out = tmp_path / "roster_tokens.csv"
    assert out.stat().st_mode & 0o077 == 0
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert [(r["id"], r["name"], r["role"]) for r in rows] == [
        ("s1", "Ada Lovelace", "student"), ("s2", "Turing, Alan", "student"), ("lecturer", "Lecturer", "lecturer")]
    assert all(r["link"] == f"https://example.org/hw/login?token={r['token']}" for r in rows)
    assert len({r["token"] for r in rows}) == 3
    db = Database(state / "course.sqlite")
    app = create_app(course, db)
    with TestClient(app) as c:
        r = c.get(f"/login?token={rows[1]['token']}", follow_redirects=False)
        assert r.status_code == 303
        assert "Turing, Alan" in c.get("/").text
    # issuing again replaces the tokens: the old one no longer signs in
    assert main(["serve", str(tmp_path), "--state", str(state), "--issue-tokens", str(roster)]) == 0
    with TestClient(app) as c:
        assert c.get(f"/login?token={rows[1]['token']}", follow_redirects=False).status_code == 403


@pytest.mark.parametrize("text, where", [
    ("", "header"), ("name,id\nx,y\n", "header"), ("id,name\n", "no students"),
    ("id,name\ns 1,Bad Id\n", "line 2"), ("id,name\ns1,A\ns1,B\n", "line 3"),
    ("id,name\nlecturer,Me\n", "line 2"), ("id,name\ns1\n", "line 2"),
])
def test_bad_rosters_are_refused_naming_the_line(tmp_path, text, where, capsys):
    roster = tmp_path / "roster.csv"
    roster.write_text(text, encoding="utf-8")
    assert main(["serve", str(tmp_path), "--issue-tokens", str(roster)]) == 2
    err = capsys.readouterr().err
    assert where in err and "Traceback" not in err


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_roster_text_is_read_or_refused_with_one_reason(tmp_path_factory, text):
    roster = tmp_path_factory.mktemp("r") / "roster.csv"
    roster.write_text("id,name\n" + text, encoding="utf-8")
    try:
        rows = read_roster(roster)
    except ValueError as err:
        assert str(err).startswith(str(roster))
    else:
        assert rows and all(re.fullmatch(r"[A-Za-z0-9_.@+-]{1,64}", i) and 0 < len(n) <= 200 for i, n in rows)


# ----------------------------------------------------------------------------- sign-in and cookies

def test_sign_in_sets_a_strict_cookie_and_bad_tokens_fail(site):
    token = site.db.set_user("s1", "Ada", "student")
    with TestClient(site.app) as c:
        assert c.get("/login?token=" + "x" * 32, follow_redirects=False).status_code == 403
        assert c.get("/login", follow_redirects=False).status_code == 403
        r = c.get(f"/login?token={token}", follow_redirects=False)
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
        assert token not in cookie
        page = c.get("/")
        assert "Ada" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        # sign out (a POST with the CSRF token) ends the session
        assert c.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False).status_code == 303
    with TestClient(site.app) as c:
        assert "Sign in" in c.get("/").text


def test_failed_sign_ins_are_limited_per_address_and_good_ones_are_not(site):
    tokens = [site.db.set_user(f"s{k}", "S", "student") for k in range(40)]
    with TestClient(site.app) as c:
        for t in tokens:                   # a class behind one address signs in at once
            assert c.get(f"/login?token={t}", follow_redirects=False).status_code == 303
        codes = [c.get("/login?token=" + "y" * 30, follow_redirects=False).status_code for _ in range(31)]
        assert codes[:30] == [403] * 30 and codes[30] == 429
        assert c.get(f"/login?token={tokens[0]}", follow_redirects=False).status_code == 429


def test_cookies_are_secure_behind_https_and_the_lecturer_is_no_student(course, tmp_path):
    s = Site(course, tmp_path, secure_cookies=True)
    token = s.db.set_user("lecturer", "Prof", "lecturer")
    with TestClient(s.app) as c:
        r = c.get(f"/login?token={token}", follow_redirects=False)
        assert "Secure" in r.headers["set-cookie"] and r.headers["location"] == "/lecturer"
    (tmp_path / "plain").mkdir()
    s = Site(course, tmp_path / "plain")
    lect = s.client("lecturer", "Prof", role="lecturer")
    assert lect.get("/p/evil").status_code == 403
    assert lect.post("/p/evil", data={"a:c": "1"}, follow_redirects=False).status_code == 403
    assert s.db.attempts_of("lecturer", "evil") == []
    s.close()


def test_static_katex_is_served_locally(site):
    with TestClient(site.app) as c:
        js = c.get("/static/katex/katex.min.js")
        assert js.status_code == 200 and "katex" in js.text[:2000].lower()
        css = c.get("/static/katex/katex.min.css").text
        font = re.search(r"url\((fonts/[^)]+\.woff2)\)", css).group(1)
        assert c.get(f"/static/katex/{font}").status_code == 200
        page = c.get("/static/site.js").text
        assert "katex.render" in page
    html = (Path(__file__).resolve().parents[1] / "derive/serve/templates/base.html").read_text()
    assert "http" not in html       # nothing from a CDN


# ----------------------------------------------------------------------------- grading

def test_answers_are_graded_as_nnderive_check_grades_them(site, tmp_path):
    c = site.client("s1")
    key = site.course.version_for("hw_222", "s1").key
    answers = {"h1": "0.5", "h2": "0.4950", "o1": "0.48", "grad_o1": "$o_1 - y_1$",
               "grad_In_o1": r"$(o_1 - y_1)\,o_1(1 - o_1)$", "grad_w1": "0.0008", "w5_new": "1e400"}
    aid = attempt_id(submit(c, "hw_222", answers))
    got = graded(site.db, aid)
    want = check_records(site.course, key, answers, tmp_path)
    strip = lambda recs: sorted(json.dumps(r, sort_keys=True) for r in recs)   # noqa: E731
    assert strip(got["records"]) == strip(want["records"])
    assert (got["score"], got["max_score"]) == (want["score"], want["max_score"])
    page = c.get(f"/p/hw_222?attempt={aid}").text
    for r in want["records"]:
        if r["answer"] is not None:
            assert f'class="badge {r["verdict"]}"' in page


def test_the_answer_key_is_all_correct_and_full_marks(site):
    c = site.client("s1")
    key = site.course.version_for("hw_222", "s1").key
    pid, _, variant = key.partition("/")
    number = variant.split("_")[1]
    answers = json.loads((site.course.state / "variants" / pid / f"key_{number}.json").read_text())["answers"]
    result = graded(site.db, attempt_id(submit(c, "hw_222", answers)))
    assert {r["verdict"] for r in result["records"]} == {"correct"}
    assert result["score"] == result["max_score"] == 12       # docs/examples/hw_222.toml: 10 × 1 + grad_w1 × 2


def test_error_is_carried_forward_across_the_fields_of_one_submission(site, tmp_path):
    """A wrong h1, and o1 computed from it (by the check's own recomputation): o1 is 'carried'."""
    c = site.client("s1")
    key = site.course.version_for("hw_222", "s1").key
    pid, _, variant = key.partition("/")
    spec = json.loads((site.course.state / "variants" / pid / f"{variant}.json").read_text())
    import mpmath
    v = {k: mpmath.mpf(x) for k, x in spec["graph"]["values"].items()}
    sig = lambda x: 1 / (1 + mpmath.exp(-x))          # noqa: E731
    h2 = mpmath.mpf(f"{float(sig(v['w2'] * v['x1'] + v['w4'] * v['x2'])):.4f}")   # h2 right, to 4 decimals
    o1_true = sig(v["w5"] * sig(v["w1"] * v["x1"] + v["w3"] * v["x2"]) + v["w7"] * h2)
    o1 = sig(v["w5"] * mpmath.mpf("0.1111") + v["w7"] * h2)    # o1 from the student's own wrong h1
    assert abs(o1 - o1_true) > 1e-3                               # the test's data tell the two apart
    answers = {"h1": "0.1111", "h2": f"{float(h2):.4f}", "o1": f"{float(o1):.4f}"}
    result = graded(site.db, attempt_id(submit(c, "hw_222", answers)))
    verdict = {r["quantity"]: r["verdict"] for r in result["records"]}
    assert verdict["h1"] == "wrong" and verdict["h2"] == "correct" and verdict["o1"] == "carried"


def test_every_attempt_is_kept_and_the_latest_is_shown(site):
    c = site.client("s1")
    a1 = attempt_id(submit(c, "hw_222", {"h1": "0.1"}))
    graded(site.db, a1)
    a2 = attempt_id(submit(c, "hw_222", {"h1": "0.2", "h2": "0.3"}))
    graded(site.db, a2)
    page = c.get("/p/hw_222").text
    assert 'value="0.2"' in page and 'value="0.3"' in page           # the latest answers fill the form
    assert f"?attempt={a1}" in page and f"?attempt={a2}" in page     # both in the history
    old = c.get(f"/p/hw_222?attempt={a1}").text
    assert 'value="0.1"' in old and "older attempt" in old
    rows = site.db.attempts_of("s1", "hw_222")
    assert [json.loads(r["answers"]) for r in rows] == [{"h1": "0.2", "h2": "0.3"}, {"h1": "0.1"}]


def test_a_submission_not_graded_in_time_shows_a_page_that_polls_for_it(course, tmp_path, monkeypatch):
    import threading
    release, real = threading.Event(), course.grade
    monkeypatch.setattr(course, "grade", lambda key, answers: (release.wait(60), real(key, answers))[1])
    s = Site(course, tmp_path, wait=0.0)
    c = s.client("s1")
    aid = attempt_id(submit(c, "hw_222", {"grad_o1": "$o_1 - y_1$"}))
    page = c.get(f"/p/hw_222?attempt={aid}").text
    assert f'data-pending="/p/hw_222/status/{aid}"' in page and "being graded" in page
    assert c.get(f"/p/hw_222/status/{aid}").json() == {"status": "pending"}
    release.set()
    graded(s.db, aid)
    assert c.get(f"/p/hw_222/status/{aid}").json() == {"status": "graded"}
    assert 'data-pending=""' in c.get(f"/p/hw_222?attempt={aid}").text
    s.close()


# ----------------------------------------------------------------------------- isolation

def test_students_cannot_see_or_change_each_others_attempts(site):
    a = site.client("alice", "Alice")
    b = site.client("bob", "Bob")
    aid = attempt_id(submit(a, "hw_222", {"h1": "0.4242"}))
    graded(site.db, aid)
    # a guessed id: the same answer as an id that does not exist
    assert b.get(f"/p/hw_222?attempt={aid}").status_code == 404
    assert b.get(f"/p/hw_222?attempt={aid + 1000}").status_code == 404
    assert b.get(f"/p/hw_222/status/{aid}").status_code == 404
    assert "0.4242" not in b.get("/p/hw_222").text
    # forged form fields naming another user or attempt are refused, nothing is written
    for extra in ({"user_id": "alice"}, {"attempt": str(aid)}, {"a:not_asked": "1"}):
        r = submit(b, "hw_222", {"h1": "0.9"}, **extra)
        assert r.status_code == 400
    # Bob's CSRF token in Alice's session does not pass, and Alice's in Bob's neither
    csrf_b = csrf_of(b.get("/p/hw_222").text)
    assert submit(a, "hw_222", {"h1": "0.9"}, csrf=csrf_b).status_code == 403
    assert [r["id"] for r in site.db.attempts_of("alice", "hw_222")] == [aid]
    assert site.db.attempts_of("bob", "hw_222") == []
    # students are not lecturers
    for path in ("/lecturer", "/lecturer/grades.csv", "/lecturer/gradescope.zip"):
        assert b.get(path).status_code == 403
    # each sees their own variant, whatever the other's
    assert a.get("/p/hw_222").status_code == b.get("/p/hw_222").status_code == 200


def test_variants_are_assigned_by_a_keyed_hash(course):
    seen = {course.version_for("hw_222", f"s{i}").key for i in range(40)}
    assert seen == set(course.problems["hw_222"].versions)          # both variants are handed out
    assert all(course.version_for("hw_222", "s7") == course.version_for("hw_222", "s7") for _ in range(3))


def test_forms_without_a_valid_csrf_token_or_from_another_site_are_refused(site):
    c = site.client("s1")
    assert c.post("/p/hw_222", data={"a:h1": "0.5"}, follow_redirects=False).status_code == 403
    assert submit(c, "hw_222", {"h1": "0.5"}, csrf="forged").status_code == 403
    csrf = csrf_of(c.get("/p/hw_222").text)
    r = c.post("/p/hw_222", data={"csrf": csrf, "a:h1": "0.5"}, headers={"origin": "https://evil.example"},
               follow_redirects=False)
    assert r.status_code == 403
    assert site.db.attempts_of("s1", "hw_222") == []


def test_oversized_forms_and_answers_are_refused(site):
    c = site.client("s1")
    assert submit(c, "hw_222", {"h1": "1" * 2001}).status_code == 413
    assert submit(c, "hw_222", {"h1": "1" * 300_000}).status_code == 413
    assert submit(c, "hw_222", {}).status_code == 400
    assert site.db.attempts_of("s1", "hw_222") == []


def test_attempts_are_rate_limited(course, tmp_path):
    s = Site(course, tmp_path, rate=(3, 3600.0))
    c = s.client("s1")
    for k in range(3):
        assert submit(c, "evil", {"c": str(k)}).status_code == 303
    r = submit(c, "evil", {"c": "9"})
    assert r.status_code == 429 and "At most 3 submissions" in r.text
    assert len(s.db.attempts_of("s1", "evil")) == 3
    s.close()


# ----------------------------------------------------------------------------- escaping

def test_script_in_every_field_and_in_a_spec_title_is_shown_as_text(site):
    c = site.client("s1", name=XSS)
    fields = [f.key for f in site.course.version_for("evil", "s1").fields]
    aid = attempt_id(submit(c, "evil", {k: XSS for k in fields}))
    graded(site.db, aid)
    pages = [c.get("/").text, c.get("/p/evil").text, c.get(f"/p/evil?attempt={aid}").text]
    lect = site.client("lecturer", XSS, role="lecturer")
    pages.append(lect.get("/lecturer").text)
    for html in pages:
        assert "<script>alert" not in html and "<b>bold" not in html
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert all(re.fullmatch(r'<script defer src="/static/[a-z./]+"></script>', s + "</script>") for s in scripts)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in pages[1]
    assert "&lt;b&gt;bold&lt;/b&gt;" in pages[0]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["c", "L", "grad_a"]), st.text(min_size=1, max_size=120), min_size=1))
def test_any_typed_text_is_graded_or_refused_never_an_error(course, tmp_path_factory, answers):
    s = Site(course, tmp_path_factory.mktemp("h"), rate=(1000, 60.0))
    c = s.client("h")
    r = submit(c, "evil", answers)
    try:
        if all(not v.strip() for v in answers.values()):
            assert r.status_code == 400
            return
        result = graded(s.db, attempt_id(r))
        assert {rec["verdict"] for rec in result["records"]} <= {"correct", "carried", "precision", "wrong",
                                                                 "undetermined", "invalid"}
        assert c.get("/p/evil").status_code == 200
    finally:
        s.close()


# ----------------------------------------------------------------------------- crash recovery

def test_an_attempt_committed_but_not_graded_is_graded_on_restart(course, tmp_path, tmp_path_factory):
    db = Database(tmp_path / "site.sqlite")
    db.set_user("s1", "Ada", "student")
    key = course.version_for("hw_222", "s1").key
    answers = {"h1": "0.5", "grad_o1": "$o_1 - y_1$"}
    aid = db.add_attempt("s1", "hw_222", key, answers)      # as if the server died right after the commit
    assert db.pending() == [aid]
    app = create_app(course, Database(tmp_path / "site.sqlite"))
    with TestClient(app):                                    # startup regrades what is pending
        result = graded(db, aid)
    assert db.pending() == []
    want = check_records(course, key, answers, tmp_path_factory.mktemp("c"))
    assert sorted(json.dumps(r, sort_keys=True) for r in result["records"]) == \
        sorted(json.dumps(r, sort_keys=True) for r in want["records"])


# ----------------------------------------------------------------------------- the lecturer

def test_lecturer_statistics_and_exports(site):
    a, b = site.client("alice", "Alice"), site.client("bob", "=cmd|' /C calc'!A0")
    ka = site.course.version_for("evil", "alice")
    # evil.toml: c = a*b = 0.5*2 = 1, L = c^2 = 1, dL/da = 2c*b = 4 (exact; a single version)
    ra = graded(site.db, attempt_id(submit(a, "evil", {"c": "1.0000", "L": "1.0000", "grad_a": "4.0000"})))
    rb = graded(site.db, attempt_id(submit(b, "evil", {"c": "2.0000", "L": "1.0000"})))
    assert ka.key == "evil" and ra["score"] == ra["max_score"] == 3
    lect = site.client("lecturer", "Prof", role="lecturer")
    page = lect.get("/lecturer").text
    row = lambda q: re.search(rf"<code>{q}</code></td><td>(\d+)</td><td>(\d+)</td>", page).groups()  # noqa: E731
    assert row("c") == ("2", "1") and row("grad_a") == ("1", "1")
    text = lect.get("/lecturer/grades.csv").text
    rows = {r["student_id"]: r for r in csv.DictReader(io.StringIO(text))}
    assert float(rows["alice"]["evil score"]) == ra["score"] and float(rows["bob"]["evil score"]) == rb["score"]
    assert rows["bob"]["name"].startswith("'=")                    # no spreadsheet formula
    z = zipfile.ZipFile(io.BytesIO(lect.get("/lecturer/gradescope.zip").content))
    results = json.loads(z.read("alice.results.json"))
    scored = [t for t in results["tests"] if t["max_score"] > 0]   # the others show expected values once published
    assert results["score"] == ra["score"] and len(scored) == len(ra["records"])
    assert all(t["name"].startswith("evil: ") for t in results["tests"])
