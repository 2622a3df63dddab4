"""What untrusted text may put into a .tex file: checked maths, escaped prose.

Spec files are untrusted, and two kinds of their text reach a handout:

* LaTeX from the ``[notation]`` table (``grad_w5 = "\\delta_5"``) goes in as maths, so it is
  *validated*: printable ASCII only, balanced braces, and only control sequences from an
  allow-list of symbol and font commands.  Everything that can read or write files, run a shell,
  define macros or change category codes (``\\input``, ``\\write18``, ``\\openout``, ``\\def``,
  ``\\catcode``, ``^^5c`` hex escapes, ``%``, ``#``, ``&``, ``$``, ``~``) is refused.
* Prose (titles, notes, claim labels, sources) is *escaped*: TeX's special characters become
  their printed forms and the Unicode a spec author types (δ, ∂, ½, ‖...) becomes LaTeX from a
  table; characters pdflatex cannot set without extra fonts (CJK) are left out and counted.
"""
from __future__ import annotations

import re
import unicodedata

from derive.core.errors import SpecError

MAX_LATEX = 200

# Control sequences a notation override may use: symbols, accents and font switches only.
GREEK = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi "
         "pi varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega "
         "Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega").split()
ALLOWED_COMMANDS = frozenset(GREEK + (
    "mathrm mathbf mathit mathsf mathtt mathcal mathbb boldsymbol operatorname text textrm textit textbf "
    "hat widehat tilde widetilde bar overline vec dot ddot check breve acute grave underline "
    "partial nabla ell prime top intercal odot otimes oplus cdot times circ ast star "
    "frac tfrac dfrac sqrt left right big Big bigl bigr lVert rVert lvert rvert Vert vert langle rangle "
    "sum prod log exp tanh sigma max min quad qquad").split())

_ALLOWED_CHARS = re.compile(r"[A-Za-z0-9 _^{}()\[\],.'+\-=|/*<>:;!]*")
_COMMAND = re.compile(r"\\([A-Za-z]+|.)")


def check_latex(text: str, path: str = "notation") -> str:
    """``text`` if it is safe maths for a handout, else a :class:`SpecError` naming ``path``."""
    if not isinstance(text, str):
        raise SpecError(path, "expected LaTeX written as a string")
    if len(text) > MAX_LATEX:
        raise SpecError(path, f"LaTeX longer than {MAX_LATEX} characters")
    if "^^" in text:
        raise SpecError(path, "'^^' (a TeX character-code escape) is not allowed")
    for m in _COMMAND.finditer(text):
        name = m.group(1)
        if name not in ALLOWED_COMMANDS and name not in ",;:! {}|":
            raise SpecError(path, f"the command '\\{name}' is not allowed in notation "
                                  f"(allowed: Greek letters, accents, fonts and symbols)")
    rest = _COMMAND.sub("", text)
    if not _ALLOWED_CHARS.fullmatch(rest):
        bad = next(c for c in rest if not _ALLOWED_CHARS.fullmatch(c))
        raise SpecError(path, f"the character {bad!r} is not allowed in notation")
    depth = 0
    for m in re.finditer(r"\\[{}]|[{}]", text):
        if len(m.group()) == 2:
            continue
        depth += 1 if m.group() == "{" else -1
        if depth < 0:
            raise SpecError(path, "unbalanced braces")
    if depth:
        raise SpecError(path, "unbalanced braces")
    return text


# ----------------------------------------------------------------------------- prose

_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
            "^": r"\^{}", "_": r"\_", "%": r"\%", "~": r"\~{}", "<": r"\textless{}", ">": r"\textgreater{}",
            "|": r"\textbar{}"}

# Unicode a spec author writes in prose, as LaTeX that pdflatex sets with the base fonts.
_MATH = {"α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\epsilon", "η": r"\eta",
         "θ": r"\theta", "λ": r"\lambda", "μ": r"\mu", "π": r"\pi", "σ": r"\sigma", "τ": r"\tau",
         "φ": r"\phi", "ω": r"\omega", "Δ": r"\Delta", "Σ": r"\Sigma", "Θ": r"\Theta",
         "∂": r"\partial", "∇": r"\nabla", "⊙": r"\odot", "∘": r"\circ", "·": r"\cdot", "×": r"\times",
         "−": "-", "±": r"\pm", "≤": r"\le", "≥": r"\ge", "≠": r"\ne", "≈": r"\approx", "→": r"\to",
         "←": r"\leftarrow", "⇒": r"\Rightarrow", "‖": r"\|", "∈": r"\in", "∞": r"\infty",
         "²": "^2", "³": "^3", "⁰": "^0", "ᵀ": "^{\\top}", "½": r"\tfrac12", "√": r"\surd", "⌊": r"\lfloor",
         "⌋": r"\rfloor", "…": r"\dots", "′": "'", "°": r"^{\circ}", "∗": r"\ast", "⋆": r"\star"}
_TEXT = {"—": "---", "–": "--", "‘": "`", "’": "'", "“": "``", "”": "''", "\u00a0": "~", "é": r"\'e",
         "è": r"\`e", "ü": r'\"u', "ö": r'\"o', "ä": r'\"a'}
_ACCENT = {"\u0302": r"\hat", "\u0303": r"\tilde", "\u0304": r"\bar"}  # combining marks after a letter


def _is_cjk(c: str) -> bool:
    return unicodedata.east_asian_width(c) in ("W", "F")


def tex_text(text: str) -> str:
    """Prose for a .tex file: special characters escaped, known Unicode as LaTeX, CJK left out.

    A run of CJK characters becomes an ellipsis in brackets, so the reader knows text was there
    (the Markdown handout keeps it).
    """
    out: list[str] = []
    decomposed = unicodedata.normalize("NFD", text)
    i = 0
    while i < len(decomposed):
        c = decomposed[i]
        nxt = decomposed[i + 1] if i + 1 < len(decomposed) else ""
        if nxt in _ACCENT and c.isalpha() and c.isascii():
            out.append(f"\\ensuremath{{{_ACCENT[nxt]}{{{c}}}}}")
            i += 2
            continue
        if _is_cjk(c):
            while i < len(decomposed) and (_is_cjk(decomposed[i]) or decomposed[i] in " "):
                i += 1
            out.append("[\\dots]" + (" " if i < len(decomposed) else ""))
            continue
        if c in _SPECIAL:
            out.append(_SPECIAL[c])
        elif c in _MATH:
            out.append(f"\\ensuremath{{{_MATH[c]}}}")
        elif c in _TEXT:
            out.append(_TEXT[c])
        elif c.isascii() and (c.isprintable() or c == "\n"):
            out.append(c)
        elif c in _ACCENT:
            pass  # a stray combining mark
        else:
            out.append("?")
        i += 1
    return re.sub(r"\[\\dots\](?:[\s,;:/\-]*\[\\dots\])+", "[\\\\dots]", "".join(out))


def md_text(text: str) -> str:
    """Prose for Markdown: the characters Markdown or MathJax would act on are escaped."""
    return re.sub(r"([\\`*_{}\[\]<>#|$])", r"\\\1", text)
