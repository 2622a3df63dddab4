"""Load and validate spec files (TOML or JSON) into frozen dataclasses.

A spec describes one problem: a layered network (``[network]``), a scalar equation graph
(``[graph]``), or only declared symbols for formula checks (``[symbols]``); plus what was
printed (``[stated]``, ``[[restated]]``), formulas to check (``[[claim]]``) and notation.
Every number is read from its printed text into an exact Rational.  Every error is a
:class:`SpecError` naming the key path.  The format is documented in docs/guide.md.
"""
from __future__ import annotations

import difflib
import json
import keyword
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import sympy as sp

from derive.core import primitives
from derive.core.errors import SpecError
from derive.core.numbers import Literal, Stated, parse_stated
from derive.core.expressions import parse_expression

MAX_FILE_BYTES = 1_000_000
MAX_LAYERS = 32
MAX_WIDTH = 100_000
MAX_NODES = 500
MAX_STATEMENTS = 20_000
MAX_MAGNITUDE = sp.Integer(10) ** 100
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
DOMAINS = ("real", "positive", "negative", "nonnegative", "nonpositive")
_STATED_KEY = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_]{0,40})(?:\[(?P<idx>\d{1,5}(?:\s*,\s*\d{1,5})?)\])?")


@dataclass(frozen=True)
class ActivationRef:
    name: str
    params: tuple[tuple[str, sp.Expr], ...] = ()

    @property
    def kwargs(self) -> dict[str, sp.Expr]:
        return dict(self.params)


@dataclass(frozen=True)
class Statement:
    quantity: str
    index: tuple[int, ...] | None
    stated: Stated
    path: str
    written: tuple[int, ...] | None = None   # an entry of a list: the list's length (a row's: rows, row length)


@dataclass(frozen=True)
class Frame:
    label: str
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class Claim:
    label: str
    lhs: str
    rhs: str
    assume: tuple[str, ...]
    path: str


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    source: str
    notes: str
    problem: Any  # Network | Graph | another kind's dataclass (derive/kinds.py) | None
    stated: tuple[Statement, ...]
    frames: tuple[Frame, ...]
    claims: tuple[Claim, ...]
    symbols: tuple[tuple[str, str], ...]
    notation: tuple[tuple[str, str], ...]
    path: str = ""
    # [grading] and [variants] tables, kept as read; derive/check.py and derive/variants.py validate them
    grading: dict = field(default_factory=dict, compare=False, hash=False)
    variants: dict = field(default_factory=dict, compare=False, hash=False)


# ----------------------------------------------------------------------------- reading helpers

def _table(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise SpecError(path, f"expected a table, got {_kind(value)}")
    return value


def _layer_tables(table: dict, path: str, limit: int = MAX_LAYERS) -> list:
    """The ``[[<path>.layer]]`` tables of a layered kind: one or more, at most ``limit``."""
    raw = table.get("layer")
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"{path}.layer", f"expected one or more [[{path}.layer]] tables")
    if len(raw) > limit:
        raise SpecError(f"{path}.layer", f"at most {limit} layers, got {len(raw)}")
    return raw


def _kind(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            Literal: "a number"}.get(type(value), type(value).__name__)


def _unknown_keys(table: dict, allowed: set[str], path: str) -> None:
    for key in table:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else f" (allowed: {', '.join(sorted(allowed))})"
            raise SpecError(f"{path}.{key}" if path else str(key), f"unknown key{extra}")


def _string(value: Any, path: str, limit: int = 2000) -> str:
    if not isinstance(value, str) or isinstance(value, Literal):
        raise SpecError(path, f"expected a string, got {_kind(value)}")
    if len(value) > limit:
        raise SpecError(path, f"string longer than {limit} characters")
    return value


def _name(value: Any, path: str) -> str:
    text = _string(value, path, 64)
    if not NAME.fullmatch(text) or keyword.iskeyword(text):
        raise SpecError(path, f"expected a name of letters, digits and '_' starting with a letter, got {text!r}")
    return text


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, f"expected an integer, got {_kind(value)}")
    if not low <= value <= high:
        raise SpecError(path, f"expected an integer from {low} to {high}, got {value}")
    return value


_PLAIN = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?")
_VALUE_FUNCTIONS = {name: f.build for name, f in primitives.FUNCTIONS.items()}


def number(value: Any, path: str) -> sp.Expr:
    """A given number: a decimal, a fraction such as '1/16', or an expression such as 'log(0.34)'."""
    if isinstance(value, bool):
        raise SpecError(path, "expected a number, got a boolean")
    if isinstance(value, int):
        result = sp.Integer(value)
    elif isinstance(value, str) and _PLAIN.fullmatch(value):
        result = sp.Rational(value)      # a plain decimal, as parse_stated reads it (a wide layer has 10⁵ of them)
    elif isinstance(value, str):
        if value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise SpecError(path, f"expected a finite number, got {value!r} (NaN and infinity are not allowed)")
        try:
            result = parse_stated(value, path).value
        except SpecError:
            result = parse_expression(value, names={}, functions=_VALUE_FUNCTIONS, path=path, max_chars=200)
    else:
        raise SpecError(path, f"expected a number, got {_kind(value)}")
    if not isinstance(result, sp.Expr) or not result.is_number:
        raise SpecError(path, f"expected a number, got {value!r}")
    _bounded(result, path, value)
    return result


def _bounded(expr: sp.Expr, path: str, raw: Any) -> sp.Float:
    """``expr`` at 30 digits, computed from the leaves up; every intermediate value must be a finite
    real number below 1e100 in size, so ``exp(exp(exp(exp(100))))`` stops at ``exp(exp(100))``
    instead of being evaluated."""
    def refuse(what: str):
        raise SpecError(path, f"expected a finite real number of size below 1e100, got {str(raw)[:80]!r} "
                              f"({what})")

    def value(e: sp.Expr) -> sp.Expr:
        here = e.func(*(value(a) for a in e.args)) if e.args else e
        try:
            v = sp.N(here, 30)
        except (ArithmeticError, ValueError, TypeError, RecursionError):
            refuse(f"{_short(e)} cannot be evaluated")
        if not v.is_number or v.is_real is not True or v.is_finite is not True:
            refuse(f"{_short(e)} is not a finite real number")
        if abs(v) > MAX_MAGNITUDE:
            refuse(f"{_short(e)} is beyond 1e100")
        return v
    return value(expr)


def _short(e: sp.Expr) -> str:
    t = sp.sstr(e)
    return t if len(t) <= 60 else t[:57] + "..."


def _vector(value: Any, path: str, size: int | None = None) -> tuple[sp.Expr, ...]:
    if not isinstance(value, list):
        raise SpecError(path, f"expected a list of numbers, got {_kind(value)}")
    if size is not None and len(value) != size:
        raise SpecError(path, f"expected {size} numbers, got {len(value)}")
    if not value or len(value) > MAX_WIDTH:
        raise SpecError(path, f"expected 1 to {MAX_WIDTH} numbers, got {len(value)}")
    return tuple(number(v, f"{path}[{i}]") for i, v in enumerate(value))


def _matrix(value: Any, path: str, rows: int, cols: int) -> tuple[tuple[sp.Expr, ...], ...]:
    if not isinstance(value, list) or len(value) != rows:
        got = f"{len(value)} rows" if isinstance(value, list) else _kind(value)
        raise SpecError(path, f"expected a {rows}x{cols} matrix (a list of {rows} rows), got {got}")
    return tuple(_vector(row, f"{path}[{i}]", cols) for i, row in enumerate(value))


# ----------------------------------------------------------------------------- sections

def _activation(value: Any, path: str) -> ActivationRef:
    if isinstance(value, str) and not isinstance(value, Literal):
        name, given = value, {}
    elif isinstance(value, dict):
        if "name" not in value:
            raise SpecError(path, "expected a table with a 'name' key")
        name, given = value["name"], {k: v for k, v in value.items() if k != "name"}
    else:
        raise SpecError(path, f"expected an activation name or table, got {_kind(value)}")
    if name not in primitives.ACTIVATIONS:
        hint = difflib.get_close_matches(str(name), list(primitives.ACTIVATIONS), n=1)
        extra = f"; did you mean '{hint[0]}'?" if hint else ""
        raise SpecError(path, f"unknown activation {name!r} (known: {', '.join(primitives.ACTIVATIONS)}){extra}")
    act = primitives.ACTIVATIONS[name]
    defaults = dict(act.params)
    _unknown_keys(given, set(defaults), path)
    params = tuple((k, number(given.get(k, d), f"{path}.{k}")) for k, d in act.params)
    for k, v in params:
        if name in ("leaky_relu", "elu") and not v > 0:
            raise SpecError(f"{path}.{k}", f"{name} needs {k} > 0, got {v}")
    return ActivationRef(name, params)


def _learning_rate(table: dict, path: str) -> sp.Expr | None:
    """The learning rate: a number, "symbol" for a symbolic η, or None when absent (no update)."""
    if "learning_rate" not in table:
        return None
    if table["learning_rate"] == "symbol":
        return sp.Symbol("learning_rate", positive=True)
    return number(table["learning_rate"], f"{path}.learning_rate")


_RESERVED_FUNCTIONS = set(primitives.FUNCTIONS) | set(primitives.ACTIVATIONS)


def _check_name(name: str, path: str) -> str:
    _name(name, path)
    if name.startswith("grad_") or name.endswith("_new") or name in _RESERVED_FUNCTIONS:
        raise SpecError(path, f"the name {name!r} is reserved (grad_*, *_new and function names)")
    return name


def _statements(table: dict, path: str) -> tuple[Statement, ...]:
    out: list[Statement] = []
    for key, value in table.items():
        kpath = f"{path}.{key}"
        m = _STATED_KEY.fullmatch(str(key))
        if not m:
            raise SpecError(kpath, "expected a quantity name such as 'z1', 'grad_w5' or 'z1[2]'")
        name = m.group("name")
        if m.group("idx") is not None:
            idx = tuple(int(p) for p in m.group("idx").split(","))
            out.append(Statement(name, idx, parse_stated(value, kpath), kpath))
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, list):
                    for j, cell in enumerate(item):
                        if cell != "":
                            out.append(Statement(name, (i, j), parse_stated(cell, f"{kpath}[{i}][{j}]"),
                                                 f"{kpath}[{i}][{j}]", (len(value), len(item))))
                elif item != "":
                    out.append(Statement(name, (i,), parse_stated(item, f"{kpath}[{i}]"), f"{kpath}[{i}]",
                                         (len(value),)))
        else:
            out.append(Statement(name, None, parse_stated(value, kpath), kpath))
        if len(out) > MAX_STATEMENTS:
            raise SpecError(path, f"more than {MAX_STATEMENTS} stated numbers")
    return tuple(out)


def _claims(raw: Any, path: str = "claim") -> tuple[Claim, ...]:
    if not isinstance(raw, list):
        raise SpecError(path, "expected [[claim]] tables")
    claims = []
    for i, c in enumerate(raw):
        cp = f"{path}[{i}]"
        c = _table(c, cp)
        _unknown_keys(c, {"label", "lhs", "rhs", "assume"}, cp)
        for key in ("lhs", "rhs"):
            if key not in c:
                raise SpecError(f"{cp}.{key}", "missing")
        assume = c.get("assume", [])
        if not isinstance(assume, list):
            raise SpecError(f"{cp}.assume", "expected a list of equations such as 'sum(t) == 1'")
        lhs, rhs = _string(c["lhs"], f"{cp}.lhs"), _string(c["rhs"], f"{cp}.rhs")   # before the default label
        claims.append(Claim(_string(c.get("label", lhs + " = " + rhs), f"{cp}.label", 300), lhs, rhs,
                            tuple(_string(a, f"{cp}.assume[{j}]", 200) for j, a in enumerate(assume)), cp))
    return tuple(claims)


def build(data: dict, loaders: dict[str, Callable[[dict, str], Any]], name: str = "spec", path: str = "") -> Spec:
    """Validate an already-parsed TOML/JSON mapping; ``loaders`` reads each kind's problem table
    (``derive.kinds.from_mapping`` passes the registry's)."""
    data = _table(data, "")
    tables = [t for t in loaders if t in data]
    _unknown_keys(data, {"meta", "symbols", "stated", "restated", "claim", "notation", "grading", "variants",
                         *loaders}, "")
    meta = _table(data.get("meta", {}), "meta")
    _unknown_keys(meta, {"title", "source", "notes"}, "meta")
    if len(tables) > 1:
        raise SpecError("", f"give one problem table, not {' and '.join('[' + t + ']' for t in tables)}")
    problem = loaders[tables[0]](_table(data[tables[0]], tables[0]), tables[0]) if tables else None
    symbols_raw = _table(data.get("symbols", {}), "symbols")
    symbols = []
    for key, dom in symbols_raw.items():
        _check_name(key, f"symbols.{key}")
        if dom not in DOMAINS:
            raise SpecError(f"symbols.{key}", f"expected one of {', '.join(DOMAINS)}, got {dom!r}")
        symbols.append((key, dom))
    if problem is None and not symbols:
        raise SpecError("", f"expected a problem table ({', '.join('[' + t + ']' for t in loaders)}) "
                            "or a [symbols] table")
    frames = []
    restated = data.get("restated", [])
    if not isinstance(restated, list):
        raise SpecError("restated", "expected [[restated]] tables")
    for i, fr in enumerate(restated):
        fr = dict(_table(fr, f"restated[{i}]"))
        label = _string(fr.pop("label", f"frame {i + 1}"), f"restated[{i}].label", 200)
        frames.append(Frame(label, _statements(fr, f"restated[{i}]")))
    notation = _table(data.get("notation", {}), "notation")
    return Spec(
        name=name,
        title=_string(meta.get("title", name), "meta.title", 300),
        source=_string(meta.get("source", ""), "meta.source", 300),
        notes=_string(meta.get("notes", ""), "meta.notes", 4000),
        problem=problem,
        stated=_statements(_table(data.get("stated", {}), "stated"), "stated"),
        frames=tuple(frames),
        claims=_claims(data.get("claim", [])),
        symbols=tuple(symbols),
        notation=tuple((str(k), _string(v, f"notation.{k}", 200)) for k, v in notation.items()),
        path=path,
        grading=dict(_table(data.get("grading", {}), "grading")),
        variants=dict(_table(data.get("variants", {}), "variants")),
    )


def parse(text: str, fmt: str = "toml") -> dict:
    """Spec text as a mapping; ``fmt`` is 'toml' or 'json'."""
    if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        raise SpecError("", f"spec larger than {MAX_FILE_BYTES} bytes")
    try:
        if fmt == "json":
            data = json.loads(text, parse_float=Literal, parse_constant=_reject_constant)
        else:
            data = tomllib.loads(text, parse_float=Literal)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise SpecError("", f"not valid {fmt.upper()}: {err}") from None
    return data


def _reject_constant(token: str):
    raise SpecError("", f"not a number: {token} (NaN and infinity are not allowed)")


def read(path: str | Path, build_spec: Callable[..., Spec]) -> Spec:
    """Read a spec file (the format follows the suffix: .json, else TOML) and ``build_spec(data, name=,
    path=)`` it, naming the file in any error."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise SpecError(str(p), f"spec larger than {MAX_FILE_BYTES} bytes")
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(str(p), f"cannot read: {err.__class__.__name__}: {getattr(err, 'strerror', err)}") from None
    try:
        data = parse(text, "json" if p.suffix.lower() == ".json" else "toml")
        return build_spec(data, name=p.stem, path=str(p))
    except SpecError as err:
        raise SpecError(f"{p.name}: {err.path}" if err.path else p.name, err.message) from None
