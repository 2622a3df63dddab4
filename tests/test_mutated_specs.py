"""Every bundled example, mutated as a careless edit would: the commands succeed or refuse in one line.

Each bundled spec (worked_examples/*.toml, docs/examples/*.toml) is read, changed by one or two
mutations drawn by Hypothesis (delete a key, change a value's type, shorten or lengthen a list,
swap the values of two names, insert unicode or control characters into a string, duplicate a
table or a line of the TOML text) and written back.  ``verify``, ``solve --json``, ``handout``
and ``check`` (with an answer file of the example's own stated names) must each exit 0 or 1, or
exit 2 with one line ``nnderive: error: FILE: KEY PATH: ...``: never a traceback.  The commands run
in-process (``derive.cli.main``); a few run as subprocesses, to prove the property end to end.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import worked_examples
from cli_props import ERROR_LINE, in_process, refused, run  # noqa: F401  (in_process: autouse fixture)
from strategies import fuzz_profile as profile

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted([worked_examples.path(n) for n in worked_examples.names()] +
                  list((ROOT / "docs" / "examples").glob("*.toml")))
ODD = ["", "x", "symbol", "nan", "-inf", "1e309", "1/0", "log(-1)", "1" * 40, "é\u202e\x00", "[1, 2]"]
ODD_VALUES = st.sampled_from(ODD) | st.sampled_from([0, -1, 10**20, 1e300, 0.5, True, False, [], {}, [[1]], [""]])


def _paths(tree, prefix=()) -> list[tuple]:
    out = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,))
    return out


def _parent(tree, path):
    for p in path[:-1]:
        tree = tree[p]
    return tree


@st.composite
def mutated(draw, data: dict) -> dict:
    """``data`` with one to three structural mutations."""
    data = json.loads(json.dumps(data))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(data, path), path[-1]
        value = parent[key]
        how = draw(st.sampled_from(["delete", "type", "short", "long", "swap", "unicode"]))
        if how == "delete":
            del parent[key]
        elif how == "type":
            parent[key] = copy.deepcopy(draw(ODD_VALUES))    # (a later mutation must not change the pool)
        elif how == "short" and isinstance(value, list) and value:
            parent[key] = value[:-draw(st.integers(1, len(value)))]
        elif how == "long" and isinstance(value, list):
            parent[key] = value + [value[-1] if value and draw(st.booleans()) else "0"] * draw(st.integers(1, 3))
        elif how == "swap" and isinstance(parent, dict) and len(parent) > 1:
            other = draw(st.sampled_from(sorted(k for k in parent if k != key)))
            parent[key], parent[other] = parent[other], parent[key]
        elif how == "swap" and isinstance(parent, list) and len(parent) > 1:
            j = draw(st.integers(0, len(parent) - 1))
            parent[key], parent[j] = parent[j], parent[key]
        elif isinstance(value, str):
            junk = draw(st.text(min_size=1, max_size=4))
            at = draw(st.integers(0, len(value)))
            parent[key] = value[:at] + junk + value[at:]
        elif isinstance(parent, dict):      # a name with unicode or control characters
            junk = draw(st.text(min_size=1, max_size=3))
            parent[str(key) + junk] = parent.pop(key)
    return data


@st.composite
def text_mutated(draw, text: str) -> str:
    """The TOML text with a line or a table duplicated, a line deleted, or characters inserted."""
    lines = text.splitlines(keepends=True)
    how = draw(st.sampled_from(["dup_table", "dup_line", "drop_line", "chars"]))
    if how == "dup_table":
        heads = [i for i, l in enumerate(lines) if l.startswith("[") and not l.startswith("[[")]
        if heads:
            i = draw(st.sampled_from(heads))
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("[")), len(lines))
            return "".join(lines + ["\n"] + lines[i:end])
    if how in ("dup_line", "drop_line") and lines:
        i = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[:i] + ([lines[i]] * 2 if how == "dup_line" else []) + lines[i + 1:])
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.text(min_size=1, max_size=5)) + text[at:]


def _answers(data: dict) -> str:
    """An answer file for the spec: its stated names with a number, a formula and garbage."""
    stated = data.get("stated")
    names = [k for k in stated if isinstance(k, str)][:6] if isinstance(stated, dict) else []
    names = names or ["loss"]
    body = [f'{json.dumps(n)} = {v}' for n, v in zip(names, ['"0.5"', "'$x + 1$'", '"1e999"', '"ab"', "[[]]", '"0"'])]
    return "[answers]\n" + "\n".join(body) + "\n"


def _all_commands(capsys, path: Path, answers: Path, tmp: str) -> None:
    for argv in (["verify", path, "--jobs", "1"], ["solve", path, "--json"],
                 ["handout", path, "-o", Path(tmp) / "h" / "out.md"], ["check", path, answers, "--jobs", "1"]):
        code, _, err = run(capsys, *argv)
        assert code in (0, 1) or refused(code, err), (argv[0], code, err)
        if argv[0] == "solve":
            assert code != 1, err     # solve judges no number


EXAMPLE = st.sampled_from(EXAMPLES)


@profile(scale=0.8)
@given(example=EXAMPLE, data=st.data())
def test_mutated_examples_succeed_or_refuse_in_one_line(example: Path, data, capsys):
    spec = tomllib.loads(example.read_text(encoding="utf-8"))
    changed = data.draw(mutated(spec))
    text = json.dumps(changed, ensure_ascii=data.draw(st.booleans()))
    note(f"{example.name} → {text[:3000]}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{example.stem}.json"
        path.write_text(text, encoding="utf-8")
        answers = Path(tmp) / "answers.toml"
        answers.write_text(_answers(changed), encoding="utf-8")
        _all_commands(capsys, path, answers, tmp)


@profile(scale=0.8)
@given(example=EXAMPLE, data=st.data())
def test_mutated_toml_text_succeeds_or_refuses_in_one_line(example: Path, data, capsys):
    text = data.draw(text_mutated(example.read_text(encoding="utf-8")))
    note(f"{example.name} →\n{text[:3000]}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / example.name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        answers = Path(tmp) / "answers.toml"
        answers.write_text(_answers({}), encoding="utf-8")
        _all_commands(capsys, path, answers, tmp)


# ----------------------------------------------------------------------------- end to end

END_TO_END = [       # (example, a change, the command run on it): one subprocess each
    ("micrograd.toml", '"nodes": ["c = a +"]', "handout"),          # a node that does not parse
    ("hw_222.toml", None, "verify"),                                # a table written twice (TOML text)
    ("004_10_cnn_practice.toml", '"kernel": [[1, 0], [0]]', "solve"),  # a ragged kernel
    ("000_4_elman_rnn.toml", '"hidden_size": "2"', "check"),         # a string for an integer
]


# the sandbox as users run it (the in-process suites set NNDERIVE_NO_SANDBOX)
ENV = {k: v for k, v in os.environ.items() if k != "NNDERIVE_NO_SANDBOX"} | {"PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("name, change, command", END_TO_END)
def test_a_mutated_spec_is_one_line_and_exit_2_in_a_subprocess(name, change, command, tmp_path):
    source = next(p for p in EXAMPLES if p.name == name)
    if change is None:
        text = source.read_text(encoding="utf-8")
        path = tmp_path / name
        path.write_text(text + "\n" + text[text.index("[graph]"):], encoding="utf-8")
    else:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
        key, value = change.split(": ", 1)
        table = next(t for t in data.values() if isinstance(t, dict) and json.loads(key) in t or
                     isinstance(t, dict) and "layer" in t)
        if json.loads(key) in table:
            table[json.loads(key)] = json.loads(value)
        else:
            table["layer"][0][json.loads(key)] = json.loads(value)
        path = tmp_path / (Path(name).stem + ".json")
        path.write_text(json.dumps(data), encoding="utf-8")
    argv = {"verify": ["verify", path], "solve": ["solve", path], "handout": ["handout", path, "-o", tmp_path / "x.md"],
            "check": ["check", path, ROOT / "docs" / "examples" / "answers" / "ada.toml"]}[command]
    proc = subprocess.run([sys.executable, "-m", "derive.cli", *map(str, argv)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=ENV)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and ERROR_LINE.match(lines[0]), (command, proc.stderr)
    assert path.name in lines[0] and "Traceback" not in proc.stderr
