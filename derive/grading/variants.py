"""``nnderive variants SPEC --count N --seed S -o DIR``: randomised versions of a problem, with answer keys.

The spec says what to draw in a ``[variants]`` table (documented in docs/checking.md)::

    [variants]
    decimals = 2                                   # printed digits of drawn values (default 2)
    [variants.draw]
    w1 = { low = "-1", high = "1" }                # a value of a [graph]
    W2 = { low = "-0.5", high = "0.5", nonzero = true }   # every element of a network quantity
    "x[0]" = { low = "0", high = "1", decimals = 1 }       # one element
    t = { choices = [["1", "0"], ["0", "1"]] }     # one of these, whole

Drawn values are uniform on the grid of ``decimals`` digits between ``low`` and ``high``
(inclusive), so each variant's numbers are exactly what is printed.  Each variant is checked by
solving it (a draw that makes the problem undefined is drawn again), then written as
``variant_007.json`` (a spec) with ``key_007.json`` (an answer file holding the correct answers,
rounded to the decimals asked by ``[grading]``) and listed in ``variants.json``; ``nnderive check
DIR ANSWERS...`` grades each answer file against the variant it names.
"""
from __future__ import annotations

import copy
import json
import math
import random
import re
import sys
import tomllib
from fractions import Fraction
from pathlib import Path
from typing import Any

import sympy as sp

from derive import kinds
from derive.core.errors import SpecError
from derive.core.rounding import decimal_text

MAX_COUNT = 10_000
DRAW_KEY = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_]{0,40})(?:\[(?P<idx>\d{1,5}(?:\s*,\s*\d{1,5})?)\])?")
RETRIES = 20


def _raw(path: Path) -> dict:
    from derive.core.numbers import Literal
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text, parse_float=Literal)
    return tomllib.loads(text, parse_float=Literal)


def _decimal(text: Any, path: str) -> Fraction:
    from derive.core.numbers import parse_stated
    st = parse_stated(text, path)
    return Fraction(int(st.value.p), int(st.value.q))


def _fmt(x: Fraction, decimals: int) -> str:
    return decimal_text(sp.Rational(x.numerator, x.denominator), decimals)


class Draw:
    """One entry of [variants.draw]: a uniform grid or a list of choices."""

    def __init__(self, key: str, spec: Any, default_decimals: int):
        path = f"variants.draw.{key}"
        if not isinstance(spec, dict):
            raise SpecError(path, "expected a table such as { low = \"-1\", high = \"1\" }")
        unknown = set(spec) - {"low", "high", "decimals", "nonzero", "choices"}
        if unknown:
            raise SpecError(f"{path}.{sorted(unknown)[0]}", "unknown key (allowed: low, high, decimals, nonzero, choices)")
        self.key, self.path = key, path
        self.choices = spec.get("choices")
        if self.choices is not None:
            if not isinstance(self.choices, list) or not self.choices or len(self.choices) > 1000:
                raise SpecError(f"{path}.choices", "expected a list of 1 to 1000 values")
            return
        if "low" not in spec or "high" not in spec:
            raise SpecError(path, "expected low and high (or choices)")
        self.decimals = spec.get("decimals", default_decimals)
        if isinstance(self.decimals, bool) or not isinstance(self.decimals, int) or not 0 <= self.decimals <= 8:
            raise SpecError(f"{path}.decimals", "expected a whole number from 0 to 8")
        self.low, self.high = _decimal(spec["low"], f"{path}.low"), _decimal(spec["high"], f"{path}.high")
        scale = 10**self.decimals
        self.lo_k, self.hi_k = math.ceil(self.low * scale), math.floor(self.high * scale)
        self.nonzero = bool(spec.get("nonzero", False))
        if self.lo_k > self.hi_k or (self.nonzero and self.lo_k == self.hi_k == 0):
            raise SpecError(path, f"no {self.decimals}-decimal number between low and high")

    def one(self, rng: random.Random) -> str:
        while True:
            k = rng.randint(self.lo_k, self.hi_k)
            if not (self.nonzero and k == 0):
                return _fmt(Fraction(k, 10**self.decimals), self.decimals)

    def fill(self, current: Any, rng: random.Random) -> Any:
        """New value(s) shaped like ``current`` (a number, a list, or a list of lists)."""
        if self.choices is not None:
            return copy.deepcopy(rng.choice(self.choices))
        if isinstance(current, list):
            return [self.fill(c, rng) for c in current]
        return self.one(rng)


def _locate(data: dict, name: str) -> tuple[Any, Any]:
    """(container, key) of a drawable quantity in a raw spec mapping."""
    found = kinds.locate(data, name)
    if found is not None:
        return found
    raise SpecError(f"variants.draw.{name}", "not a given number of this problem (graph values; network x, t, "
                                             "W1, b1, ..., learning_rate)")


def draws(spec_raw: dict) -> list[tuple[str, tuple[int, ...] | None, Draw]]:
    table = spec_raw.get("variants")
    if not isinstance(table, dict) or not isinstance(table.get("draw"), dict) or not table["draw"]:
        raise SpecError("variants.draw", "the spec has no [variants.draw] table saying what to draw")
    unknown = set(table) - {"decimals", "draw"}
    if unknown:
        raise SpecError(f"variants.{sorted(unknown)[0]}", "unknown key (allowed: decimals, draw)")
    default = table.get("decimals", 2)
    if isinstance(default, bool) or not isinstance(default, int) or not 0 <= default <= 8:
        raise SpecError("variants.decimals", "expected a whole number from 0 to 8")
    out = []
    for key, value in table["draw"].items():
        m = DRAW_KEY.fullmatch(str(key))
        if not m:
            raise SpecError(f"variants.draw.{key}", "expected a name such as 'w1', 'W2' or 'W2[0,1]'")
        idx = tuple(int(p) for p in m.group("idx").split(",")) if m.group("idx") else None
        out.append((m.group("name"), idx, Draw(str(key), value, default)))
    return out


def _apply(data: dict, plan, rng: random.Random) -> tuple[dict, dict]:
    new = copy.deepcopy(data)
    drawn = {}
    for name, idx, draw in plan:
        container, key = _locate(new, name)
        if idx is None:
            container[key] = draw.fill(container[key], rng)
            drawn[name] = container[key]
        else:
            cell = container[key]
            try:
                if len(idx) == 1:
                    cell[idx[0]] = draw.fill(cell[idx[0]], rng)
                    drawn[draw.key] = cell[idx[0]]
                else:
                    cell[idx[0]][idx[1]] = draw.fill(cell[idx[0]][idx[1]], rng)
                    drawn[draw.key] = cell[idx[0]][idx[1]]
            except (IndexError, TypeError):
                raise SpecError(draw.path, f"index {list(idx)} out of range for {name}") from None
    return new, drawn


def _key(problem, name: str) -> dict:
    """The answer file of correct answers for one variant."""
    answers: dict[str, Any] = {}
    asked = problem.asked()
    if not asked:
        from derive.core.steps import Given
        asked = [(s.name, None) for s in problem.derivation.steps if not isinstance(s, Given)]
    for qname, idx in asked:
        q = problem.derivation.quantity(qname)
        if idx is not None:
            sym = problem.element_symbol(qname, idx)
            answers[f"{qname}[{','.join(map(str, idx))}]"] = problem.expected(sym, qname)
        elif not q.shape:
            answers[qname] = problem.expected(q.symbol(), qname)
        elif len(q.shape) == 1:
            answers[qname] = [problem.expected(q.symbol((i,)), qname) for i in range(q.shape[0])]
        else:
            answers[qname] = [[problem.expected(q.symbol((i, j)), qname) for j in range(q.shape[1])]
                              for i in range(q.shape[0])]
    return {"problem": name, "student": "answer key", "answers": answers}


def generate(spec_path: str, count: int, seed: int, out_dir: str, assignments: dict[str, str] | None = None) -> dict:
    """Write ``count`` variants of the spec into ``out_dir``; returns the manifest.

    ``assignments`` (student id -> variant name, from :mod:`derive.grading.roster`) is written as
    ``assignments.csv`` for the lecturer; the course key that made it is not written anywhere."""
    import worked_examples
    from derive.grading.grade import Problem
    from derive.core.files import check_folder, write_folder
    from derive.kinds import from_mapping
    path = worked_examples.resolve(spec_path)
    try:
        data = _raw(path)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as err:
        raise SpecError(str(path), f"cannot read: {err}") from None
    plan = draws(data)
    base = Path(path).stem
    rng = random.Random(seed)
    out = Path(out_dir)
    check_folder(out)
    files: dict[str, str] = {}
    width = max(3, len(str(count)))
    manifest = {"base": base, "seed": seed, "count": count, "variants": []}
    for k in range(1, count + 1):
        name = f"variant_{k:0{width}d}"
        for attempt in range(RETRIES):
            raw, drawn = _apply(data, plan, rng)
            raw.pop("variants", None)
            raw.pop("stated", None)
            raw.pop("restated", None)
            meta = dict(raw.get("meta", {}))
            meta["title"] = f"{meta.get('title', base)} (variant {k})"[:300]
            meta["source"] = f"nnderive variants {base}, variant {k}"[:300]   # never the seed: students see it
            raw["meta"] = meta
            try:
                problem = Problem.build(from_mapping(raw, name=name))
                key = _key(problem, name)
                break
            except (SpecError, ValueError, ZeroDivisionError, ArithmeticError) as err:
                if attempt == RETRIES - 1:
                    raise SpecError("variants.draw", f"no usable draw for {name} in {RETRIES} tries: {err}") from None
        files[f"{name}.json"] = json.dumps(raw, ensure_ascii=False, indent=2)
        key_name = f"key_{k:0{width}d}.json"
        files[key_name] = json.dumps(key, ensure_ascii=False, indent=2)
        manifest["variants"].append({"name": name, "spec": f"{name}.json", "key": key_name, "drawn": drawn})
    if assignments is not None:
        manifest["roster"] = len(assignments)
        files["assignments.csv"] = "student_id,variant\n" + "".join(
            f"{_csv_cell(sid)},{name}\n" for sid, name in assignments.items())
    files["variants.json"] = json.dumps(manifest, ensure_ascii=False, indent=2)
    # every file of one run together, swapped in at once: never variant specs of one seed beside
    # the variants.json of another
    write_folder(out, files, f"nnderive variants {base}")
    return manifest


def _csv_cell(text: str) -> str:
    import csv
    import io
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([text])
    return buf.getvalue()


def cmd_variants(args) -> int:
    import worked_examples
    from derive.core.sandbox import Limit, run
    try:
        spec = str(worked_examples.resolve(args.spec))
    except KeyError:
        print(f"nnderive: error: {args.spec}: no such file and no bundled example of that name", file=sys.stderr)
        return 2
    if not 1 <= args.count <= MAX_COUNT:
        print(f"nnderive: error: --count must be from 1 to {MAX_COUNT}", file=sys.stderr)
        return 2
    assignments = None
    if args.roster:
        from derive.grading.roster import course_key, read_roster, variant_name, variant_of
        try:
            key = course_key(args.course_key)
            ids = read_roster(args.roster)
        except SpecError as err:
            print(f"nnderive: error: {err}", file=sys.stderr)
            return 2
        assignments = {sid: variant_name(variant_of(key, sid, args.count), args.count) for sid in ids}
    try:
        manifest = run(generate, spec, args.count, args.seed, args.output, assignments, timeout=args.timeout)
    except Limit as err:
        print(f"nnderive: error: {args.spec}: {err}", file=sys.stderr)
        return 2
    except SpecError as err:   # a spec error, or (with an empty path) a folder that cannot be written
        print(f"nnderive: error: {args.spec + ': ' if err.path else ''}{err}", file=sys.stderr)
        return 2
    print(f"{len(manifest['variants'])} variants of {manifest['base']} (seed {args.seed}) in {args.output}: "
          f"variant_*.json specs, key_*.json answer keys, variants.json"
          + (f", assignments.csv ({len(assignments)} students)" if assignments is not None else ""))
    return 0


def register(subparsers) -> None:
    from derive.grading.submissions import positive
    p = subparsers.add_parser("variants", help="randomised versions of a problem, with answer keys",
                              description="Draw new numbers for a problem as its [variants] table says; write each "
                                          "variant's spec and answer key. See docs/checking.md.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--count", type=int, required=True, help="how many variants")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write")
    p.add_argument("--timeout", type=positive(float), default=600.0, help="seconds allowed (default 600)")
    p.add_argument("--roster", metavar="CSV", help="assign each student of this roster (a 'student_id' column) a "
                                                   "variant from the secret course key; writes assignments.csv")
    p.add_argument("--course-key", metavar="FILE", help="file holding the secret course key (default: the "
                                                        "NNDERIVE_COURSE_KEY environment variable)")
    p.set_defaults(func=cmd_variants)
