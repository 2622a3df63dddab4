"""Answer files: reading them within bounds (size, count, nesting), and their answers and records.

A file is TOML or JSON with a `[answers]` table (and optionally `problem`, `student`); each answer
is a number or `$LaTeX$`, for a quantity, an element (`z1[0]`) or a whole vector.  Anything that
cannot be used becomes an answer of kind `invalid` with the reason, never an exception."""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy as sp

from derive.core.errors import SpecError
from derive.core.numbers import Literal, Stated, parse_stated
from derive.core.spec import _STATED_KEY
from derive.grading.parse import MAX_CHARS as MAX_LATEX_CHARS

CORRECT, CARRIED, PRECISION, WRONG, UNDETERMINED, INVALID = (
    "correct", "carried", "precision", "wrong", "undetermined", "invalid")
VERDICTS = (CORRECT, CARRIED, PRECISION, WRONG, UNDETERMINED, INVALID)
MAX_FILE_BYTES = 4_000_000
MAX_ANSWERS = 5_000
ANSWER_DIGITS = 15       # a numeric answer is below 1e15 in size, with its last digit at 1e15 or finer
ANSWER_RANGE = sp.Integer(10) ** ANSWER_DIGITS
ANSWER_KEYS = {"problem", "student", "answers"}
_TOML_SKIP = re.compile(r'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*', re.S)
_JSON_SKIP = re.compile(r'"(?:[^"\\]|\\.)*"')


@dataclass
class Answer:
    quantity: str | None
    index: tuple[int, ...] | None
    text: str
    kind: str                     # number | latex | invalid
    stated: Stated | None = None
    reason: str = ""


@dataclass
class Record:
    quantity: str | None
    index: tuple[int, ...] | None
    answer: str | None
    verdict: str
    score: float
    max_score: float
    expected: str | None
    feedback: str

    def as_dict(self) -> dict:
        return {"quantity": self.quantity, "index": list(self.index) if self.index is not None else None,
                "answer": self.answer, "verdict": self.verdict, "score": self.score,
                "max_score": self.max_score, "expected": self.expected, "feedback": self.feedback}


class _Bad:
    """A JSON NaN/Infinity, kept so that only its answer is invalid."""

    def __init__(self, token: str):
        self.token = token


def read_bounded(path: Path) -> bytes:
    """The bytes of a regular file, at most MAX_FILE_BYTES; a FIFO or device is never waited on."""
    import os
    import stat
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecError("", "not a regular file (a FIFO, device or folder), not read")
        if st.st_size > MAX_FILE_BYTES:
            raise SpecError("", f"answer file larger than {MAX_FILE_BYTES} bytes")
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise SpecError("", f"answer file larger than {MAX_FILE_BYTES} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _separators(text: str, is_json: bool) -> int:
    """Commas (and TOML's '=') outside strings and comments: at least the number of values but one."""
    bare = (_JSON_SKIP if is_json else _TOML_SKIP).sub("", text)
    return bare.count(",") + (0 if is_json else bare.count("="))


def read_answer_file(path: Path) -> dict:
    """The parsed mapping of an answer file, or a SpecError naming what is wrong with the file."""
    try:
        raw = read_bounded(path)
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("", "not UTF-8 text") from None
    except OSError as err:
        raise SpecError("", f"cannot read: {err.strerror or err}") from None
    text = text.removeprefix("\ufeff")       # a byte-order mark, as some editors save UTF-8
    is_json = path.suffix.lower() == ".json"
    if _separators(text, is_json) > MAX_ANSWERS + 100:
        # counted before parsing: a 4 MB list of 1.9 million zeros is never built
        raise SpecError("", f"more than {MAX_ANSWERS} values; an answer file holds at most {MAX_ANSWERS} answers")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text, parse_float=Literal, parse_constant=_Bad)
        else:
            data = tomllib.loads(text, parse_float=Literal)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError, ValueError) as err:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        hint = ""
        if kind == "TOML" and ("escape" in str(err).lower() or "'\\'" in str(err)):
            hint = " (write LaTeX in single quotes, '$\\frac{a}{b}$', so that TOML keeps backslashes as written)"
        raise SpecError("", f"not valid {kind}: {str(err)[:200]}{hint}") from None
    if not isinstance(data, dict):
        raise SpecError("", "expected a table with 'problem' and [answers]")
    return data


def _element_text(v: Any) -> str:
    if isinstance(v, _Bad):
        return v.token
    return v if isinstance(v, str) else str(v)


def _one(quantity: str, index, value: Any, path: str) -> Answer:
    if isinstance(value, _Bad):
        return Answer(quantity, index, value.token, INVALID, reason=f"{value.token} is not a number")
    if isinstance(value, bool) or not isinstance(value, (str, int, Literal)):
        return Answer(quantity, index, str(value)[:80], INVALID, reason="expected a number or $LaTeX$ as a string")
    text = str(value)
    if isinstance(value, str) and not isinstance(value, Literal) and "$" in text or text.strip().startswith(r"\("):
        if len(text) > MAX_LATEX_CHARS:
            return Answer(quantity, index, _clip(text), INVALID,
                          reason=f"answer longer than {MAX_LATEX_CHARS} characters ({len(text)})")
        return Answer(quantity, index, text, "latex")
    try:
        stated = parse_stated(value, path)
    except SpecError as err:
        return Answer(quantity, index, text[:80], INVALID, reason=err.message)
    if abs(stated.value) > ANSWER_RANGE or stated.decimals < -ANSWER_DIGITS:
        # "0e100" claims a precision of ±5e99, which no grading tolerance or carried value can use
        return Answer(quantity, index, text[:80], INVALID,
                      reason=f"number out of range (answers are below 1e{ANSWER_DIGITS} in size and "
                             f"precise to 1e{ANSWER_DIGITS} or finer)")
    return Answer(quantity, index, text, "number", stated=stated)


def _clip(text: str, most: int = 200) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


def answers_of(data: dict) -> tuple[list[Answer], list[Answer]]:
    """(answers, file-level problems) from a parsed answer file; one bad entry never stops the rest."""
    problems = [Answer(str(k)[:40], None, "", INVALID, reason="unknown key (allowed: problem, student, answers)")
                for k in data if k not in ANSWER_KEYS]
    table = data.get("answers")
    if not isinstance(table, dict):
        problems.append(Answer(None, None, "", INVALID, reason="no [answers] table"))
        return [], problems
    out: list[Answer] = []
    for key, value in table.items():
        m = _STATED_KEY.fullmatch(str(key))
        if not m:
            out.append(Answer(str(key)[:40], None, _element_text(value)[:80], INVALID,
                              reason="expected a quantity name such as 'h1', 'grad_w5' or 'z1[2]'"))
            continue
        name = m.group("name")
        if m.group("idx") is not None:
            out.append(_one(name, tuple(int(p) for p in m.group("idx").split(",")), value, f"answers.{key}"))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, list):
                    out.extend(_one(name, (i, j), cell, f"answers.{key}[{i}][{j}]")
                               for j, cell in enumerate(item[:MAX_ANSWERS + 1 - len(out)]))
                else:
                    out.append(_one(name, (i,), item, f"answers.{key}[{i}]"))
                if len(out) > MAX_ANSWERS:   # counted while reading, not after building them all
                    break
        else:
            out.append(_one(name, None, value, f"answers.{key}"))
        if len(out) > MAX_ANSWERS:
            out = out[:MAX_ANSWERS]
            problems.append(Answer(None, None, "", INVALID, reason=f"more than {MAX_ANSWERS} answers; the rest ignored"))
            break
    return out, problems
