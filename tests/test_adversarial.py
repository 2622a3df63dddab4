"""Hostile answer files: each bad answer is invalid with a reason, in bounded time, and the rest is graded.

These go through the real command (``derive.cli.main``), so the workers, time limits and memory
caps are the ones in production.
"""
from __future__ import annotations

import json

import pytest
import sympy as sp

from derive.cli import main
from derive.core.sandbox import Limit, run
from oracles import net222, rnd

V = net222()
GOOD = {"h1": rnd(V["h1"], 4), "o1": rnd(V["o1"], 4)}
GOOD_LATEX = ("grad_w5", r"$(o_1 - y_1)\,o_1(1 - o_1)\,h_1$")

HOSTILE = {
    "In_h1": r"$\mathrm{__import__}('os').system('touch /tmp/pwned')$",
    "In_h2": r"$\text{eval}(1)$",
    "h2": r"$\variable{x}$",
    "In_o1": r"$x := 5$",
    "In_o2": r"$10^{10^{10}}$",
    "o2": r"$(10^{10})!$",
    "Error": "$" + "(" * 200 + "o_1" + ")" * 200 + "$",
    "grad_o1": "$" + "o_1 + " * 200_000 + "o_1$",  # about 1 MB
    "grad_o2": r"$\det\begin{bmatrix}" + r"\\".join("&".join(f"w_{1 + (i * j) % 8}" for j in range(12)) for i in range(12))
               + r"\end{bmatrix}$",
    "grad_In_o1": "nan",
    "grad_In_o2": "inf",
    "grad_h1": "1e309",
    "grad_h2": "-1e-309",
    "grad_In_h1": r"$\sum_{i=1}^{1000000000} i$",
    "grad_In_h2": r"$\operatorname{eig}(w_1)$",
    "grad_w1": r"$e^{e^{e^{e^{e^{e^{e^{e^{10}}}}}}}}$",
    "grad_w2": r"$w_1^{1/3}$",
    "grad_w3": "$" + "\\sigma(" * 30 + "w_1" + ")" * 30 + "$",
}


def write(path, answers, fmt="toml"):
    if fmt == "json":
        path.write_text(json.dumps({"problem": "001_4_net_222", "answers": answers}), encoding="utf-8")
    else:
        lines = ['problem = "001_4_net_222"', "[answers]"]
        lines += [f"{k} = '{v}'" if "'" not in v else f"{k} = {json.dumps(v)}" for k, v in answers.items()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check_json(capsys, *args):
    code = main(["check", *args, "--json", "--no-progress"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_hostile_answers_are_invalid_and_the_rest_is_graded(tmp_path, capsys):
    answers = dict(HOSTILE)
    answers.update(GOOD)
    answers[GOOD_LATEX[0]] = GOOD_LATEX[1]
    f = write(tmp_path / "hostile.json", answers, "json")
    code, out = check_json(capsys, "001_4_net_222", str(f), "--latex-timeout", "5")
    assert code == 1     # the hostile answers earn nothing
    recs = {r["quantity"]: r for r in out["submissions"][0]["records"]}
    for q in ("h1", "o1", "grad_w5"):
        assert recs[q]["verdict"] == "correct", recs[q]
    for q in HOSTILE:
        r = recs[q]
        if q in ("grad_w1", "grad_w2", "grad_w3", "grad_h2"):  # well-formed: graded, not refused
            assert r["verdict"] in ("wrong", "undetermined", "invalid"), r
            continue
        assert r["verdict"] == "invalid" and r["feedback"], r
    assert not any(r["feedback"].startswith("internal error") for r in recs.values())
    assert "pwned" not in " ".join(p.name for p in __import__("pathlib").Path("/tmp").iterdir())


def test_each_hostile_reason_names_the_problem(tmp_path, capsys):
    f = write(tmp_path / "h.json", {k: HOSTILE[k] for k in ("In_o2", "o2", "Error", "grad_o1", "grad_o2",
                                                            "grad_In_o1", "grad_h1")}, "json")
    _, out = check_json(capsys, "001_4_net_222", str(f))
    fb = {r["quantity"]: r["feedback"] for r in out["submissions"][0]["records"]}
    assert "exponent" in fb["In_o2"]
    assert "!" in fb["o2"]
    assert "nested deeper" in fb["Error"]
    assert "longer than" in fb["grad_o1"]
    assert "not understood" in fb["grad_o2"] or "unexpected character" in fb["grad_o2"]
    assert "not a number" in fb["grad_In_o1"] or "expected a decimal" in fb["grad_In_o1"]
    assert "out of range" in fb["grad_h1"]


def test_malformed_files_are_invalid_and_other_files_graded(tmp_path, capsys):
    (tmp_path / "a_broken.toml").write_text('problem = "001_4_net_222"\n[answers\nh1 = \n', encoding="utf-8")
    (tmp_path / "b_broken.json").write_text('{"answers": {"h1": "0.5",', encoding="utf-8")
    (tmp_path / "c_deep.json").write_text('{"answers": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    (tmp_path / "d_binary.toml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "e_wrong_problem.toml").write_text('problem = "other"\n[answers]\nh1 = "0.5622"\n', encoding="utf-8")
    (tmp_path / "f_backslash.toml").write_text('[answers]\ngrad_w5 = "$o_1\\,h_1$"\n', encoding="utf-8")
    write(tmp_path / "g_good.toml", GOOD)
    code, out = check_json(capsys, "001_4_net_222", str(tmp_path))
    assert code == 1     # the broken files are invalid records
    subs = {s["file"].rsplit("/", 1)[1]: s for s in out["submissions"]}
    for name in ("a_broken.toml", "b_broken.json", "c_deep.json", "d_binary.toml", "e_wrong_problem.toml",
                 "f_backslash.toml"):
        (rec,) = subs[name]["records"]
        assert rec["verdict"] == "invalid" and rec["feedback"], name
    assert "single quotes" in subs["f_backslash.toml"]["records"][0]["feedback"]
    assert {r["verdict"] for r in subs["g_good.toml"]["records"]} == {"correct"}


def test_sandbox_stops_eager_latex2sympy2_work():
    """Without the normaliser, latex2sympy2 computes \\det eagerly; the worker limit still stops it."""
    import latex2sympy2
    n = 9
    mat = r"\begin{bmatrix}" + r"\\".join("&".join(f"a_{{{i}{j}}}" for j in range(n)) for i in range(n)) + r"\end{bmatrix}"
    with pytest.raises(Limit):
        run(latex2sympy2.latex2sympy, r"\det" + mat, timeout=2, memory_mb=1024)


def test_sandbox_stops_c_level_arithmetic_and_memory():
    with pytest.raises(Limit, match="longer"):
        run(lambda: sp.factorial(sp.Integer(10) ** 10).evalf(), timeout=1.5)
    with pytest.raises(Limit):
        run(lambda: bytearray(4 * 1024**3), timeout=10, memory_mb=512)


def test_latex_time_limit_gives_invalid_and_keeps_numbers(tmp_path, capsys):
    answers = dict(GOOD)
    answers[GOOD_LATEX[0]] = GOOD_LATEX[1]
    f = write(tmp_path / "s.toml", answers)
    _, out = check_json(capsys, "001_4_net_222", str(f), "--latex-timeout", "0.01")
    recs = {r["quantity"]: r for r in out["submissions"][0]["records"]}
    assert recs["grad_w5"]["verdict"] == "invalid" and "longer than" in recs["grad_w5"]["feedback"]
    assert recs["h1"]["verdict"] == recs["o1"]["verdict"] == "correct"


def test_the_memory_cap_counts_what_the_work_adds():
    """A worker forked from a process that already holds a lot of memory may still use its own
    ``memory_mb`` on top of that, and no more."""
    ballast = bytearray(600 * 1024**2)       # the parent holds 600 MB (as PyTorch or JAX would)
    assert run(lambda: len(bytearray(100 * 1024**2)), timeout=30, memory_mb=300) == 100 * 1024**2
    with pytest.raises(Limit, match="more than 300 MB"):
        run(lambda: bytearray(600 * 1024**2), timeout=30, memory_mb=300)
    del ballast
