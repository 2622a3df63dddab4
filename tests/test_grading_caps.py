"""The formula cap and CPU budget of `check` set by the lecturer in the spec's [grading] (issue 9):
`max_formulas` and `formula_budget`, validated with key-path errors, the command's options
overriding them.  The verdicts expected here come from the problem itself (the correct formulas
of docs/examples/hw_222.toml), not from the code under test."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive.core.errors import SpecError
from derive.grading.answers import MAX_ANSWERS
from derive.grading.grade import policy
from derive.kinds import loads

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "docs" / "examples" / "hw_222.toml"
HANG = 300      # hang guard only

FOUR = ('problem = "hw_222"\n[answers]\n'
        "grad_o1 = '$o_1 - y_1$'\n"
        "grad_In_o1 = '$(o_1 - y_1) o_1 (1 - o_1)$'\n"
        "grad_o2 = '$o_2 - y_2$'\n"
        "grad_In_o2 = '$(o_2 - y_2) o_2 (1 - o_2)$'\n")


def cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "derive.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=HANG, cwd=ROOT)


def spec_with(tmp_path: Path, **keys) -> Path:
    """hw_222 with more keys in its [grading] table (values as TOML text)."""
    text = HW.read_text()
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    path = tmp_path / "hw_222.toml"
    path.write_text(text.replace("[grading]\n", "[grading]\n" + extra, 1))
    return path


def graded(result) -> list[tuple[str, str, str]]:
    assert result.returncode in (0, 1), result.stderr
    (sub,) = json.loads(result.stdout)["submissions"]
    return [(r["quantity"], r["verdict"], r["feedback"]) for r in sub["records"] if r["answer"]]


def test_the_specs_max_formulas_caps_a_file(tmp_path):
    answers = tmp_path / "a.toml"
    answers.write_text(FOUR)
    got = graded(cli("check", spec_with(tmp_path, max_formulas=2), answers, "--json"))
    assert [v for _, v, _ in got] == ["correct", "correct", "undetermined", "undetermined"]
    assert all("at most 2 formulas ([grading] max_formulas)" in fb for _, _, fb in got[2:])


def test_the_option_overrides_the_spec(tmp_path):
    answers = tmp_path / "a.toml"
    answers.write_text(FOUR)
    got = graded(cli("check", spec_with(tmp_path, max_formulas=1), answers, "--json", "--max-formulas", "3"))
    assert [v for _, v, _ in got] == ["correct", "correct", "correct", "undetermined"]
    assert "at most 3 formulas (--max-formulas)" in got[3][2]


def test_without_the_key_or_option_the_default_applies(tmp_path):
    answers = tmp_path / "a.toml"
    answers.write_text(FOUR)
    assert [v for _, v, _ in graded(cli("check", HW, answers, "--json"))] == ["correct"] * 4


def test_the_specs_formula_budget_bounds_a_files_formulas(tmp_path):
    slow = "$" + "".join(f"(w_{1 + i % 8}+w_{1 + (4 * i + 1) % 8})" for i in range(18)) + "$"
    names = ["In_h1", "In_h2", "h1", "h2", "In_o1", "In_o2", "o1", "o2", "Error", "grad_o1", "grad_o2", "grad_h1"]
    answers = tmp_path / "slow.toml"
    answers.write_text('problem = "hw_222"\n[answers]\n' + "".join(f"{n} = '{slow}'\n" for n in names))
    got = graded(cli("check", spec_with(tmp_path, formula_budget=3), answers, "--json", "--latex-timeout", "2",
                     "--jobs", "2"))
    over = [g for g in got if "([grading] formula_budget)" in g[2]]
    assert len(over) >= len(names) - 3 and all(v == "undetermined" for _, v, _ in over)
    assert all("the 3 s allowed per file" in fb for _, _, fb in over)


# ----------------------------------------------------------------------------- validation

GRADING_ONLY = '[graph]\nvalues = { a = "1" }\nnodes = ["b = a*a"]\n[grading]\n'


def toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else "-inf" if value == -math.inf
                                                 else repr(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return str(value)


BAD_MAX = st.one_of(st.integers(max_value=0), st.integers(min_value=MAX_ANSWERS + 1),
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.text(alphabet="0123456789abc .", max_size=6), st.lists(st.integers(1, 9), max_size=2))
BAD_BUDGET = st.one_of(st.integers(max_value=0), st.integers(min_value=10**6 + 1),
                       st.floats(max_value=0.0), st.floats(min_value=1e6, exclude_min=True), st.just(math.nan),
                       st.booleans(), st.text(alphabet="0123456789 .", max_size=6), st.lists(st.integers(1, 9), max_size=2))
GOOD_MAX = st.integers(1, MAX_ANSWERS)
GOOD_BUDGET = st.one_of(st.integers(1, 10**6), st.floats(min_value=1e-3, max_value=1e6))


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(["max_formulas", "formula_budget"]), data=st.data())
def test_bad_values_are_key_path_errors(key, data):
    value = data.draw(BAD_MAX if key == "max_formulas" else BAD_BUDGET)
    spec = loads(GRADING_ONLY + f"{key} = {toml(value)}\n")
    with pytest.raises(SpecError) as err:
        policy(spec)
    assert err.value.path == f"grading.{key}"


@settings(max_examples=60, deadline=None)
@given(cap=GOOD_MAX, budget=GOOD_BUDGET)
def test_good_values_are_kept(cap, budget):
    p = policy(loads(GRADING_ONLY + f"max_formulas = {cap}\nformula_budget = {toml(budget)}\n"))
    assert (p.max_formulas, p.formula_budget) == (cap, float(budget))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["max_formulas", "formula_budget"]), data=st.data())
def test_check_refuses_a_bad_cap_with_exit_2_and_one_line(tmp_path, key, data):
    value = data.draw(BAD_MAX if key == "max_formulas" else BAD_BUDGET)
    answers = tmp_path / "a.toml"
    answers.write_text(FOUR)
    r = cli("check", spec_with(tmp_path, **{key: toml(value)}), answers)
    assert r.returncode == 2, (value, r.stdout, r.stderr)
    assert r.stdout == "" and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"grading.{key}:" in r.stderr


def test_the_documented_example_does_what_checking_md_says(tmp_path):
    """docs/checking.md's [grading] block with max_formulas and formula_budget, on hw_222."""
    import re
    doc = (ROOT / "docs" / "checking.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", doc, flags=re.S) if "max_formulas = 2" in b]
    keys = dict(re.findall(r"^(max_formulas|formula_budget) = (\S+)", block, flags=re.M))
    answers = tmp_path / "a.toml"
    answers.write_text(FOUR)
    got = graded(cli("check", spec_with(tmp_path, **keys), answers, "--json"))
    quoted = re.search(r'"(not graded: a file may hold at most 2 formulas \(\[grading\] max_formulas\))"', block)
    assert [v for _, v, _ in got] == ["correct", "correct", "undetermined", "undetermined"]
    assert all(fb == quoted.group(1) for _, _, fb in got[2:])
