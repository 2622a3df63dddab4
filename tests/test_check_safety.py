"""Nothing lost, nothing mixed up (issue 9): result names, visibility, atomic outputs under SIGKILL,
file names that are not UTF-8, control characters, FIFOs and links, honest accidents, argument checks.

The command runs in a subprocess wherever a hang, a locale or a kill is part of the test; the
expected values are computed here with mpmath from the problem's given numbers.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mpmath as mp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from derive.grading.submissions import escape
from derive.grading.grade import SpecError
from derive.grading.answers import read_answer_file

ROOT = Path(__file__).resolve().parents[1]
HW = str(ROOT / "docs" / "examples" / "hw_222.toml")
H1 = mp.nstr(1 / (1 + mp.exp(-(mp.mpf("0.20") * mp.mpf("0.5") + mp.mpf("0.50") * mp.mpf("0.3")))), 4)  # 0.5622
H2 = mp.nstr(1 / (1 + mp.exp(-(mp.mpf("-0.40") * mp.mpf("0.5") + mp.mpf("0.60") * mp.mpf("0.3")))), 4)
HW_TOTAL = 12   # 11 asked quantities, grad_w1 worth 2 (docs/examples/hw_222.toml [grading])
HANG = 300      # hang guard only


def cli(*args, env=None, timeout=HANG):
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "derive.cli", *map(os.fsdecode, args)], capture_output=True,
                          env=full, timeout=timeout, cwd=ROOT)


def answers(path: Path, student: str = "Ada", **values) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ['problem = "hw_222"', f"student = {json.dumps(student)}", "[answers]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def by_file(stdout: bytes) -> dict:
    return {Path(s["file"]).name: s for s in json.loads(stdout)["submissions"]}


# ----------------------------------------------------------------------------- Gradescope

def test_gradescope_names_by_path_relative_to_the_folder(tmp_path):
    answers(tmp_path / "s" / "alice" / "answers.toml", "Alice", h1=H1)
    answers(tmp_path / "s" / "bob" / "answers.toml", "Bob", h1="0.9")
    answers(tmp_path / "s" / "carol" / "answers.toml", "Carol", h2=H2)
    r = cli("check", HW, tmp_path / "s", "--gradescope", tmp_path / "gs", "--no-progress")
    assert r.returncode == 1, r.stderr
    got = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "gs").rglob("answers.results.json")}
    assert set(got) == {"alice", "bob", "carol"}
    assert any(f"your answer {H1}" in t["output"] for t in got["alice"]["tests"])
    assert any("your answer 0.9" in t["output"] for t in got["bob"]["tests"])
    assert any(f"your answer {H2}" in t["output"] for t in got["carol"]["tests"])


def test_gradescope_refuses_clashing_names_and_lists_them(tmp_path):
    a = answers(tmp_path / "x" / "a.toml", h1=H1)
    b = answers(tmp_path / "y" / "a.toml", h1="0.9")
    r = cli("check", HW, a, b, "--gradescope", tmp_path / "gs")
    assert r.returncode == 2
    err = r.stderr.decode()
    assert str(a) in err and str(b) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "gs").exists()


def test_gradescope_visibility_hides_expected_values_until_published(tmp_path):
    f = answers(tmp_path / "a.toml", h1="0.9", h2=H2)
    r = cli("check", HW, f, "--gradescope", tmp_path / "r.json")
    assert r.returncode == 1, r.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    graded = [t for t in res["tests"] if t["max_score"] > 0]
    shown_early = [t for t in res["tests"] if t["visibility"] != "after_published"]
    assert graded and all(t["visibility"] == "after_due_date" for t in graded)
    assert not any(H1 in t["output"] for t in shown_early)      # h1's true value, only after publication
    assert any(H1 in t["output"] and t["visibility"] == "after_published" for t in res["tests"])
    r = cli("check", HW, f, "--gradescope", tmp_path / "r.json", "--visibility", "visible",
            "--expected-visibility", "hidden")
    res = json.loads((tmp_path / "r.json").read_text())
    assert {t["visibility"] for t in res["tests"]} == {"visible", "hidden"}


def test_gradescope_json_for_several_files_is_refused(tmp_path):
    answers(tmp_path / "s" / "a.toml", h1=H1)
    answers(tmp_path / "s" / "b.toml", h1=H1)
    r = cli("check", HW, tmp_path / "s", "--gradescope", tmp_path / "one.json")
    assert r.returncode == 2 and len(r.stderr.decode().strip().splitlines()) == 1
    assert not (tmp_path / "one.json").exists()


# ----------------------------------------------------------------------------- arguments

@pytest.mark.parametrize("args", [["--timeout", "0"], ["--timeout", "-5"], ["--jobs", "0"], ["--timeout", "nan"],
                                  ["--latex-timeout", "0"], ["--memory", "0"]])
def test_bad_numbers_are_refused_in_one_line(tmp_path, args):
    f = answers(tmp_path / "a.toml", h1=H1)
    r = cli("check", HW, f, *args)
    assert r.returncode == 2 and r.stdout == b""
    assert len(r.stderr.decode().strip().splitlines()) == 1 and args[0] in r.stderr.decode()
    r = cli("variants", HW, "--count", "2", "-o", tmp_path / "v", "--timeout", "0")
    assert r.returncode == 2 and len(r.stderr.decode().strip().splitlines()) == 1
    assert not (tmp_path / "v").exists()


def test_spec_errors_name_the_file_once(tmp_path):
    bad = tmp_path / "broken_spec.toml"
    bad.write_text("[graph\n", encoding="utf-8")
    f = answers(tmp_path / "a.toml", h1=H1)
    r = cli("check", bad, f)
    assert r.returncode == 2
    assert r.stderr.decode().count("broken_spec.toml") == 1


# ----------------------------------------------------------------------------- atomic outputs

def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _kill_while_writing(cmd: list, folder: Path, after: float) -> None:
    """Start ``cmd``; SIGKILL it once it is writing (its staging folder exists) or after ``after`` s."""
    proc = subprocess.Popen([sys.executable, "-m", "derive.cli", *map(str, cmd)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    started = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - started < HANG:
            staging = list(folder.parent.glob(f".{folder.name}.*"))
            if staging or time.monotonic() - started > after:
                break
            time.sleep(0.002)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(HANG)


@pytest.mark.parametrize("after", [2.0, 1e9])   # killed while grading, and killed while writing
def test_check_killed_leaves_the_old_results_or_the_new(tmp_path, after):
    gs = tmp_path / "gs"
    for i in range(3):
        answers(tmp_path / "old" / f"s{i}.toml", f"old{i}", h1=H1)
    assert cli("check", HW, tmp_path / "old", "--gradescope", gs).returncode == 1
    old = _snapshot(gs)
    assert "run.json" in old and len(old) == 4
    for i in range(40):
        answers(tmp_path / "new" / f"t{i}.toml", f"new{i}", h1="0.9")
    _kill_while_writing(["check", HW, tmp_path / "new", "--gradescope", gs, "--jobs", "1"], gs, after)
    now = _snapshot(gs)
    if now != old:
        assert set(now) == {"run.json"} | {f"t{i}.results.json" for i in range(40)}
        assert all(json.loads(now[f"t{i}.results.json"])["score"] == 0 for i in range(40))


@pytest.mark.parametrize("after", [3.0, 1e9])
def test_variants_killed_leaves_one_seed(tmp_path, after):
    out = tmp_path / "v"
    assert cli("variants", HW, "--count", "2", "--seed", "1", "-o", out).returncode == 0
    old = _snapshot(out)
    _kill_while_writing(["variants", HW, "--count", "30", "--seed", "2", "-o", out], out, after)
    now = _snapshot(out)
    if now != old:
        manifest = json.loads(now["variants.json"])
        assert manifest["seed"] == 2 and manifest["count"] == 30
        want = {"variants.json", "run.json"} | {f"{v['name']}.json" for v in manifest["variants"]} \
            | {v["key"] for v in manifest["variants"]}
        assert set(now) == want and len(want) == 62
        for v in manifest["variants"]:   # each spec holds the numbers the manifest says were drawn
            spec = json.loads(now[v["spec"]])
            assert all(spec["graph"]["values"][k] == x for k, x in v["drawn"].items())


def test_rerun_into_a_folder_removes_stale_results(tmp_path):
    gs = tmp_path / "gs"
    for name in ("a", "b"):
        answers(tmp_path / "one" / f"{name}.toml", h1=H1)
    assert cli("check", HW, tmp_path / "one", "--gradescope", gs).returncode == 1
    answers(tmp_path / "two" / "c.toml", h1=H1)
    assert cli("check", HW, tmp_path / "two", "--gradescope", gs).returncode == 1
    assert sorted(p.name for p in gs.iterdir()) == ["c.results.json", "run.json"]
    manifest = json.loads((gs / "run.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["c.results.json"] and manifest["run_id"] and manifest["time"]


def test_a_folder_of_other_files_is_not_replaced(tmp_path):
    gs = tmp_path / "mine"
    gs.mkdir()
    (gs / "thesis.tex").write_text("precious")
    f1 = answers(tmp_path / "a.toml", h1=H1)
    f2 = answers(tmp_path / "b.toml", h1=H1)
    r = cli("check", HW, f1, f2, "--gradescope", gs)
    assert r.returncode == 2 and (gs / "thesis.tex").read_text() == "precious"


# ----------------------------------------------------------------------------- names and escapes

def test_file_name_not_utf8_under_strict_locale(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    raw = os.fsencode(str(folder)) + b"/caf\xe9_\xff.toml"
    with open(raw, "w", encoding="utf-8") as f:
        f.write(f'problem = "hw_222"\nstudent = "Zoe"\n[answers]\nh1 = "{H1}"\n')
    answers(folder / "plain.toml", "Ann", h1="0.9")
    strict = {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    r = cli("check", HW, folder, "--no-progress", env=strict)
    assert r.returncode == 1, r.stderr
    assert "caf\\xe9_\\xff.toml (Zoe): 1 / 12" in r.stdout.decode("utf-8")   # strict: fails on non-UTF-8
    r = cli("check", HW, folder, "--json", env=strict)
    assert r.returncode == 1, r.stderr
    subs = by_file(r.stdout)
    assert subs["caf\\xe9_\\xff.toml"]["score"] == 1 and subs["plain.toml"]["score"] == 0


def test_control_characters_are_escaped_in_every_report(tmp_path):
    evil = "Eve\x1b[2J\nfake.toml (Bob): 12 / 12"
    answers(tmp_path / "s" / "e\x1b[31mvil\n.toml", evil, h1="0.9")
    for fmt in ([], ["--json"]):
        r = cli("check", HW, tmp_path / "s", *fmt, "--no-progress")
        out = r.stdout.decode()
        assert r.returncode == 1 and "\x1b" not in out
        assert not any(line.startswith("fake.toml") for line in out.splitlines())
        assert "\\x1b[2J\\nfake.toml" in out.replace("\\\\", "\\")
    r = cli("check", HW, tmp_path / "s", "--gradescope", tmp_path / "gs")
    (res,) = [json.loads(p.read_text()) for p in (tmp_path / "gs").rglob("*.results.json")]
    outputs = [t["output"] for t in res["tests"]]
    assert outputs and not any("\x1b" in o for o in outputs)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_escape_leaves_printable_text_and_escapes_the_rest(s):
    out = escape(s)
    out.encode("utf-8", "strict")
    assert "\n" not in out and "\x1b" not in out and "\r" not in out
    assert all(c.isprintable() or c == " " for c in out)
    if all(c.isprintable() for c in s) and "\\" not in s:
        assert out == s


# ----------------------------------------------------------------------------- FIFOs and links

def test_fifo_devices_and_links_are_invalid_records_and_the_run_goes_on(tmp_path):
    s = tmp_path / "s"
    answers(s / "alice.toml", "Alice", h1=H1)
    answers(tmp_path / "outside.toml", "Mallory", h1=H1)
    os.mkfifo(s / "fifo.toml")
    (s / "zero.toml").symlink_to("/dev/zero")
    (s / "copy.toml").symlink_to(s / "alice.toml")
    (s / "out.toml").symlink_to(tmp_path / "outside.toml")
    r = cli("check", HW, s, "--json")
    assert r.returncode == 1, r.stderr
    subs = by_file(r.stdout)
    assert set(subs) == {"alice.toml", "fifo.toml", "zero.toml", "copy.toml", "out.toml"}
    assert subs["alice.toml"]["score"] == 1
    for name, words in (("fifo.toml", "FIFO"), ("zero.toml", "link"), ("copy.toml", "alice.toml"),
                        ("out.toml", "outside")):
        (rec,) = subs[name]["records"]
        assert rec["verdict"] == "invalid" and words in rec["feedback"], rec
        assert subs[name]["score"] == 0 and subs[name]["max_score"] == HW_TOTAL
    # given as file arguments: each is one invalid record, and the good file is still graded
    r = cli("check", HW, s / "fifo.toml", s / "zero.toml", s / "alice.toml", "--json")
    assert r.returncode == 1, r.stderr
    subs = by_file(r.stdout)
    assert subs["alice.toml"]["score"] == 1
    assert subs["fifo.toml"]["records"][0]["verdict"] == subs["zero.toml"]["records"][0]["verdict"] == "invalid"


# ----------------------------------------------------------------------------- honest accidents

@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_byte_order_mark_is_accepted(tmp_path, fmt):
    f = tmp_path / f"a.{fmt}"
    body = (f'problem = "hw_222"\n[answers]\nh1 = "{H1}"\n' if fmt == "toml"
            else json.dumps({"problem": "hw_222", "answers": {"h1": H1}}))
    f.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert read_answer_file(f)["answers"]["h1"] == H1
    r = cli("check", HW, f, "--json")
    assert by_file(r.stdout)[f.name]["score"] == 1


def test_a_number_out_of_range_makes_only_that_answer_invalid(tmp_path):
    vals = {q: "0e100" for q in ("o1", "o2", "Error", "grad_o1", "grad_In_o1", "grad_w5", "grad_h1", "grad_w1",
                                 "w5_new")}
    f = tmp_path / "a.json"
    f.write_text(json.dumps({"problem": "hw_222", "answers": {"h1": H1, "h2": "0e100", **vals}}))
    r = cli("check", HW, f, "--json")
    (sub,) = json.loads(r.stdout)["submissions"]
    recs = {rec["quantity"]: rec for rec in sub["records"]}
    assert recs["h1"]["verdict"] == "correct" and sub["score"] == 1 and sub["max_score"] == HW_TOTAL
    assert recs["h2"]["verdict"] == "invalid" and "range" in recs["h2"]["feedback"]


def test_a_file_stopped_by_a_limit_scores_zero_of_its_real_total(tmp_path):
    f = answers(tmp_path / "a.toml", h1=H1)
    r = cli("check", HW, f, "--json", "--timeout", "0.001")   # the file's worker is stopped by time
    (sub,) = json.loads(r.stdout)["submissions"]
    assert sub["score"] == 0 and sub["max_score"] == HW_TOTAL
    assert "stopped" in sub["records"][0]["feedback"]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([".toml", ".json"]))
def test_any_bytes_are_read_or_refused_with_a_spec_error(tmp_path_factory, data, suffix):
    f = tmp_path_factory.mktemp("b") / f"x{suffix}"
    f.write_bytes(data)
    try:
        assert isinstance(read_answer_file(f), dict)
    except SpecError as err:
        assert err.message and "\n" not in err.message


# ----------------------------------------------------------------------------- bounded cost

def test_a_tower_of_exponentials_in_a_spec_is_refused_naming_the_key(tmp_path):
    spec = tmp_path / "tower.toml"
    spec.write_text(Path(HW).read_text().replace('x1 = "0.5"', 'x1 = "exp(exp(exp(exp(100))))"'))
    r = cli("solve", spec, timeout=120)
    err = r.stderr.decode().strip()
    assert r.returncode == 2 and len(err.splitlines()) == 1
    assert "graph.values.x1" in err and "exp(exp(100))" in err


_TREE = st.recursive(st.sampled_from(["2", "0.5", "3", "100", "0.01", "7"]),
                     lambda sub: st.one_of(st.tuples(st.sampled_from(["exp", "log", "sqrt"]), sub),
                                           st.tuples(st.sampled_from(["*", "-", "+"]), sub, sub)),
                     max_leaves=8)


def _text(t) -> str:
    if isinstance(t, str):
        return t
    if len(t) == 2:
        return f"{t[0]}({_text(t[1])})"
    return f"({_text(t[1])}) {t[0]} ({_text(t[2])})"


def _oracle(t):
    """mpmath's value at 50 digits, or None as soon as an intermediate is not a real number below 1e100."""
    if isinstance(t, str):
        return mp.mpf(t)
    args = [_oracle(x) for x in t[1:]]
    if any(a is None for a in args):
        return None
    if t[0] == "exp":
        v = mp.exp(args[0]) if args[0] < 231 else None
    elif t[0] in ("log", "sqrt"):
        v = None if args[0] <= 0 and t[0] == "log" or args[0] < 0 else getattr(mp, t[0])(args[0])
    else:
        v = {"*": lambda a, b: a * b, "-": lambda a, b: a - b, "+": lambda a, b: a + b}[t[0]](*args)
    return v if v is not None and abs(v) <= mp.mpf(10) ** 100 else None


def _number_or_error(text: str):
    from derive.core.errors import SpecError as Err
    from derive.core.spec import number
    try:
        return float(number(text, "graph.values.a"))
    except Err as err:
        return err.path + "|" + err.message


@settings(max_examples=60, deadline=None)
@given(_TREE)
def test_spec_numbers_are_bounded_and_exact_when_accepted(tree):
    """Each generated expression is read in bounded time (a hang guard of 60 s in a worker); when
    mpmath finds every intermediate a real number below 1e100 it is accepted with mpmath's value,
    and whatever is refused is refused naming the key path."""
    from derive.core.sandbox import run
    text = _text(tree)
    with mp.workdps(50):
        want = _oracle(tree)
    got = run(_number_or_error, text, timeout=60)
    if isinstance(got, str):
        assert got.startswith("graph.values.a|")
        assert want is None, (text, got)
    elif want is not None:
        assert got == pytest.approx(float(want), rel=1e-12, abs=1e-300)


def test_formulas_past_the_cap_are_undetermined(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('problem = "hw_222"\n[answers]\n'
                 "grad_o1 = '$o_1 - y_1$'\n"
                 "grad_In_o1 = '$(o_1 - y_1) o_1 (1 - o_1)$'\n"
                 "grad_o2 = '$o_2 - y_2$'\n"
                 "grad_In_o2 = '$(o_2 - y_2) o_2 (1 - o_2)$'\n")
    r = cli("check", HW, f, "--json", "--max-formulas", "2")
    (sub,) = json.loads(r.stdout)["submissions"]
    verdicts = [(rec["quantity"], rec["verdict"], rec["feedback"]) for rec in sub["records"] if rec["answer"]]
    assert [v for _, v, _ in verdicts[:2]] == ["correct", "correct"]
    assert all(v == "undetermined" and "--max-formulas" in fb for _, v, fb in verdicts[2:]) and len(verdicts) == 4


def test_one_files_formulas_share_a_time_budget(tmp_path):
    slow = "$" + "".join(f"(w_{1 + i % 8}+w_{1 + (4 * i + 1) % 8})" for i in range(18)) + "$"
    names = ["In_h1", "In_h2", "h1", "h2", "In_o1", "In_o2", "o1", "o2", "Error", "grad_o1", "grad_o2", "grad_h1"]
    f = tmp_path / "slow.toml"
    f.write_text('problem = "hw_222"\n[answers]\n' + "".join(f"{n} = '{slow}'\n" for n in names))
    r = cli("check", HW, f, "--json", "--formula-budget", "3", "--latex-timeout", "2", "--jobs", "2")
    (sub,) = json.loads(r.stdout)["submissions"]
    budget = [rec for rec in sub["records"] if "--formula-budget" in rec["feedback"]]
    assert len(budget) >= len(names) - 3 and all(rec["verdict"] == "undetermined" for rec in budget)


def test_a_huge_list_is_refused_before_it_is_built(tmp_path):
    for suffix, body in ((".toml", 'problem = "hw_222"\n[answers]\nh1 = [' + ",".join(["0"] * 200_000) + "]\n"),
                         (".json", json.dumps({"problem": "hw_222", "answers": {"h1": [0] * 200_000}}))):
        f = tmp_path / f"big{suffix}"
        f.write_text(body)
        with pytest.raises(SpecError, match="at most 5000 answers"):
            read_answer_file(f)


_TEXT = st.text(alphabet=st.sampled_from(list("ab,=#'\"\\[]{} $\n1.")), max_size=12)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True),
                       st.one_of(_TEXT, st.lists(_TEXT, max_size=6),
                                 st.lists(st.lists(_TEXT, min_size=1, max_size=3), max_size=3)), max_size=8),
       st.booleans())
def test_the_count_before_parsing_never_undercounts_nor_overcounts(answers_table, as_json):
    """The separators counted before parsing are within the file's real count of values, however
    the strings inside are written (commas, '=', quotes, '#', brackets)."""
    from derive.grading.answers import _separators

    def leaves(v):
        return sum(leaves(x) for x in v) if isinstance(v, list) else 1

    def toml_value(v):
        return "[" + ", ".join(toml_value(x) for x in v) + "]" if isinstance(v, list) else json.dumps(v)

    if as_json:
        text = json.dumps({"problem": "p", "answers": answers_table})
    else:
        text = 'problem = "p"\n[answers]\n' + "".join(f"{k} = {toml_value(v)}\n" for k, v in answers_table.items())
    values = sum(leaves(v) for v in answers_table.values()) + 1
    arrays = sum(1 + sum(isinstance(x, list) for x in v) for v in answers_table.values() if isinstance(v, list))
    count = _separators(text, as_json)
    assert count <= values + len(answers_table) + arrays + 2
    assert values <= count + arrays + 2 + len(answers_table)


# ----------------------------------------------------------------------------- variant swap (roster)

def _hmac_variant(key: bytes, sid: str, count: int) -> int:
    """The documented assignment (docs/checking.md), computed here with the standard library."""
    import hashlib
    import hmac
    return int.from_bytes(hmac.new(key, b"nnderive variant\0" + sid.encode(), hashlib.sha256).digest()[:8],
                          "big") % count + 1


@pytest.fixture(scope="module")
def rostered(tmp_path_factory):
    d = tmp_path_factory.mktemp("roster")
    (d / "roster.csv").write_text("student_id,name\ns001,Ann\ns002,Bob\ns003,Cy\ns004,Di\ns005,Ed\n")
    key = b"0123456789abcdef-course-secret-of-the-lecturer"
    (d / "course.key").write_bytes(key + b"\n")
    r = cli("variants", HW, "--count", "3", "--seed", "5", "-o", d / "v", "--roster", d / "roster.csv",
            "--course-key", d / "course.key")
    assert r.returncode == 0, r.stderr
    return d, key


def test_roster_assignments_follow_the_hmac_and_nothing_reveals_key_or_seed(rostered):
    d, key = rostered
    rows = (d / "v" / "assignments.csv").read_text().splitlines()
    assert rows[0] == "student_id,variant"
    got = dict(line.split(",") for line in rows[1:])
    assert got == {sid: f"variant_{_hmac_variant(key, sid, 3):03d}" for sid in ("s001", "s002", "s003", "s004", "s005")}
    for f in (d / "v").iterdir():
        text = f.read_text()
        assert key.decode() not in text
        if f.name.startswith(("variant_", "key_")):
            assert "seed" not in text and "--seed" not in text
    r = cli("handout", d / "v" / "variant_001.json", "--format", "md")
    assert r.returncode == 0 and b"--seed" not in r.stdout and b"Source: nnderive variants hw" in r.stdout


def test_check_roster_grades_against_the_students_variant_and_flags_a_swap(rostered, tmp_path):
    d, key = rostered
    mine = {sid: _hmac_variant(key, sid, 3) for sid in ("s001", "s002", "s003", "s004", "s005")}
    sid = next(s for s, k in mine.items() if k != 1)              # a student not given variant 1
    other = json.loads((d / "v" / "key_001.json").read_text())
    other.update(student=sid, problem="variant_001")              # variant 1's key handed in as theirs
    (tmp_path / "s" ).mkdir()
    (tmp_path / "s" / "swap.json").write_text(json.dumps(other))
    own = json.loads((d / "v" / f"key_{mine[sid]:03d}.json").read_text())
    own.update(student=sid)
    (tmp_path / "s" / "own.json").write_text(json.dumps(own))
    own.update(student="s999")
    (tmp_path / "s" / "stranger.json").write_text(json.dumps(own))
    r = cli("check", d / "v", tmp_path / "s", "--json", "--roster", d / "roster.csv", "--course-key", d / "course.key")
    assert r.returncode == 1, r.stderr
    subs = by_file(r.stdout)
    swap = subs["swap.json"]
    assert swap["problem"] == f"variant_{mine[sid]:03d}" and "variant_001" in swap["flag"]
    assert swap["score"] < swap["max_score"] == HW_TOTAL
    assert subs["own.json"]["score"] == subs["own.json"]["max_score"] == HW_TOTAL and "flag" not in subs["own.json"]
    assert subs["stranger.json"]["score"] == 0 and subs["stranger.json"]["max_score"] == HW_TOTAL
    assert "not on the roster" in subs["stranger.json"]["records"][0]["feedback"]


@pytest.mark.parametrize("env,extra", [({"NNDERIVE_COURSE_KEY": ""}, []), ({"NNDERIVE_COURSE_KEY": "short"}, [])])
def test_a_roster_without_a_usable_key_is_refused(rostered, tmp_path, env, extra):
    d, _ = rostered
    r = cli("variants", HW, "--count", "2", "-o", tmp_path / "v", "--roster", d / "roster.csv", env=env)
    assert r.returncode == 2 and len(r.stderr.decode().strip().splitlines()) == 1 and b"course key" in r.stderr
    assert not (tmp_path / "v").exists()
