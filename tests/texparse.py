"""Reading a handout back: its displays, chains, tokens, tables and drawing labels.

This is the tests' own reader of the printed output, written against the text alone (not the
printer's data), so that the numbers a reader sees can be compared with the engine's values.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
RELATIONS = ("=", r"\approx")


def displays(text: str) -> list[str]:
    """Bodies of align* (TeX) and aligned-in-$$ (Markdown) displays."""
    tex = re.findall(r"\\begin\{align\*\}\n(.*?)\n\\end\{align\*\}", text, re.S)
    md = re.findall(r"\$\$\n\\begin\{aligned\}\n(.*?)\n\\end\{aligned\}\n\$\$", text, re.S)
    return tex + md


def _split(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside braces and \\begin...\\end environments."""
    out, depth, env, i, start = [], 0, 0, 0, 0
    while i < len(text):
        if text.startswith(r"\begin{", i):
            env += 1
        elif text.startswith(r"\end{", i):
            env -= 1
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "{}&":
            i += 2
            continue
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
        elif depth == 0 and env == 0 and text.startswith(sep, i):
            out.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    out.append(text[start:])
    return out


@dataclass
class Chain:
    lhs: str
    forms: list  # of (relation, text)


def _relations(cell: str) -> list[tuple[str, str]]:
    """' = a = b \\approx c' → [(None, ''), ('=', 'a'), ('=', 'b'), ('\\approx', 'c')], split outside groups."""
    parts, rel, depth, env, i, start = [], None, 0, 0, 0, 0
    while i < len(cell):
        if cell.startswith(r"\begin{", i):
            env += 1
        elif cell.startswith(r"\end{", i):
            env -= 1
        if cell[i] == "\\" and i + 1 < len(cell) and cell[i + 1] in "{}":
            i += 2
            continue
        if cell[i] == "{":
            depth += 1
        elif cell[i] == "}":
            depth -= 1
        elif depth == 0 and env == 0 and (cell[i] == "=" or cell.startswith(r"\approx", i)):
            parts.append((rel, cell[start:i].strip()))
            rel = "=" if cell[i] == "=" else r"\approx"
            i += len(rel)
            start = i
            continue
        i += 1
    parts.append((rel, cell[start:].strip()))
    return parts


def chains(body: str) -> list[Chain]:
    """The chains of one display; a row whose first cell is empty continues the chain above."""
    out: list[Chain] = []
    for row in _split(body, r"\\"):
        cells = _split(row, "&")
        for k in range(0, len(cells) - 1, 2):
            lhs, rest = cells[k].strip(), cells[k + 1].strip()
            if rest.startswith(r"\quad"):      # a long form continued; it may end in further forms
                parts = _relations(rest[len(r"\quad"):])
                rel, text = out[-1].forms[-1]
                out[-1].forms[-1] = (rel, text + " " + parts[0][1])
                out[-1].forms += parts[1:]
                continue
            parts = _relations(rest)
            if parts[0][1]:            # a relation other than = and ≈ (x ∈ R³, η > 0)
                parts = [(None, ""), ("other", rest)]
            if lhs:
                out.append(Chain(lhs, parts[1:]))
            else:
                out[-1].forms += parts[1:]
    return out


# ----------------------------------------------------------------------------- tokens

@dataclass(frozen=True)
class Sym:
    name: str          # element symbol name (z1[0]) or quantity name (z1)
    quantity: bool


@dataclass(frozen=True)
class Num:
    text: str


@dataclass(frozen=True)
class Mat:
    cells: tuple       # token lists, row-major


class Tokenizer:
    """Symbols by their printed LaTeX (longest match first), numbers, and bmatrix cells."""

    def __init__(self, names):
        table = {}
        for name, tex in names.quantities.items():
            table.setdefault(tex, Sym(name, True))
            table.setdefault(names.transpose(name), Sym(name, True))
        for name, tex in names.elements.items():
            table[tex] = Sym(name, False)
        self.table = table
        keys = sorted(table, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(k) for k in keys))

    def __call__(self, text: str) -> list:
        out, i = [], 0
        while i < len(text):
            if text.startswith(r"\begin{bmatrix}", i):
                end = _matching_end(text, i)
                body = text[i + len(r"\begin{bmatrix}"):end]
                cells = [self(c) for row in _split(body, r"\\") for c in _split(row, "&")]
                out.append(Mat(tuple(cells)))
                i = end + len(r"\end{bmatrix}")
                continue
            m = self.pattern.match(text, i)
            if m and m.group():
                out.append(self.table[m.group()])
                i = m.end()
                continue
            m = NUMBER.match(text, i)
            if m:  # a minus sign written against the digits belongs to the number (-0.0155)
                out.append(Num(m.group()))
                i = m.end()
                continue
            if text.startswith("\\", i):  # skip a control word whole (its letters are no symbols)
                m = re.match(r"\\[A-Za-z]+|\\.", text[i:])
                i += len(m.group())
                continue
            i += 1
        return out


def _matching_end(text: str, start: int) -> int:
    depth, i = 0, start
    while True:
        b = text.find(r"\begin{bmatrix}", i)
        e = text.find(r"\end{bmatrix}", i)
        if b != -1 and b < e:
            depth += 1
            i = b + 1
        else:
            depth -= 1
            if depth == 0:
                return e
            i = e + 1


def decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def as_fraction(text: str) -> Fraction:
    return Fraction(text)


# ----------------------------------------------------------------------------- tables and drawings

def longtable_rows(text: str) -> list[list[str]]:
    rows = []
    for body in re.findall(r"\\midrule\n\\endhead\n(.*?)\n\\bottomrule", text, re.S):
        for row in body.split("\n"):
            rows.append([c.strip() for c in _split(row.rstrip("\\").rstrip(), "&")])
    return rows


def markdown_table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| key") and not line.startswith("| formula") \
                and not line.startswith("| layer"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def tikz_labels(text: str) -> list[tuple[str, str]]:
    """(node name, label) for value nodes (v-…), gradient nodes (g-…) and labelled edges (a -> b)."""
    out = []
    for name, label in re.findall(r"\\node\[(?:v|val|grad)[^\]]*\] \(([vg]-[^)]*)\) at \([^)]*\) \{\$(.*?)\$\};", text):
        out.append((name, label))
    for a, label, b in re.findall(r"\\draw\[->\] \(([^)]*)\) -- node\[[^\]]*\] \{\$(.*?)\$\} \(([^)]*)\);", text):
        out.append((f"{a}->{b}", label))
    return out
