"""A quantity's LaTeX name as plain Unicode text, for feedback a student reads in a terminal, a
JSON report or Gradescope: ``\\delta^{2}_{1}`` → ``δ²₁``, ``\\frac{\\partial \\mathcal{L}}{\\partial
w^{3}_{11}}`` → ``∂L/∂w³₁₁``.  Only the small LaTeX of names is understood (scripts, fractions of
partials, fonts, Greek letters, primes); anything else is kept as written, never guessed.
"""
from __future__ import annotations

import re
import unicodedata

_SUP = dict(zip("0123456789+-=()abcdefghijklmnoprstuvwxyzT,′ᵀ",
                "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻᵀ,′ᵀ"))
_SUB = dict(zip("0123456789+-=()aehijklmnoprstuvx,", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ,"))
_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "eta": "η",
          "theta": "θ", "lambda": "λ", "mu": "μ", "sigma": "σ", "tau": "τ", "phi": "φ", "psi": "ψ",
          "omega": "ω", "Delta": "Δ", "Sigma": "Σ", "nabla": "∇", "partial": "∂", "prime": "′", "top": "ᵀ",
          "odot": "⊙", "cdot": "·", "times": "×", "ell": "ℓ", "pm": "±"}
_FONTS = r"\\(?:mathrm|mathbf|boldsymbol|mathcal|mathit|mathsf|text|operatorname|bm|hat|tilde|bar|vec)"


def _script(text: str, table: dict, mark: str) -> str:
    """Text as super/subscript characters when every character has one, else ``^(…)``/``_(…)``."""
    done = set(table.values())
    if text and all(c in table or c in done for c in text):
        return "".join(table.get(c, c) for c in text)
    return f"{mark}({text})" if len(text) > 1 else f"{mark}{text}"


def _group(s: str, i: int) -> tuple[str, int]:
    """The argument starting at s[i] (a braced group or one character) and the index after it."""
    if i < len(s) and s[i] == "{":
        depth = 0
        for j in range(i, len(s)):
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            if depth == 0:
                return s[i + 1:j], j + 1
        return s[i + 1:], len(s)
    return s[i:i + 1], i + 1


def _fractions(s: str) -> str:
    """``\\frac{a}{b}`` → ``a/b`` (its parts in plain text), for groups of any depth."""
    while (i := s.find("\\frac")) >= 0:
        a, j = _group(s, i + 5)
        b, k = _group(s, j)
        s = s[:i] + text_of(a) + "/" + text_of(b) + s[k:]
    return s


def text_of(latex: str) -> str:
    """Plain Unicode text of a name's LaTeX (see the module's docstring)."""
    bold = r"\\(?:mathbf|boldsymbol|bm|mathrm|mathit)\{([^{}])\}"     # \hat{\mathbf{y}} is ŷ too
    s = re.sub(r"\\(?:hat|widehat)\{" + bold + r"\}", "\\1\u0302", latex)
    s = _fractions(re.sub(r"\\(?:hat|widehat)\{([^{}])\}", "\\1\u0302", s))
    for _ in range(8):                                   # innermost groups first, a few levels deep
        new = re.sub(_FONTS + r"\{([^{}]*)\}", r"\1", s)
        new = re.sub(r"\\left|\\right|\\,|\\;|\\!", "", new)
        new = re.sub(r"\\([A-Za-z]+)", lambda m: _GREEK.get(m.group(1), m.group(0)), new)
        new = re.sub(r"(?<![\\^_])\{([^{}]*)\}(?![\^_])", r"\1", new)      # a bare group
        if new == s:
            break
        s = new
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c in "^_" and i + 1 < len(s):
            arg, i = _group(s, i + 1)
            arg = text_of(arg) if "\\" in arg or "{" in arg else arg
            out.append(_script(arg.replace(" ", ""), _SUP if c == "^" else _SUB, c))
            continue
        if c not in "{}":
            out.append(c)
        i += 1
    return unicodedata.normalize("NFC", re.sub(r"\s+", " ", "".join(out)).strip().replace("∂ ", "∂"))
