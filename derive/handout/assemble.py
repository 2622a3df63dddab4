"""Step-by-step derivation handouts: assembly, documents, and the ``nnderive handout`` command.

:func:`build` reads a spec, derives it, evaluates it (exactly, or certified), names its quantities
in a notation profile and arranges the steps into sections: the problem (given values, a drawing),
the forward pass, the backward pass in matrix form and element by element, the update, the forward
pass again, and the check of every number and formula the source printed.  The printer
(:mod:`derive.printing.latex`) turns each step into a block; :mod:`derive.printing.render` writes .tex or Markdown.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from derive.core import primitives
from derive import kinds
from derive.core.files import write_atomic
from derive.printing.sections import Handout, Section

TEX_PACKAGES = "texlive-latex-base texlive-latex-recommended texlive-pictures latexmk"


# ----------------------------------------------------------------------------- assembly

def _values(derivations, numeric: bool, bits: int):
    """Every quantity's value (enclosures of ``bits`` bits), or None for a symbolic problem."""
    from derive.core.evaluate import evaluate
    if not numeric:
        return None
    values = {}
    for d in derivations:
        values.update(evaluate(d, bits=bits))
    return values


def build(spec, notation: str | None = None, decimals: int = 4) -> Handout:
    """The handout of ``spec`` in the profile ``notation`` (default: the spec's, else ``standard``)."""
    from derive.core.evaluate import PRECISIONS, Undecided, is_numeric
    from derive.printing.latex import HandoutPrinter
    from derive.printing.notation import profile
    from derive.verify.stated import verify_spec


    derivation = kinds.derive(spec)
    whole = kinds.document(spec, derivation, decimals)      # a derivation printed its own way (wide layers)
    if whole is not None:
        return whole
    prof = profile(notation or dict(spec.notation).get("profile", "standard"),
                   "--notation" if notation else "notation.profile")
    derivations = kinds.companions(spec, derivation)
    own = None if derivation is None else kinds.printing(derivation.kind)   # a kind printed its own way
    nm = kinds.names(derivations, prof, spec.notation)
    report = verify_spec(spec)
    numeric = derivation is not None and is_numeric(derivation)
    for bits in PRECISIONS:  # a value too close to a rounding boundary is evaluated again, finer
        try:
            printer = (own.Printer if own else HandoutPrinter)(nm, derivations, _values(derivations, numeric, bits),
                                                                decimals)
            sections = _sections(spec, derivations, printer, report, own)
            break
        except Undecided:
            if bits == PRECISIONS[-1]:
                raise
    return Handout(spec.name, spec.title, _meta(spec, prof, decimals, numeric, own), tuple(sections))


def _meta(spec, prof, decimals: int, numeric: bool, own=None) -> tuple:
    from derive.printing.notation import source_words
    from derive.printing.latex import caption
    lines = []
    if spec.source:
        lines.append(caption(f"Source: {source_words(spec.source)}."))
    if own is not None:
        lines.append(caption(own.meta(spec, prof)))
    elif spec.problem is not None:
        lines.append(caption("Notation: the source's symbols where this kind of problem knows them, "
                             "otherwise each quantity under its name in the spec."))
    if numeric:
        lines.append(caption(f"Numbers are exact where the arithmetic is rational and otherwise rounded to "
                             f"{decimals} decimals for display ('≈'); every value is computed exactly or "
                             "with certified error bounds, never from rounded intermediates."))
    if spec.notes:
        lines.append(caption(f"Notes: {spec.notes}"))
    return tuple(lines)


def _sections(spec, derivations, printer, report, own=None) -> list[Section]:
    from derive.core.steps import Derivation
    if not derivations:
        return [_formulas_only(spec, printer)] + _plots(spec) + _checks(spec, derivations, printer, report)
    main: Derivation = derivations[0]
    if own is None:          # a kind without a printer of its own: its layout, or every step in order
        layout = kinds.of(spec.problem).handout or _in_order
        return [s for s in layout(spec, main, printer) if s.items] + _checks(spec, derivations, printer, report)
    out, placed = own.sections(spec, derivations, printer), own.placed
    further = [printer.doprint(s) for s in main.steps if not isinstance(s, placed())]
    out.append(Section("Further steps", tuple(further)))   # nothing of the derivation is left out
    return [s for s in out if s.items] + _checks(spec, derivations, printer, report)


def _in_order(spec, main, printer) -> list[Section]:
    """The given values, then every other step in derivation order; neighbouring steps with the same
    caption share one block (the forward nodes, the chain-rule lines)."""
    from derive.core.steps import Given
    from derive.printing.latex import Block
    from derive.printing.worked import Group
    given = [printer.doprint(Group(tuple(s for s in main.steps if isinstance(s, Given))))]
    steps: list = []
    for block in (printer.doprint(s) for s in main.steps if not isinstance(s, Given)):
        last = steps[-1] if steps else None
        if isinstance(block, Block) and isinstance(last, Block) and last.caption == block.caption \
                and last.columns == block.columns:
            steps[-1] = Block(last.caption, last.chains + block.chains, last.columns)
        else:
            steps.append(block)
    return [Section("The problem", tuple(given)), Section("Derivation", tuple(steps))]


_ACTIVATION_CLAIM = re.compile(r"\s*\[?\s*(?:diff\(\s*)?([a-z_]+)\(\s*x\s*(?:,([^()]*))?\)")
_PARAM = re.compile(r"\s*([a-z]+)\s*=\s*(\d+(?:\.\d+)?)\s*")


def plotted_activations(spec) -> list[tuple[str, tuple]]:
    """The scalar activations a formulas-only spec states claims about (a claim whose left side is
    g(x) or diff(g(x), x)), each with its parameters: a number as the claim gives it, else the default."""
    out = []
    for claim in spec.claims:
        m = _ACTIVATION_CLAIM.match(claim.lhs)
        act = primitives.ACTIVATIONS.get(m.group(1)) if m else None
        if act is None or act.vector:
            continue
        given = dict(p.groups() for p in map(_PARAM.fullmatch, (m.group(2) or "").split(",")) if p)
        params = tuple((k, given.get(k, default)) for k, default in act.params)
        if (act.name, params) not in out:
            out.append((act.name, params))
    return out


def _plots(spec) -> list[Section]:
    """A plot of each activation the formulas are about, with its derivative."""
    from derive.printing.tikz import activation_plot
    acts = plotted_activations(spec)
    if not acts:
        return []
    return [Section("The activations and their derivatives", (activation_plot(acts),))]


def _formulas_only(spec, printer) -> Section:
    from derive.printing.latex import caption
    symbols = ", ".join(f"{n} ({dom})" for n, dom in spec.symbols)
    intro = caption(f"This example states formulas only. The engine checks each one by unfolding and "
                    f"simplifying both sides (declared symbols: {symbols}).")
    return Section("The problem", (intro,))


def _checks(spec, derivations, printer, report) -> list[Section]:
    from derive.printing.latex import Math, Table, caption
    from derive.core.rounding import show
    items = []
    if report.records:
        main = derivations[0]
        rows = []
        for r in report.records:
            q = main.quantity(r.quantity)
            idx = r.index or ((0,) if q.shape == (1,) else ())
            sym = q.symbol(idx)
            places = max(printer.decimals, r.stated.decimals + 1)
            label = printer.e(sym) if printer.names.sign(sym.name) > 0 else "-" + printer.e(sym)
            rows.append((Math(label), r.stated.text, show(r.value, places).text,
                         "" if r.carried is None else show(r.carried, places).text,
                         r.verdict + (f" ({r.frame})" if r.frame else "")))
        flipped = " (A minus sign in the symbol column: the source's number is minus this notation's quantity.)"
        items.append(Table(caption("Every number the source prints, against the engine: 'exact' when it is "
                                   "the true value rounded as printed, 'carried' when it follows from the "
                                   "source's own rounded inputs, 'wrong' otherwise." +
                                   (flipped if printer.names.negated else "")),
                           ("quantity", "stated", "engine", "carried", "verdict"), tuple(rows),
                           ("l", "r", "r", "r", "l"), tuple(r.quantity for r in report.records)))
    if report.claims:
        rows = []
        for c in report.claims:
            how = c.method + (f"; lhs − rhs = {c.difference}" if c.difference else "") + \
                (f"; at {c.counterexample}" if c.counterexample else "")
            rows.append((c.label, _claim_formula(c, spec, printer), c.verdict, how))
        items.append(Table(caption("Every formula the source states, checked by the engine: 'proved' (both sides "
                                   "simplify to the same expression), 'differs' (with a point where they "
                                   "differ), or 'undetermined'."),
                           ("formula", "in this notation", "verdict", "how"), tuple(rows),
                           (_ragged(0.3), _ragged(0.3), "l", _ragged(0.2))))
    return [Section("Checked against the source", tuple(items))] if items else []


def _claim_formula(claim, spec, printer):
    """lhs = rhs as maths in the handout's notation, or as written when it cannot be printed."""
    from derive.printing.claimtex import claim_names, formula
    from derive.core.errors import SpecError
    from derive.printing.latex import Code, Math
    table = claim_names(printer.names, spec, printer.quantities)
    try:
        return Math(f"{formula(claim.lhs, table, printer.names.elements)} = "
                    f"{formula(claim.rhs, table, printer.names.elements)}")
    except (SpecError, KeyError):
        return Code(f"{claim.lhs} = {claim.rhs}")


def _ragged(share: float) -> str:
    return rf">{{\raggedright\arraybackslash}}p{{{share}\linewidth}}"


# ----------------------------------------------------------------------------- Jupyter

def derivation_latex(derivation, notation: str = "standard", decimals: int = 4) -> str:
    """Every step of a derivation as one ``aligned`` display, with numbers when it has them."""
    from derive.printing.render import math_rows
    printer = _printer_for(derivation, notation, decimals)
    chains = [c for s in derivation.steps for c in printer.doprint(s).chains]
    return "$$\\begin{aligned}\n" + math_rows(chains, 90) + "\n\\end{aligned}$$"


def derivation_markdown(derivation, notation: str = "standard", decimals: int = 4) -> str:
    """Every step of a derivation as Markdown: its caption, then its maths."""
    from itertools import groupby
    from derive.printing.render import block_md
    from derive.printing.worked import Group
    printer = _printer_for(derivation, notation, decimals)
    groups = [Group(tuple(g)) for _, g in groupby(derivation.steps, key=type)]
    return "\n\n".join(block_md(printer.doprint(g)) for g in groups) + "\n"


def _printer_for(derivation, notation: str, decimals: int):
    from derive.core.evaluate import DEFAULT_PREC, is_numeric
    from derive.printing.latex import HandoutPrinter
    values = _values([derivation], is_numeric(derivation), DEFAULT_PREC)
    own = kinds.printing(derivation.kind)
    return (own.Printer if own else HandoutPrinter)(kinds.names([derivation], notation), [derivation], values, decimals)


# ----------------------------------------------------------------------------- files and PDF

def handout_text(path: str, fmt: str, notation: str | None, decimals: int, figures: str | None = None):
    """The handout of one spec file as text, and its drawings' TikZ (run inside the sandbox)."""
    from derive.core.commandline import in_file
    h = in_file(path, lambda: build(kinds.load(path), notation, decimals))    # errors name the file, as verify's
    return (h.tex() if fmt == "tex" else h.markdown(figures)), [f.tikz for f in h.figures()]


FIGURE_DOC = r"""\documentclass{article}
\usepackage{amsmath,amssymb}
\usepackage{tikz}
\usepackage{pgfplots}
\usepgfplotslibrary{groupplots}
\pgfplotsset{compat=1.16}
\pagestyle{empty}
\begin{document}
%s
\end{document}
"""


def can_draw_svg() -> bool:
    return bool(shutil.which("latex") and shutil.which("dvisvgm"))


def figure_svgs(tikz: list[str], timeout: float = 120.0) -> list[bytes]:
    """Each drawing as SVG, from the same TikZ as the PDF: latex to DVI, then dvisvgm (TeX Live),
    with shell escape off and the glyphs drawn as paths (no fonts needed to view it)."""
    env = dict(os.environ, openout_any="p", openin_any="p", shell_escape="f")
    out = []
    with tempfile.TemporaryDirectory(prefix="nnderive-fig-") as tmp:
        for k, body in enumerate(tikz, start=1):
            body = body.replace("\\begin{center}", "").replace("\\end{center}", "").strip()
            src = Path(tmp) / f"f{k}.tex"
            src.write_text(FIGURE_DOC % body, encoding="utf-8")
            for cmd in (["latex", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", src.name],
                        ["dvisvgm", "--no-fonts", "--exact-bbox", "--bbox=4pt", "-o", f"f{k}.svg", f"f{k}.dvi"]):
                done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
                if done.returncode != 0:
                    raise RuntimeError(f"{cmd[0]} failed on drawing {k}: {(done.stdout + done.stderr)[-800:]}")
            out.append((Path(tmp) / f"f{k}.svg").read_bytes())
    return out


def write_markdown(out: Path, text: str, tikz: list[str]) -> list[Path]:
    """The .md file and its drawings beside it (``<stem>-figure<k>.svg``)."""
    from derive.printing.render import figure_file
    written = [write_atomic(out.parent / figure_file(out.stem, k), svg)
               for k, svg in enumerate(figure_svgs(tikz), start=1)]
    return [write_atomic(out, text)] + written


def compile_pdf(tex_path: Path, timeout: float = 120.0) -> Path:
    """Compile a .tex handout with latexmk (or pdflatex twice); shell escape off, file access paranoid."""
    env = dict(os.environ, openout_any="p", openin_any="p", shell_escape="f")
    workdir = tex_path.parent
    if shutil.which("latexmk"):
        cmd = [["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-quiet",
                "-pdflatex=pdflatex -no-shell-escape %O %S", tex_path.name]]
    elif shutil.which("pdflatex"):
        cmd = [["pdflatex", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", tex_path.name]] * 2
    else:
        raise FileNotFoundError(f"no pdflatex or latexmk found; on Debian or Ubuntu install them with: "
                                f"apt-get install {TEX_PACKAGES}")
    for c in cmd:
        done = subprocess.run(c, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = tex_path.with_suffix(".log")
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else done.stdout[-1500:]
            raise RuntimeError(f"{c[0]} failed on {tex_path.name}:\n{tail}")
    return tex_path.with_suffix(".pdf")


def _cleanup(tex_path: Path) -> None:
    for ext in (".aux", ".log", ".fls", ".fdb_latexmk", ".out"):
        tex_path.with_suffix(ext).unlink(missing_ok=True)


def write_all(directory: Path, notation: str | None, decimals: int, timeout: float, pdf: bool) -> list[Path]:
    """Every bundled example's handout, .tex and .md, into ``directory``."""
    import worked_examples
    from derive.core.sandbox import run
    written = []
    for name in worked_examples.names():
        for fmt in ("tex", "md"):
            figures = None if can_draw_svg() else ""
            text, tikz = run(handout_text, str(worked_examples.path(name)), fmt, notation, decimals, figures,
                             timeout=timeout)
            out = directory / f"{name}.{fmt}"
            if fmt == "md" and tikz and figures is None:
                written += write_markdown(out, text, tikz)
                continue
            written.append(write_atomic(out, text))
            if pdf and fmt == "tex":
                written.append(compile_pdf(out))
                _cleanup(out)
    return written


def cmd_handout(args) -> int:
    from derive.core.commandline import EXIT_OK, spec_paths
    from derive.core.errors import InputError
    from derive.core.sandbox import Limit, run
    if args.notation:
        from derive.printing.notation import profile
        profile(args.notation, "--notation")
    try:
        if args.all:
            if not args.output:
                raise InputError("--all needs -o DIRECTORY")
            for path in write_all(Path(args.output), args.notation, args.decimals, args.timeout, args.pdf):
                print(path)
            return EXIT_OK
        if not args.spec:
            raise InputError("give a spec file or example name (see 'nnderive list'), or --all -o DIR")
        path = spec_paths([args.spec])[0]
        fmt = _format(args)
        svg = fmt == "md" and bool(args.output) and can_draw_svg()
        figures = Path(args.output).stem if svg else ""
        text, tikz = run(handout_text, str(path), fmt, args.notation, args.decimals, figures, timeout=args.timeout)
    except Limit as err:
        raise InputError(f"{args.spec or 'handout'}: {err}") from None
    if args.pdf:
        return _pdf(args, path, text)
    if args.output and svg and tikz:
        try:
            write_markdown(Path(args.output), text, tikz)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            raise InputError(f"the drawings could not be made: {err}") from None
    elif args.output:
        if fmt == "md" and tikz:
            print("nnderive: note: no latex/dvisvgm here, so the drawings are left out of the Markdown "
                  "(apt-get install dvisvgm)", file=sys.stderr)
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _format(args) -> str:
    """tex or md: --format, else the -o file's suffix; a PDF is made from the tex."""
    from derive.core.errors import InputError
    suffix = Path(args.output).suffix.lower() if args.output else ""
    if args.pdf:
        if args.format == "md":
            raise InputError("--pdf makes the PDF from the LaTeX handout: leave out --format md")
        if suffix not in ("", ".pdf"):
            raise InputError(f"--pdf writes a PDF, but -o names a {suffix} file: give -o {Path(args.output).stem}.pdf")
        return "tex"
    return args.format or ("md" if suffix == ".md" else "tex")


def _pdf(args, path: Path, text: str) -> int:
    from derive.core.commandline import EXIT_INPUT, EXIT_OK
    out = Path(args.output) if args.output else Path(path.stem + ".pdf")
    with tempfile.TemporaryDirectory(prefix="nnderive-") as tmp:
        tex = Path(tmp) / (out.stem + ".tex")
        tex.write_text(text, encoding="utf-8")
        started = time.perf_counter()
        try:
            pdf = compile_pdf(tex)
        except FileNotFoundError as err:
            print(f"nnderive: {err}", file=sys.stderr)
            return EXIT_INPUT
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            print(f"nnderive: error: the PDF could not be made: {err}", file=sys.stderr)
            return EXIT_INPUT
        target = write_atomic(out if out.suffix == ".pdf" else out.with_suffix(".pdf"), pdf.read_bytes())
    print(f"{target} ({time.perf_counter() - started:.1f} s to compile)", file=sys.stderr)
    return EXIT_OK


def register(subparsers) -> None:
    from derive.core.commandline import int_from, positive_float
    p = subparsers.add_parser(
        "handout", help="a step-by-step derivation handout (.tex, Markdown or PDF)",
        description="Write the derivation of a spec as a handout: the problem, the forward pass, the backward "
                    "pass in matrix form and element by element, the update, and the check of every number "
                    "the source printed, in a course's notation.",
        epilog="Profiles: standard (default for a spec of your own), xjtu (000), nankai (001), deck002 (002), "
               "uibe (003), deck004 (004). "
               "Regenerate docs/handouts with: nnderive handout --all -o docs/handouts")
    p.add_argument("spec", nargs="?", metavar="SPEC_OR_NAME", help="a .toml/.json spec or a bundled example name")
    p.add_argument("-o", "--output", metavar="FILE", help="output file (with --all: a directory); default stdout")
    p.add_argument("--format", choices=("tex", "md"), help="tex (default) or md (Markdown with $$ maths)")
    p.add_argument("--notation", metavar="NAME", help="notation profile (default: the spec's, else standard)")
    p.add_argument("--decimals", type=int_from(0, 12), default=4, metavar="N",
                   help="decimals shown for rounded numbers, 0 to 12 (default 4)")
    p.add_argument("--pdf", action="store_true", help="compile to PDF with latexmk or pdflatex")
    p.add_argument("--all", action="store_true", help="every bundled example, .tex and .md, into -o DIRECTORY")
    p.add_argument("--timeout", type=positive_float, default=120.0, help="seconds allowed per handout (default 120)")
    p.set_defaults(func=cmd_handout)
