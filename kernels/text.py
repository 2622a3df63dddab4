"""Generated source text laid out in lines of at most ``WIDTH`` characters (standard library only:
kernels/cache.py reads it on the warm path, which imports neither SymPy nor Numba)."""
from __future__ import annotations

import re

WIDTH = 120                 # no generated line is longer


def lines(*blocks) -> str:
    """Source text from strings and lists of strings."""
    return "\n".join(line for block in blocks for line in ([block] if isinstance(block, str) else block))


def fit(line: str, width: int = WIDTH) -> list[str]:
    """A generated statement in lines of at most ``width`` characters: broken at spaces inside
    brackets (an assignment's right side is bracketed first).  Comments and docstrings, written by
    hand, are left alone."""
    if len(line) <= width or "#" in line or '"' in line:
        return [line]
    indent = line[:len(line) - len(line.lstrip())]
    m = re.fullmatch(r"(\s*(?:return |[^=]+? [-+*&]?= ))(.*)", line)
    if m and not _bracketed(m.group(2)):
        line = f"{m.group(1)}({m.group(2)})"
    out, start, depth, last = [], 0, 0, None
    cont = indent + " " * 8
    for i, ch in enumerate(line):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == " " and depth > 0:
            last = i
        prefix = 0 if not out else len(cont)
        if prefix + i - start >= width and last is not None and last > start:
            out.append(line[start:last].rstrip())
            start, last = last + 1, None
    out.append(line[start:])
    return [out[0]] + [cont + part.lstrip() for part in out[1:]]


def _bracketed(text: str) -> bool:
    """Whether ``text`` is one bracketed group ``( ... )``, or a call ``name( ... )``."""
    m = re.match(r"[\w.]*\(", text)
    if not m:
        return False
    depth = 0
    for i, ch in enumerate(text[m.end() - 1:], start=m.end() - 1):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return i == len(text) - 1
    return False


def fitted(text: str) -> str:
    """Every line of ``text`` through :func:`fit`."""
    return "\n".join(part for line in text.split("\n") for part in fit(line))
