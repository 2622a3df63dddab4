"""Reports as plain data (for --json and for crossing process boundaries) and as text tables."""
from __future__ import annotations

import math
from typing import Any

from derive.core.evaluate import evaluate
from derive.core.rounding import exact_text
from derive.core.steps import Derivation
from derive.verify.stated import Report


def report_dict(report: Report) -> dict[str, Any]:
    """The JSON form of ``nnderive verify`` for one example."""
    records = [{
        "quantity": r.quantity,
        "index": list(r.index) if r.index is not None else None,
        "stated": r.stated.text,
        "value": float(r.value),
        "carried": float(r.carried) if r.carried is not None else None,
        "verdict": r.verdict,
        "decimals": r.stated.decimals,
        "stated_value": float(r.stated.value),
        "frame": r.frame or None,
    } for r in report.records]
    claims = [{"label": c.label, "lhs": c.lhs, "rhs": c.rhs, "verdict": c.verdict,
               "difference": c.difference or None, "counterexample": c.counterexample or None,
               "method": c.method} for c in report.claims]
    return {"name": report.name, "title": report.title, "source": report.source, "notes": report.notes,
            "records": records, "claims": claims, "summary": summary([report])}


def summary(reports: list[Report]) -> dict[str, int]:
    out = {"numbers": 0, "exact": 0, "carried": 0, "wrong": 0,
           "formulas": 0, "proved": 0, "differs": 0, "undetermined": 0}
    for rep in reports:
        for r in rep.records:
            out["numbers"] += 1
            out[r.verdict] += 1
        for c in rep.claims:
            out["formulas"] += 1
            out[c.verdict] += 1
    return out


def summary_dicts(examples: list[dict]) -> dict[str, int]:
    total: dict[str, int] = {}
    for ex in examples:
        for k, v in ex["summary"].items():
            total[k] = total.get(k, 0) + v
    return total


def summary_line(s: dict[str, int]) -> str:
    parts = [f"{s['numbers']} stated numbers: {s['exact']} exact, {s['carried']} carried, {s['wrong']} wrong"]
    if s["formulas"]:
        parts.append(f"{s['formulas']} formulas: {s['proved']} proved, {s['differs']} differ, "
                     f"{s['undetermined']} undetermined")
    return "; ".join(parts)


def _index(idx) -> str:
    return "" if idx is None else "[" + ",".join(map(str, idx)) + "]"


def _num(x: float | None, decimals: int = 0) -> str:
    """A value next to a number stated with ``decimals`` decimals: at least two digits more than
    the statement shows, and at least 6 significant digits."""
    if x is None:
        return "—"
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    magnitude = math.floor(math.log10(abs(x))) + 1
    return f"{x:.{max(6, min(17, magnitude + decimals + 2))}g}"


def text_table(ex: dict) -> str:
    """A readable table of one example's records and claims."""
    lines = [f"{ex['name']}: {ex['title']}"]
    if ex["source"]:
        lines.append(f"  source: {ex['source']}")
    if ex["records"]:
        head = ("quantity", "index", "stated", "exact value", "carried", "verdict")
        rows = [(r["quantity"] + (f" ({r['frame']})" if r["frame"] else ""), _index(r["index"]), r["stated"],
                 _num(r["value"], r["decimals"]), _num(r["carried"], r["decimals"]), r["verdict"])
                for r in ex["records"]]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
        fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
        lines.append(fmt.format(*head))
        lines.extend(fmt.format(*row) for row in rows)
    for c in ex["claims"]:
        lines.append(f"  {c['verdict']:<12} {c['label']}")
        if c["verdict"] == "differs":
            lines.append(f"               lhs − rhs = {c['difference']}")
            if c["counterexample"]:
                lines.append(f"               at {c['counterexample']}")
        elif c["verdict"] == "undetermined":
            lines.append(f"               {c['method']}")
    lines.append("  " + summary_line(ex["summary"]))
    return "\n".join(lines)


def _nested(q, values, text=float) -> Any:
    """The elements of quantity ``q`` shaped as it is (a number, a list, a list of rows), each ``text(value)``."""
    flat = [text(values[s]) for s in q.symbols()]
    if not q.shape:
        return flat[0]
    if len(q.shape) == 1:
        return flat
    rows, cols = q.shape
    return [flat[i * cols:(i + 1) * cols] for i in range(rows)]


def solve_dict(name: str, derivation: Derivation) -> dict[str, Any]:
    """Every quantity of a numeric problem under its canonical name, as floats (``quantities``)
    and exactly (``exact``: a rational string, or a 30-digit interval when the value is irrational)."""
    own = getattr(derivation, "solve_itself", None)       # a derivation that evaluates itself (wide layers)
    if own is not None:
        return own(name)
    values = evaluate(derivation)
    out: dict[str, Any] = {}
    exact: dict[str, Any] = {}
    for step in derivation.steps:
        out[step.name] = _nested(step.target, values)
        exact[step.name] = _nested(step.target, values, exact_text)
    for alias, target in derivation.aliases:
        if target in out and alias not in out:
            out[alias], exact[alias] = out[target], exact[target]
    return {"name": name, "quantities": out, "exact": exact}


def solve_text(result: dict[str, Any]) -> str:
    lines = [result["name"]]
    for k, v in result["quantities"].items():
        if isinstance(v, list) and v and isinstance(v[0], list):
            body = "[" + "; ".join(" ".join(f"{x:.6g}" for x in row) for row in v) + "]"
        elif isinstance(v, list):
            body = "[" + " ".join(f"{x:.6g}" for x in v) + "]"
        else:
            body = f"{v:.6g}"
        lines.append(f"  {k:<14} {body}")
    return "\n".join(lines)


def _digits_off(r: dict) -> str:
    """How far a stated number is from a value, in units of its last printed digit."""
    return f"{abs(r['stated_value'] - r['value']) * 10 ** r['decimals']:.2g}"


def markdown(examples: list[dict]) -> str:
    """A Markdown report of every example: the tables, then the carried and wrong numbers explained."""
    out = ["# Verdicts on the slides' numbers and formulas", "",
           "Generated by `nnderive verify --markdown > docs/verdicts.md` from the bundled examples; "
           "a test fails when this file is stale.  *exact*: the true value rounds to the printed "
           "digits; *carried*: it does not, but the value recomputed from the slide's own printed "
           "inputs does; *wrong*: neither.  Indices are 0-based.", "",
           "Overall: " + summary_line(summary_dicts(examples)) + ".", ""]
    for ex in examples:
        out += [f"## {ex['name']}: {ex['title']}", "", f"Source: {ex['source']}.", ""]
        if ex["notes"]:
            out += [ex["notes"], ""]
        out += [summary_line(ex["summary"]) + ".", ""]
        if ex["records"]:
            out += ["| quantity | index | stated | exact value | recomputed from stated inputs | verdict |",
                    "|---|---|---|---|---|---|"]
            for r in ex["records"]:
                name = r["quantity"] + (f" ({r['frame']})" if r["frame"] else "")
                out.append(f"| `{name}` | {_index(r['index'])} | {r['stated']} | {_num(r['value'], r['decimals'])} | "
                           f"{_num(r['carried'], r['decimals'])} | {r['verdict']} |")
            out.append("")
            carried = [r for r in ex["records"] if r["verdict"] == "carried"]
            wrong = [r for r in ex["records"] if r["verdict"] == "wrong"]
            if carried:
                out.append(f"Carried ({len(carried)}): " + ", ".join(
                    f"`{r['quantity']}{_index(r['index'])}` = {r['stated']} (true {_num(r['value'], r['decimals'])})"
                    for r in carried) + ".  Each is off from the true value by more than half a unit "
                    "of its last digit, because the slide computed it from rounded intermediates.")
                out.append("")
            for r in wrong:
                recomputed = f", recomputed from the printed inputs {_num(r['carried'], r['decimals'])}" if r["carried"] is not None else ""
                out.append(f"**Wrong**: `{r['quantity']}{_index(r['index'])}` is printed as {r['stated']}; the "
                           f"true value is {_num(r['value'], r['decimals'])}{recomputed}: the printed number is "
                           f"{_digits_off(r)} units of its last digit away from the true value.")
                out.append("")
        if ex["claims"]:
            out += ["| formula | verdict | how |", "|---|---|---|"]
            for c in ex["claims"]:
                if c["verdict"] != "differs":
                    how = c["method"]
                elif c["counterexample"]:
                    how = f"differs at {c['counterexample']}"
                else:                           # e.g. the shapes differ: no point to show
                    how = c["difference"] or "differs"
                out.append(f"| {c['label']} | {c['verdict']} | {how} |")
            out.append("")
            for c in ex["claims"]:
                if c["verdict"] == "differs":
                    out += [f"**Differs**: {c['label']}: lhs − rhs = `{c['difference']}`.", ""]
    return "\n".join(out).rstrip() + "\n"
