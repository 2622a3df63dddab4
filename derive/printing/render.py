"""Handouts as documents: a standalone .tex file (amsmath, TikZ) and Markdown with ``$$`` maths.

The printer gives blocks of chains (``lhs = form = … ≈ value``); here they become ``align*`` rows
(TeX) or ``aligned`` rows inside ``$$`` (Markdown), broken where a chain would run past the line:
one form per row, and a long sum over several rows.  Prose is escaped (:mod:`derive.printing.texcheck`); only
the notation's validated LaTeX and the printer's own output enter maths.
"""
from __future__ import annotations

import re

from derive.printing.latex import Block, Chain, Code, Math, Table, Terms
from derive.printing.texcheck import md_text, tex_text

LINE = 66        # roughly the characters of maths that fit on a line of the .tex page
_FONT = re.compile(r"\\(?:mathbf|mathrm|mathit|mathcal|boldsymbol|operatorname|hat|bar|tilde|left|right|bigl|bigr"
                   r"|text|tfrac|frac|begin\{[a-z*]+\}|end\{[a-z*]+\})")


def width(tex: str) -> float:
    """A rough printed width of inline maths, in characters."""
    tex = str(tex)
    tex = re.sub(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}",
                 lambda m: "x" * int(max(sum(width(c) + 1 for c in row.split("&"))
                                         for row in m.group(1).split(r"\\")) + 2), tex)
    tex = re.sub(r"\\frac\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}",
                 lambda m: "x" * int(max(width(m.group(1)), width(m.group(2)))), tex)
    tex = re.sub(r"[\^_]\{([^{}]*)\}", lambda m: "x" * int(0.6 * width(m.group(1)) + 0.5), tex)
    tex = _FONT.sub("", tex)
    tex = re.sub(r"\\[A-Za-z]+", "x", tex)
    return len(re.sub(r"[{}\s^_&\\]", "", tex)) * 1.15


_SPACING = re.compile(r"\\(?:left|right|bigl|bigr)(?![A-Za-z])|\\[,;:!]|[{}\s]")


def same_form(a, b) -> bool:
    """Whether two printed forms read the same (``\\tanh(x)`` and ``\\tanh{\\left(x \\right)}``)."""
    return _SPACING.sub("", str(a)) == _SPACING.sub("", str(b))


def forms(chain: Chain) -> tuple:
    """The chain's forms without one equal to what stands before it: no ``tanh(x) = tanh(x)``."""
    out = []
    for rel, form in chain.rhs:
        if rel == "=" and same_form(form, out[-1][1] if out else chain.lhs):
            if out:          # ``-u = - 1 = -1``: the later form (the value as printed) stays
                out[-1] = (out[-1][0], form)
            continue
        out.append((rel, form))
    return tuple(out)


def _short_value(k: int, rhs: tuple) -> bool:
    """The chain's last form, a number or a short value (``≈ −0.1246``): it never stands on a row alone."""
    return k == len(rhs) - 1 and k > 0 and not isinstance(rhs[k][1], Terms) and width(rhs[k][1]) <= 14


def _rows(chain: Chain, line: int) -> list[str]:
    """The align rows of one chain: forms packed onto a row while they fit, a long sum broken; the
    final value goes onto a row with the form before it."""
    rhs = forms(chain)
    if chain.rhs and not rhs:           # only ``x = x``: nothing to say
        return []
    rows, current = [], chain.lhs + " &"
    pieces = []                          # the forms on the current row (a row broken from a sum: none)
    for k, (rel, form) in enumerate(rhs):
        piece = f" {rel} {form}"
        if pieces and width(current + piece) > line:
            if _short_value(k, rhs) and len(pieces) > 1:     # take the form before down with the value
                rows.append(current[: len(current) - len(pieces[-1])])
                current, pieces = "&" + pieces[-1], [pieces[-1]]
            elif not _short_value(k, rhs):
                rows.append(current)
                current, pieces = "&", []
        if pieces == [] and width(current + piece) > line and isinstance(form, Terms):
            broken = _broken(current + f" {rel} ", form, line)
            rows += broken[:-1]
            current = broken[-1]
            pieces = [None]   # the last row of a broken sum: a value may follow it but not take it along
        else:
            current += piece
            pieces.append(piece)
    return rows + [current]


def _columns(chains, line: int) -> list[str]:
    """Short chains (given values) side by side: ``a &= 1 & b &= 2``."""
    rows, current, used = [], [], 0.0
    for c in chains:
        rhs = forms(c)
        if c.rhs and not rhs:
            continue
        text = f"{c.lhs} &" + "".join(f" {rel} {f}" for rel, f in rhs)
        if current and used + width(text) > line:
            rows.append(" & ".join(current))
            current, used = [], 0.0
        current.append(text)
        used += width(text) + 4
    return rows + ([" & ".join(current)] if current else [])


def _broken(lead: str, terms: Terms, line: int) -> list[str]:
    """A long sum over several rows, continuation rows indented."""
    rows, current = [], lead
    for k, (sign, t) in enumerate(terms.terms):
        piece = (t if sign == "+" else "-" + t) if k == 0 else f" {sign} {t}"
        if k and width(current + piece) > line:
            rows.append(current)
            current = r"& \quad " + piece.strip()
        else:
            current += piece
    return rows + [current]


def math_rows(chains, line: int = LINE, columns: bool = False) -> str:
    rows = _columns(chains, line) if columns else [r for c in chains for r in _rows(c, line)]
    return " \\\\\n".join(rows)


def caption_tex(caption) -> str:
    return "".join(f"${p.tex}$" if isinstance(p, Math) else tex_text(p) for p in caption)


def caption_md(caption) -> str:
    return "".join(f"${p.tex}$" if isinstance(p, Math) else md_text(p) for p in caption)


# ----------------------------------------------------------------------------- TeX

PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[a4paper,margin=2cm]{geometry}
\usepackage{amsmath,amssymb}
\usepackage{longtable,booktabs,array}
\usepackage{tikz}
\usepackage{pgfplots}
\usepgfplotslibrary{groupplots}
\pgfplotsset{compat=1.16}
\allowdisplaybreaks
\setcounter{MaxMatrixCols}{20}
\setlength{\parindent}{0pt}
\setlength{\parskip}{4pt}
\renewcommand{\arraystretch}{1.25}
\makeatletter
\newcommand{\keepspace}[1]{\par\penalty-100\begingroup\setlength{\dimen@}{#1}%
  \dimen@ii\pagegoal\advance\dimen@ii-\pagetotal
  \ifdim\dimen@>\dimen@ii\ifdim\dimen@ii>\z@\vfil\fi\break\fi\endgroup}
\makeatother
"""


def block_tex(block: Block) -> str:
    out = [caption_tex(block.caption)] if block.caption else []
    if block.chains:
        out.append("\\begin{align*}\n" + math_rows(block.chains, columns=block.columns) + "\n\\end{align*}")
    return "\n".join(out)


SHORT_TABLE = 8   # rows: a table this short is never broken across pages


def table_need(table) -> int:
    """Lines a table needs on the page it starts: its caption, head and first two rows; a short
    table whole (about two lines a row).  Less left on the page: the table starts on the next."""
    rows = table.rows if len(table.rows) <= SHORT_TABLE else table.rows[:2]
    return round(min(40, 5 + sum(_row_lines(row, table.columns) for row in rows)))


def _row_lines(row, columns) -> float:
    """Printed lines of a table row, roughly: a paragraph column p{share} holds about 90·share characters."""
    lines = 1.0
    for cell, col in zip(row, columns):
        share = re.search(r"p\{([\d.]+)\\linewidth\}", col)
        if share:
            text = width(cell.tex) if isinstance(cell, Math) else len(getattr(cell, "text", str(cell)))
            lines = max(lines, 1.3 * -(-text // (90 * float(share.group(1)))))
    return lines


def table_tex(table) -> str:
    cols = "".join(table.columns)
    head = " & ".join(_cell_tex(h) for h in table.header)
    n = len(table.rows)
    groups = table.groups or tuple(range(n))
    # a page breaks only between row groups, never in a short table, nor after its first or before its last row
    whole = n <= SHORT_TABLE
    ends = [r" \\*" if k + 1 < n and (whole or k in (0, n - 2) or groups[k + 1] == groups[k]) else r" \\"
            for k in range(n)]
    rows = "\n".join(" & ".join(_cell_tex(c) for c in row) + end for row, end in zip(table.rows, ends))
    intro = caption_tex(table.caption) + "\\par\\nopagebreak\n" if table.caption else ""
    intro = f"\\keepspace{{{table_need(table)}\\baselineskip}}\n" + intro
    return (f"{intro}\\begin{{longtable}}{{{cols}}}\n\\toprule\n{head} \\\\\n\\midrule\n\\endhead\n"
            f"{rows}\n\\bottomrule\n\\end{{longtable}}")


def _cell_tex(cell) -> str:
    if isinstance(cell, Math):
        return f"${cell.tex}$"
    if isinstance(cell, Code):
        return r"\texttt{" + _breakable(cell.text) + "}"
    return _breakable(cell)


_LONG_WORD = re.compile(r"(\S{25,})")


def _breakable(text: str) -> str:
    """Prose for a narrow column: a word too long for it (a formula written out) may break after * / , and (."""
    if not _LONG_WORD.search(text):
        return tex_text(text)
    return "".join(r"\allowbreak{}".join(tex_text(p) for p in re.split(r"(?<=[*/,(])", w)) if _LONG_WORD.fullmatch(w)
                   else tex_text(w) for w in _LONG_WORD.split(text))


def _cell_md(cell) -> str:
    if isinstance(cell, Math):  # a bar would end the table cell
        return "$" + cell.tex.replace(r"\left|", r"\left\vert ").replace(r"\right|", r"\right\vert ").replace("|", r"\vert ") + "$"
    if isinstance(cell, Code):
        return "`" + cell.text.replace("`", "'").replace("|", "\\|") + "`"
    return md_text(cell)


def document_tex(handout) -> str:
    parts = [PREAMBLE, f"\\title{{{tex_text(handout.title)}}}", "\\date{}", "\\author{}",
             "\\begin{document}", "\\maketitle", "\\vspace{-4em}"]
    parts += [caption_tex(line) + r"\par" for line in handout.meta]
    for section in handout.sections:         # a heading is not left alone at the foot of a page
        first = section.items[0] if section.items else None
        need = 3 + (table_need(first) if isinstance(first, Table) else 4)
        parts.append(f"\n\\keepspace{{{need}\\baselineskip}}\n\\section*{{{tex_text(section.title)}}}")
        parts.append("\n\n".join(_item_tex(item) for item in section.items))
    parts.append("\n\\end{document}\n")
    return "\n".join(parts)


def _item_tex(item) -> str:
    from derive.printing.tikz import Figure
    if isinstance(item, Figure):     # one unbreakable box: the drawing and its caption share a page
        body = item.tikz.replace("\\begin{center}", "").replace("\\end{center}", "").strip()
        return (f"\\par\\medskip\\noindent\\begin{{minipage}}{{\\linewidth}}\\centering\n{body}\n"
                f"\\par\\medskip\n{tex_text(item.caption)}\n\\end{{minipage}}\\par\\medskip")
    if isinstance(item, Block):
        return block_tex(item)
    if isinstance(item, tuple):          # a paragraph of prose and maths
        return caption_tex(item)
    return table_tex(item)


# ----------------------------------------------------------------------------- Markdown

def block_md(block: Block) -> str:
    out = [caption_md(block.caption)] if block.caption else []
    if block.chains:
        rows = math_rows(block.chains, LINE + 24, block.columns)
        out.append("$$\n\\begin{aligned}\n" + rows + "\n\\end{aligned}\n$$")
    return "\n\n".join(out)


def table_md(table) -> str:
    head = "| " + " | ".join(_cell_md(h) for h in table.header) + " |"
    rule = "|" + "|".join("---" for _ in table.header) + "|"
    rows = ["| " + " | ".join(_cell_md(c) for c in row) + " |" for row in table.rows]
    intro = [caption_md(table.caption), ""] if table.caption else []
    return "\n".join(intro + [head, rule] + rows)


def figure_file(stem: str, k: int) -> str:
    """The file name of a Markdown handout's k-th drawing (1-based), beside the .md file."""
    return f"{stem}-figure{k}.svg"


def document_md(handout, figures: str | None = None) -> str:
    """The Markdown handout; its drawings as images ``<figures>-figure<k>.svg`` (the SVGs that
    :func:`derive.handout.assemble.figure_svgs` makes), or, with ``figures=""``, a line pointing to the PDF."""
    from derive.printing.tikz import Figure
    stem = handout.name if figures is None else figures
    parts = [f"# {md_text(handout.title)}", ""] + [caption_md(line) + "  " for line in handout.meta]
    k = 0
    for section in handout.sections:
        parts += ["", f"## {md_text(section.title)}", ""]
        for item in section.items:
            if isinstance(item, Figure):
                k += 1
                if stem:
                    parts += [f"![{md_text(item.caption)}]({figure_file(stem, k)})", "", md_text(item.caption), ""]
                else:
                    parts += [md_text(item.caption) + " (The drawing is in the PDF handout.)", ""]
                continue
            text = block_md(item) if isinstance(item, Block) else (
                caption_md(item) if isinstance(item, tuple) else table_md(item))
            parts += [text, ""]
    return "\n".join(parts).rstrip() + "\n"
