"""LaTeX answers -> SymPy: latex2sympy2 behind a normalisation layer for neural-network notation.

Student text never reaches latex2sympy2 as written.  The layer in front tokenises it against a
whitelist, resolves every name against the quantities the spec declares (``o_1`` is node ``o1``,
``W^{(2)}_{12}`` is ``W2[0,1]``, ``\\frac{\\partial L}{\\partial w_5}`` is ``grad_w5``), applies the
registry's functions itself (``\\sigma``, ``\\sigma'``, ``\\operatorname{ReLU}``, ``\\max``...) and
transposes, and hands latex2sympy2 only arithmetic over *placeholders* ``{v_{k}}`` that it
generated: digits, ``+ - * / ^``, brackets, ``\\frac``, ``\\sqrt``, ``\\exp``, ``\\ln``, ``e``,
``|…|``, ``\\cdot`` and ``\\mod`` (which stands for ``\\odot``).  The layer behind walks the tree
latex2sympy2 returns, allows only those node types, maps placeholders back to their values and
rebuilds the result with shape-checked matrix algebra (matrix products keep their order).

So no student-written name reaches SymPy, latex2sympy2's globals are never set from student text,
nothing reaches ``eval``/``exec``/``sympify``/``parse_expr`` (:func:`no_eval` makes that a hard
error), and an unknown token is an error naming its column, never a guess.  Names are case
sensitive (latex2sympy2's ``lowercase_symbols`` is not a thing here: nothing is lowercased).
The callers run :func:`parse_answer` in a worker with a time limit and a memory cap.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from derive import kinds
from derive.core import primitives
from derive.core.algebra import MatrixAlgebra, _is_mat
from derive.grading.readlatex import EvalBlocked, LatexError, _product, convert, no_eval  # noqa: F401 - re-exported
from derive.core.steps import Derivation

MAX_CHARS = 2000        # characters of one LaTeX answer
MAX_TOKENS = 600
MAX_DEPTH = 24          # nesting of brackets, braces and function calls
MAX_DIGITS = 30         # digits of one number
MAX_MATRIX_ELEMENTS = 400
MATRIX_ENVS = {"bmatrix", "pmatrix", "matrix", "Bmatrix"}
LOG_POLICIES = {"natural": None, "10": 10, "2": 2}
LOSS_ALIASES = ("L", "E", "J", "C")


# ----------------------------------------------------------------------------- tokens

_UNICODE = {"−": "-", "–": "-", "·": r"\cdot ", "×": r"\cdot ", "⊙": r"\odot ", "σ": r"\sigma ", "η": r"\eta ",
            "δ": r"\delta ", "′": "'", "ᵀ": "^T", "⊤": r"\top "}
_TOKEN = re.compile(r"""
    (?P<space>\s+|\\[,;:!\ ]|~)
  | (?P<cmd>\\[A-Za-z]+)
  | (?P<escaped>\\[{}|])
  | (?P<num>\d+(?:\.\d+)?|\.\d+)
  | (?P<word>[A-Za-z][A-Za-z0-9]*)
  | (?P<rowsep>\\\\)
  | (?P<op>[-+*/^_(){}\[\]|',=&])
""", re.VERBOSE)
_SPACING = {r"\quad", r"\qquad", r"\displaystyle", r"\textstyle", r"\big", r"\Big", r"\bigg", r"\Bigg",
            r"\bigl", r"\bigr", r"\Bigl", r"\Bigr", r"\biggl", r"\biggr"}
_TEXT_CMDS = {r"\mathrm", r"\text", r"\textrm", r"\operatorname", r"\mathit", r"\textit", r"\mathsf"}
_BOLD_CMDS = {r"\mathbf", r"\boldsymbol", r"\bm", r"\vec", r"\mathbfit"}
_HAT_CMDS = {r"\hat", r"\widehat"}
_TIMES = {r"\cdot", r"\times", r"\ast"}
_HADAMARD = {r"\odot", r"\circ"}
# A transpose as students write it, compared on a superscript's token texts with the braces taken
# out: ^T, ^{T}, ^\top, ^\intercal, ^{\mathsf T}, ^\mathsf{T}, ^{\rm T}, ^{\mathrm T},
# ^{\operatorname{T}}, ^{\text{T}}, ^{\textsf{T}} (docs/checking.md has the table).
_TRANSPOSE_MARKS = {"T", r"\top", r"\intercal"}
_TRANSPOSE_FONTS = {r"\mathsf", r"\mathrm", r"\rm", r"\operatorname", r"\text", r"\textsf", r"\textrm",
                    r"\mathit", r"\sf"}


def _is_transpose(texts: list[str]) -> bool:
    """Do these superscript tokens spell a transpose (one mark, optionally in one font command)?"""
    bare = [t for t in texts if t not in ("{", "}")]
    if len(bare) == 2 and bare[0] in _TRANSPOSE_FONTS:
        bare = bare[1:]
    return len(bare) == 1 and bare[0] in _TRANSPOSE_MARKS
_OPEN = {"(": ")", "[": "]", "{": "}"}
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "iota", "kappa",
          "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "phi", "varphi", "chi", "psi", "omega",
          "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega"}


@dataclass(frozen=True)
class Token:
    kind: str   # cmd | num | word | op
    text: str
    col: int    # 1-based column in the original text


def tokenize(text: str) -> list[Token]:
    """Whitelisted tokens of ``text`` (spacing dropped); anything else is a :class:`LatexError`."""
    for u, r in _UNICODE.items():
        text = text.replace(u, r)
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise LatexError(f"unexpected character {text[pos]!r} at column {pos + 1}")
        kind = m.lastgroup
        if kind == "escaped":
            raise LatexError(f"{m.group()!r} at column {pos + 1} is not allowed")
        if kind == "cmd" and m.group() in _SPACING:
            kind = "space"
        if kind != "space":
            tokens.append(Token(kind, m.group(), pos + 1))
        pos = m.end()
        if len(tokens) > MAX_TOKENS:
            raise LatexError(f"more than {MAX_TOKENS} tokens")
    depth = deepest = 0
    for t in tokens:
        if t.text in ("(", "[", "{"):
            depth += 1
        elif t.text in (")", "]", "}"):
            depth -= 1
        deepest = max(deepest, depth)
        if depth < 0:
            raise LatexError(f"unbalanced {t.text!r} at column {t.col}")
    if deepest > MAX_DEPTH:
        raise LatexError(f"nested deeper than {MAX_DEPTH} levels")
    if depth != 0:
        raise LatexError("unbalanced brackets")
    return tokens


# ----------------------------------------------------------------------------- vocabulary

@dataclass
class Vocabulary:
    """What an answer may name: the derivation's quantities and the registry's functions."""

    values: dict[str, Any]                      # name -> Symbol (scalar) or Matrix (vector/matrix)
    layered: bool                               # quantities by layer: W1, z1, delta1 (Kind.layered)
    loss: str
    log_base: int | None = None                 # None: \log is natural
    activation_params: dict[str, dict] = field(default_factory=dict)
    # the handout's own names: first token -> (token texts, value), longest first (see printed_names)
    printed: dict[str, list[tuple[tuple[str, ...], Any]]] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.values


def vocabulary(derivation: Derivation, log: str = "natural", activation_params: dict | None = None,
               names: Any = None) -> Vocabulary:
    """What an answer to ``derivation`` may name: the canonical names (docs/checking.md) and, given the
    handout's :class:`derive.printing.names.Names`, every quantity and element exactly as the handout prints it."""
    values: dict[str, Any] = {}
    for step in derivation.steps:
        q = step.target
        values[q.name] = q.matrix() if q.shape else q.symbol()
    for alias, target in derivation.aliases:
        if target in values:
            values.setdefault(alias, values[target])
    layered = kinds.layered(derivation)
    loss = "loss" if layered else _graph_loss(derivation)
    if log not in LOG_POLICIES:
        raise ValueError(f"log policy must be one of {', '.join(LOG_POLICIES)}")
    printed = {} if names is None else printed_names(names, values, _copies(derivation))
    return Vocabulary(values, layered, loss, LOG_POLICIES[log], dict(activation_params or {}), printed)


def _copies(derivation: Derivation) -> dict[sp.Symbol, sp.Symbol]:
    """Elements defined as a plain copy of another (the LSTM's [h₀, x₁] is h₀ and x₁): copy -> source."""
    return {sym: expr for step in derivation.steps for sym, expr in step.items() if isinstance(expr, sp.Symbol)}


def printed_names(names: Any, values: dict[str, Any], copies: dict | None = None
                  ) -> dict[str, list[tuple[tuple[str, ...], Any]]]:
    """The handout's LaTeX of each quantity and element, as token texts, with the value it stands for:
    minus the quantity where the notation prints the opposite sign (deck 003's δ = −∂E/∂net).  A
    spelling the handout gives two different values is left out (the canonical reading decides),
    unless one is a plain copy of the other: then it names the source."""
    copies = copies or {}
    table: dict[tuple[str, ...], Any] = {}
    clash: set[tuple[str, ...]] = set()
    for engine, tex in [*names.quantities.items(), *names.elements.items()]:
        value = _value_of(engine, values)
        if value is None:
            continue
        try:
            seq = tuple(t.text for t in tokenize(tex))
        except LatexError:
            continue
        if not seq:
            continue
        if names.sign(engine) < 0:
            value = -value
        if seq in table and table[seq] != value:
            held = table[seq]
            if isinstance(held, sp.Symbol) and copies.get(held) == value:
                table[seq] = value
            elif not (isinstance(value, sp.Symbol) and copies.get(value) == held):
                clash.add(seq)
            continue
        table[seq] = value
    out: dict[str, list[tuple[tuple[str, ...], Any]]] = {}
    for seq, value in table.items():
        if seq not in clash:
            out.setdefault(seq[0], []).append((seq, value))
    for entries in out.values():
        entries.sort(key=lambda e: -len(e[0]))
    return out


def _value_of(engine: str, values: dict[str, Any]) -> Any:
    """The value of a quantity (``z1``) or element (``W2[0,1]``) name; None when it is not declared."""
    if engine in values:
        return values[engine]
    m = re.fullmatch(r"(.+)\[(\d+)(?:,(\d+))?\]", engine)
    if not m or not _is_mat(values.get(m.group(1))):
        return None
    matrix, i = values[m.group(1)], int(m.group(2))
    j = 0 if m.group(3) is None else int(m.group(3))
    return matrix[i, j] if i < matrix.rows and j < matrix.cols else None


def _graph_loss(derivation: Derivation) -> str:
    """The loss whose gradients are ``grad_*``: where the backward pass starts (∂L/∂L = 1); "" if none."""
    seed = next((s for s in derivation.steps if s.name.startswith("grad_") and not s.target.shape
                 and s.exprs == (1,)), None)
    return "" if seed is None else seed.name[len("grad_"):]


# ----------------------------------------------------------------------------- functions

def _function_names() -> dict[str, str]:
    """Spellings of registry functions -> registry name: ``\\sigma``, ``\\tanh``, ``ReLU``, ``relu``..."""
    names: dict[str, str] = {}
    for name, act in primitives.ACTIVATIONS.items():
        names[name] = name
        m = re.fullmatch(r"\\operatorname\{([A-Za-z]+)\}|\\([A-Za-z]+)", act.latex)
        if m:
            names[m.group(1) or m.group(2)] = name
    for name in primitives.FUNCTIONS:
        names.setdefault(name, name)
    return names


FUNCTION_NAMES = _function_names()
_PASS_THROUGH = {"exp", "ln", "log", "sqrt", "abs"}  # left to latex2sympy2's own syntax


def _apply(vocab: Vocabulary, name: str, primes: int, args: list) -> Any:
    """A registry function (or its derivative when ``primes`` = 1) applied element-wise."""
    alg = MatrixAlgebra()
    if name in primitives.FUNCTIONS:
        f = primitives.FUNCTIONS[name]
        if primes:
            raise LatexError(f"{name}' is not understood; write its derivative out")
        if len(args) != f.arity:
            raise LatexError(f"{name} takes {f.arity} argument{'s' if f.arity > 1 else ''}, got {len(args)}")
        if f.arity == 2:
            return alg._elementwise(args[0], args[1], f.build, name)
        return args[0].applyfunc(f.build) if _is_mat(args[0]) else f.build(args[0])
    act = primitives.ACTIVATIONS[name]
    if len(args) != 1:
        raise LatexError(f"{name} takes one argument, got {len(args)}")
    (x,) = args
    params = vocab.activation_params.get(name, {k: sp.Rational(v) for k, v in act.params})
    if act.vector:
        if primes or not (_is_mat(x) and x.cols == 1):
            raise LatexError(f"{name} applies to a vector" + ("; its derivative is a Jacobian" if primes else ""))
        return sp.Matrix(act.define(list(x)))
    if primes > 1:
        raise LatexError("only first derivatives are understood")
    if primes:
        d = primitives.derivative(name, params)
        f = lambda v: d.xreplace({primitives.X: v})
    else:
        f = lambda v: act.define(v, **params)
    return x.applyfunc(f) if _is_mat(x) else f(x)


# ----------------------------------------------------------------------------- the layer in front

class _Normaliser:
    """Token list -> latex2sympy2 text over placeholders; values of placeholders in ``bindings``."""

    def __init__(self, tokens: list[Token], vocab: Vocabulary):
        self.toks, self.i, self.vocab = tokens, 0, vocab
        self.bindings: dict[str, Any] = {}

    # -- helpers
    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> Token:
        t = self.peek()
        if t is None:
            raise LatexError("unexpected end of the expression")
        self.i += 1
        return t

    def expect(self, text: str) -> Token:
        t = self.take()
        if t.text != text:
            raise LatexError(f"expected {text!r} at column {t.col}, got {t.text!r}")
        return t

    def fail(self, t: Token, message: str):
        raise LatexError(f"{message} at column {t.col}")

    def bind(self, value: Any) -> str:
        key = f"v_{{{len(self.bindings)}}}"
        self.bindings[key] = value
        return "{" + key + "}"

    def group_tokens(self) -> list[Token]:
        """The tokens of a ``{...}`` group or one single token (a TeX argument)."""
        t = self.take()
        if t.text != "{":
            return [t]
        start, depth = self.i, 1
        while depth:
            u = self.take()
            depth += {"{": 1, "}": -1}.get(u.text, 0)
        return self.toks[start:self.i - 1]

    def sub(self, tokens: list[Token]) -> "_Normaliser":
        n = _Normaliser(tokens, self.vocab)
        n.bindings = self.bindings
        return n

    def value_of(self, tokens: list[Token], what: str) -> Any:
        if not tokens:
            raise LatexError(f"empty {what}")
        n = self.sub(tokens)
        text = n.sequence(None)
        return convert(text, self.bindings)

    # -- the main loop
    def sequence(self, stop: str | None) -> str:
        out: list[str] = []
        while True:
            t = self.peek()
            if t is None:
                if stop is not None:
                    raise LatexError(f"missing {stop!r}")
                return " ".join(out)
            if t.text == stop or (stop is not None and t.text == r"\right"):
                return " ".join(out)
            out.append(self.item())

    def item(self) -> str:
        t = self.peek()
        printed = self.printed_name()
        if printed is not None:
            return printed
        if t.kind == "num":
            self.take()
            if len(t.text.replace(".", "")) > MAX_DIGITS:
                self.fail(t, f"a number with more than {MAX_DIGITS} digits")
            nxt = self.peek()
            if nxt is not None and nxt.kind == "word" and re.fullmatch(r"[eE]\d*", nxt.text) and \
                    not self.vocab.has(nxt.text) and not self.vocab.printed.get(nxt.text):   # 2 e: two times e
                self.fail(nxt, "scientific notation: write 1.5 \\times 10^{-3}")
            return t.text
        if t.text in (r"\frac", r"\dfrac", r"\tfrac"):
            return self.fraction()
        if t.text == r"\begin":
            return self.bind(self.matrix())
        if t.text == r"\sqrt":
            self.take()
            root = ""
            if self.peek() is not None and self.peek().text == "[":
                self.take()
                root = "[" + self.sequence("]") + "]"
                self.expect("]")
            return r"\sqrt" + root + "{" + self.sub(self.group_tokens()).sequence(None) + "}"
        if t.text in (r"\exp", r"\ln"):
            self.take()
            return t.text + " "
        if t.text == r"\log":
            self.take()
            nxt = self.peek()
            if nxt is not None and nxt.text == "_":
                self.take()
                return r"\log_{" + self.sub(self.group_tokens()).sequence(None) + "} "
            base = self.vocab.log_base
            return r"\ln " if base is None else rf"\log_{{{base}}} "
        if t.kind == "word" or t.text in _TEXT_CMDS | _BOLD_CMDS | _HAT_CMDS or t.text == r"\mathcal" or \
                (t.kind == "cmd" and t.text[1:] in _GREEK) or (t.kind == "cmd" and t.text[1:] in FUNCTION_NAMES):
            return self.name_or_call()
        if t.text == r"\pi":
            self.take()
            return r"\pi "
        if t.text in _TIMES:
            self.take()
            return r"\cdot "
        if t.text in _HADAMARD:
            self.take()
            return r"\mod "
        if t.text == r"\div":
            self.take()
            return "/"
        if t.text in "+-*/":
            self.take()
            return t.text
        if t.text == "^":
            self.take()
            return "^{" + self.sub(self.group_tokens()).sequence(None) + "}"
        if t.text in ("(", "[", r"\left", r"\lvert", "|"):
            return self.bracket()
        if t.text == "{":
            self.take()
            start = self.i
            inner = self.sequence("}")
            end = self.i
            self.expect("}")
            if self.transpose_follows():
                return self.bind(_transpose(self.value_of(self.toks[start:end], "braces")))
            return "{" + inner + "}"
        if t.text == "_":
            self.fail(t, "a subscript must follow a name")
        if t.text == "'":
            self.fail(t, "a prime is only understood after a function name, as in \\sigma'(z)")
        if t.text == ",":
            self.fail(t, "a comma is only allowed between function arguments (write decimals with a point)")
        if t.text == "=":
            self.fail(t, "write the expression only, not an equation")
        if t.text == r"\partial":
            self.fail(t, "\\partial is understood only in \\frac{\\partial L}{\\partial w} naming a gradient")
        self.fail(t, f"{t.text!r} is not understood")

    def printed_name(self) -> str | None:
        """A quantity or element written exactly as the handout prints it (longest spelling first);
        None when none is, or when a subscript or a layer superscript follows (then it is another name)."""
        t = self.peek()
        for seq, value in self.vocab.printed.get(t.text, ()):
            end = self.i + len(seq)
            if tuple(u.text for u in self.toks[self.i:end]) != seq:
                continue
            after = [u.text for u in self.toks[end:end + 3]]
            if after[:1] in (["_"], ["'"]) or after == ["^", "{", "("]:
                continue
            self.i = end
            return self.bind(_transpose(value) if self.transpose_follows() else value)
        return None

    # -- matrices written out
    def matrix(self) -> sp.Matrix:
        """``\\begin{bmatrix} a & b \\\\ c & d \\end{bmatrix}`` (or pmatrix, matrix) -> a Matrix of its cells."""
        begin = self.take()
        env = "".join(u.text for u in self.group_tokens())
        if env not in MATRIX_ENVS:
            self.fail(begin, f"environment {env!r} is not understood (use {', '.join(sorted(MATRIX_ENVS))})")
        rows, cell, cells = [], [], []
        while True:
            t = self.peek()
            if t is None:
                raise LatexError(f"missing \\end{{{env}}}")
            if t.text == r"\begin":
                self.fail(t, "a matrix inside a matrix is not understood")
            if t.text in ("&", "\\\\", r"\end"):
                self.take()
                if cell:
                    cells.append(cell)
                elif t.text == "&" or cells:
                    self.fail(t, "empty matrix element")
                cell = []
                if t.text != "&" and cells:
                    rows.append([self.value_of(c, "matrix element") for c in cells])
                    cells = []
                if t.text == r"\end":
                    end = "".join(u.text for u in self.group_tokens())
                    if end != env:
                        self.fail(t, f"\\begin{{{env}}} ended by \\end{{{end}}}")
                    break
                continue
            cell.append(self.take())
        if not rows or any(len(r) != len(rows[0]) for r in rows):
            self.fail(begin, "every row of a matrix needs the same number of elements")
        if len(rows) * len(rows[0]) > MAX_MATRIX_ELEMENTS:
            self.fail(begin, f"a matrix of more than {MAX_MATRIX_ELEMENTS} elements")
        if any(_is_mat(v) for r in rows for v in r):
            self.fail(begin, "a matrix element must be a number or a scalar expression")
        matrix = sp.ImmutableMatrix(rows)
        return _transpose(matrix) if self.transpose_follows() else matrix

    # -- brackets and transposes
    def bracket(self) -> str:
        t = self.take()
        left = t.text
        if left == r"\left":
            left = self.take().text
            if left not in ("(", "[", "|", r"\lvert"):
                self.fail(t, f"\\left{left} is not understood")
        if left in ("|", r"\lvert"):
            inner = self.abs_inner()
            return "|" + inner + "|"
        close = _OPEN[left]
        start = self.i
        inner = self.sequence(close)
        end = self.i
        u = self.take()
        if u.text == r"\right":
            u = self.take()
        if u.text != close:
            self.fail(u, f"expected {close!r}")
        if self.transpose_follows():
            value = self.value_of(self.toks[start:end], "brackets")
            return self.bind(_transpose(value))
        return "(" + inner + ")"

    def abs_inner(self) -> str:
        out = []
        while True:
            t = self.peek()
            if t is None:
                raise LatexError("missing closing '|'")
            if t.text in ("|", r"\rvert"):
                self.take()
                return " ".join(out)
            if t.text == r"\right":
                self.take()
                continue
            out.append(self.item())

    def transpose_follows(self) -> bool:
        """Consume ``^T``, ``^{\\top}``, ``^{\\mathsf T}`` and friends when they follow; True if one did."""
        t, u = self.peek(), self.peek(1)
        if t is None or t.text != "^" or u is None:
            return False
        if u.text == "{":
            j, depth, inner = self.i + 2, 1, []
            while j < len(self.toks):
                depth += {"{": 1, "}": -1}.get(self.toks[j].text, 0)
                if depth == 0:
                    break
                inner.append(self.toks[j].text)
                j += 1
            if _is_transpose(inner) and not (inner == ["T"] and self.vocab.has("T")):
                self.i = j + 1
                return True
            return False
        if u.text in _TRANSPOSE_MARKS and not (u.text == "T" and self.vocab.has("T")):
            self.i += 2
            return True
        if u.text in _TRANSPOSE_FONTS:      # ^\mathsf{T}, ^\mathrm T
            nxt = [x.text for x in self.toks[self.i + 2:self.i + 5]]
            if nxt == ["{", "T", "}"]:
                self.i += 5
                return True
            if nxt[:1] == ["T"]:
                self.i += 3
                return True
        return False

    # -- fractions and gradient names
    def fraction(self) -> str:
        self.take()
        upper = self.group_tokens()
        lower = self.group_tokens()
        if upper and upper[0].text == r"\partial":
            return self.bind(self.gradient(upper, lower))
        return r"\frac{" + self.sub(upper).sequence(None) + "}{" + self.sub(lower).sequence(None) + "}"

    def gradient(self, upper: list[Token], lower: list[Token]) -> Any:
        if not lower or lower[0].text != r"\partial" or len(upper) < 2:
            raise LatexError(f"\\frac{{\\partial …}}{{\\partial …}} expected at column {upper[0].col}")
        if not self.vocab.loss:
            raise LatexError(f"this problem has no loss to differentiate (column {upper[0].col})")
        num = self.sub(upper[1:])
        ident = num.identifier()
        if num.peek() is not None or not self._is_loss(ident):
            raise LatexError(f"only derivatives of the loss name a quantity here (∂{self.vocab.loss}/∂…), "
                             f"at column {upper[0].col}")
        den = self.sub(lower[1:])
        ident = den.identifier()
        if den.peek() is not None:
            den.fail(den.peek(), "one name expected under \\partial")
        name, index = self.resolve(ident)
        grad = self._gradient_name(name)
        if grad is None or not self.vocab.has(grad):
            raise LatexError(f"∂{self.vocab.loss}/∂{name} is not a quantity of this problem")
        return _element(self.vocab.values[grad], index, grad) if index else self.vocab.values[grad]

    def _is_loss(self, ident: "Ident") -> bool:
        found = _candidates(ident, self.vocab)
        return len(set(found)) == 1 and found[0] == (self.vocab.loss, ())

    def _gradient_name(self, name: str) -> str | None:
        if self.vocab.layered:
            m = re.fullmatch(r"z(\d+)", name)
            if m:
                return f"delta{m.group(1)}"
            if name == "y" or (self.vocab.has("y") and self.vocab.values.get(name) is self.vocab.values["y"]):
                return "grad_y"
        return "grad_" + name

    # -- names, functions
    def name_or_call(self) -> str:
        t = self.peek()
        fname = self.function_name()
        if fname is not None:
            return self.call(t, fname)
        ident = self.identifier()
        return self.bind(self.identifier_value(ident))

    def function_name(self) -> str | None:
        """The registry name when the next tokens spell a function (and not a declared name)."""
        t = self.peek()
        if t.kind == "cmd" and t.text[1:] in FUNCTION_NAMES and not self.vocab.has(t.text[1:]):
            name = FUNCTION_NAMES[t.text[1:]]
            if name in _PASS_THROUGH:
                return None
            return name
        if t.text in _TEXT_CMDS:
            u, v, w = self.peek(1), self.peek(2), self.peek(3)
            if u is not None and u.text == "{" and v is not None and v.kind == "word" and w is not None \
                    and w.text == "}" and v.text in FUNCTION_NAMES and not self.vocab.has(v.text):
                return FUNCTION_NAMES[v.text]
        if t.kind == "word" and t.text in FUNCTION_NAMES and not self.vocab.has(t.text) and len(t.text) > 1:
            return FUNCTION_NAMES[t.text]
        return None

    def call(self, t: Token, fname: str) -> str:
        first = self.take()
        if first.text in _TEXT_CMDS:
            self.group_tokens()
        primes, power = 0, None
        while self.peek() is not None and self.peek().text in ("'", "^"):
            if self.peek().text == "'":
                self.take()
                primes += 1
                continue
            u = self.peek(1)
            if u is not None and u.text == r"\prime":
                self.i += 2
                primes += 1
            elif u is not None and u.text == "{" and self.peek(2) is not None and self.peek(2).text == r"\prime" \
                    and self.peek(3) is not None and self.peek(3).text == "}":
                self.i += 4
                primes += 1
            elif power is None and self._function_power() is not None:
                power = self._function_power(consume=True)
            else:
                self.fail(u or t, f"only a whole power such as {fname}^2(z) is understood after {fname}")
        if self.peek() is not None and self.peek().text == "{":
            self.unbrace_argument()
        opener = self.peek()
        if opener is None or opener.text not in ("(", r"\left"):
            self.fail(opener or t, f"{first.text} needs its argument in parentheses")
        self.take()
        if opener.text == r"\left":
            self.expect("(")
        start = self.i
        depth = 0
        args, arg_start = [], start
        while True:
            u = self.take()
            if u.text in ("(", "[", "{"):
                depth += 1
            elif u.text in (")", "]", "}") and depth:
                depth -= 1
            elif u.text == r"\right" and depth == 0:
                continue
            elif u.text == ")" and depth == 0:
                args.append(self.toks[arg_start:self.i - 1])
                break
            elif u.text == "," and depth == 0:
                args.append(self.toks[arg_start:self.i - 1])
                arg_start = self.i
        cleaned = [[a for a in arg if a.text != r"\right"] for arg in args]
        values = [self.value_of(a, f"argument of {fname}") for a in cleaned]
        value = _apply(self.vocab, fname, primes, values)
        if power is not None:       # \tanh^2(z) is (tanh z)^2, element by element
            value = value.applyfunc(lambda v: v ** power) if _is_mat(value) else value ** power
        out = self.bind(value)
        if self.transpose_follows():
            return self.bind(_transpose(value))
        return out

    def unbrace_argument(self) -> None:
        """``\\tanh{\\left(z\\right)}`` (SymPy's and so the handout's printing) reads as ``\\tanh\\left(z\\right)``:
        the braces go when they hold exactly one parenthesised group."""
        start, j, depth = self.i, self.i, 0
        while j < len(self.toks):
            depth += {"{": 1, "}": -1}.get(self.toks[j].text, 0)
            if depth == 0:
                break
            j += 1
        inner = [u.text for u in self.toks[start + 1:j] if u.text not in (r"\left", r"\right")]
        if not inner or inner[0] != "(":
            return
        depth = 0
        for k, text in enumerate(inner):
            depth += {"(": 1, ")": -1}.get(text, 0)
            if depth == 0:
                break
        if k == len(inner) - 1:
            del self.toks[j], self.toks[start]

    def _function_power(self, consume: bool = False) -> int | None:
        """A whole power 2…9 written on a function name, ``\\tanh^2`` or ``\\sigma^{2}``; None if not one."""
        texts = [x.text for x in self.toks[self.i + 1:self.i + 4]]
        if texts[:1] and re.fullmatch(r"[2-9]", texts[0]):
            n, width = int(texts[0]), 2
        elif len(texts) == 3 and texts[0] == "{" and re.fullmatch(r"[2-9]", texts[1]) and texts[2] == "}":
            n, width = int(texts[1]), 4
        else:
            return None
        if consume:
            self.i += width
        return n

    def identifier(self) -> "Ident":
        t = self.take()
        kind = "letters"
        if t.kind == "word":
            base = t.text
        elif t.text in _TEXT_CMDS:
            inner = self.group_tokens()
            if not inner or any(u.kind not in ("word", "num") and u.text != "_" for u in inner):
                self.fail(t, f"{t.text}{{…}} must hold a plain name")
            base, kind = "".join(u.text for u in inner), "text"
        elif t.text in _BOLD_CMDS | _HAT_CMDS or t.text == r"\mathcal":
            inner = self.sub(self.group_tokens())
            ident = inner.identifier()
            if inner.peek() is not None:
                inner.fail(inner.peek(), f"{t.text}{{…}} must hold one name")
            if t.text in _HAT_CMDS:
                ident.hat = True
            if t.text == r"\mathcal":
                ident.base, ident.kind = "cal:" + ident.base, "text"
            base, kind = ident.base, ident.kind
            result = ident
            result.col = t.col
            self.scripts(result)
            return result
        elif t.kind == "cmd" and t.text[1:] in _GREEK:
            base, kind = t.text[1:], "greek"
        elif t.kind == "cmd" and t.text[1:] in FUNCTION_NAMES:
            self.fail(t, f"{t.text} needs its argument in parentheses")
        else:
            self.fail(t, f"a name expected, got {t.text!r}")
        ident = Ident(base, kind, t.col)
        self.scripts(ident)
        return ident

    def scripts(self, ident: "Ident") -> None:
        while self.peek() is not None and self.peek().text in ("_", "^"):
            t = self.peek()
            if t.text == "_":
                if ident.sub is not None:
                    self.fail(t, "two subscripts")
                self.take()
                toks = self.group_tokens()
                if not toks or any(u.kind not in ("word", "num") and u.text not in ("_", ",", "{", "}") for u in toks):
                    self.fail(t, "a subscript must be an index or a name")
                ident.sub = "".join(u.text for u in toks)
                continue
            # a superscript: a layer (l), a transpose, or a power that is not ours
            u = self.peek(1)
            if u is None:
                self.fail(t, "superscript expected")
            if u.text == "{" and self.peek(2) is not None and self.peek(2).text == "(":
                self.take()
                toks = self.group_tokens()
                texts = [x.text for x in toks]
                m = re.fullmatch(r"\((\d{1,2})\)", "".join(texts[:3]))
                rest = texts[3:]
                if not m or ident.layer is not None or (rest and not _is_transpose(rest)):
                    self.fail(t, "a layer superscript is written ^{(2)} or ^{(2)T}")
                ident.layer = int(m.group(1))
                ident.transpose = ident.transpose or bool(rest)
                continue
            if self.transpose_follows():
                ident.transpose = True
                continue
            return

    def resolve(self, ident: "Ident") -> tuple[str, tuple[int, ...]]:
        """The declared quantity (and 0-based element index) a name refers to, or a LatexError."""
        found = _candidates(ident, self.vocab)
        if not found:
            shown = ident.display()
            hint = difflib.get_close_matches(ident.base + (ident.sub or "").replace("_", ""), list(self.vocab.values), n=2)
            extra = f"; did you mean {' or '.join(hint)}?" if hint else ""
            raise LatexError(f"unknown name {shown} at column {ident.col}{extra}")
        if len(set(found)) > 1:
            raise LatexError(f"{ident.display()} at column {ident.col} is ambiguous: "
                             f"{' or '.join(n + _show_index(i) for n, i in dict.fromkeys(found))}")
        return found[0]

    def identifier_value(self, ident: "Ident") -> Any:
        if ident.kind == "letters" and ident.base == "e" and ident.sub is None and ident.layer is None \
                and not self.vocab.has("e"):
            if ident.transpose:
                raise LatexError(f"e^T at column {ident.col}?")
            return sp.E
        try:
            name, index = self.resolve(ident)
        except LatexError:
            split = self.split_letters(ident)
            if split is None:
                raise
            return split
        if ident.kind == "letters" and len(ident.base) > 1 and ident.base.isalpha() and \
                self.split_letters(ident, quiet=True) is not None:
            raise LatexError(f"{ident.base} at column {ident.col} is ambiguous: the name {name} or a product of "
                             f"letters; write \\mathrm{{{ident.base}}} or put \\cdot between the letters")
        value = self.vocab.values[name]
        if index:
            value = _element(value, index, name)
        return _transpose(value) if ident.transpose else value

    def split_letters(self, ident: "Ident", quiet: bool = False) -> Any:
        """``xy`` as the product x·y when every letter is declared (the scripts go to the last one)."""
        if ident.kind != "letters" or len(ident.base) < 2 or not ident.base.isalpha():
            return None
        parts = [Ident(c, "letters", ident.col) for c in ident.base[:-1]]
        last = Ident(ident.base[-1], "letters", ident.col, ident.sub, ident.layer, ident.transpose, ident.hat)
        values = []
        for p in parts + [last]:
            if p.base == "e" and not self.vocab.has("e") and p is not last:
                values.append(sp.E)
                continue
            found = _candidates(p, self.vocab)
            if len(set(found)) != 1:
                return None
            name, index = found[0]
            v = self.vocab.values[name]
            v = _element(v, index, name) if index else v
            values.append(_transpose(v) if p.transpose else v)
        if quiet:
            return values
        alg, out = MatrixAlgebra(), values[0]
        for v in values[1:]:
            out = _product(alg, out, v)
        return out


@dataclass
class Ident:
    base: str
    kind: str                   # letters | greek | text
    col: int
    sub: str | None = None
    layer: int | None = None
    transpose: bool = False
    hat: bool = False

    def display(self) -> str:
        s = ("\\hat " if self.hat else "") + self.base.replace("cal:", "\\mathcal ")
        if self.layer is not None:
            s += f"^({self.layer})"
        if self.sub is not None:
            s += f"_{{{self.sub}}}"
        return repr(s)


def _show_index(index: tuple[int, ...]) -> str:
    return f"[{','.join(map(str, index))}]" if index else ""


_LAYER_BASES = {"a": "h", "delta": "delta", "W": "W", "b": "b", "z": "z", "h": "h", "x": "x", "gprime": "gprime"}


def _candidates(ident: Ident, vocab: Vocabulary) -> list[tuple[str, tuple[int, ...]]]:
    """Every (quantity, index) the name can denote; the caller wants exactly one."""
    bases = [ident.base]
    if ident.kind == "greek" and ident.base == "eta" and not vocab.has("eta"):
        bases = ["learning_rate"]
    if ident.hat:
        bases = [ident.base + "hat", ident.base + "_hat"]
        if ident.base == "y" and vocab.layered:
            bases.append("y")
    if ident.base in (*LOSS_ALIASES, "cal:L", "cal:E") and not vocab.has(ident.base.replace("cal:", "")) \
            and ident.sub is None and ident.layer is None:
        return [(vocab.loss, ())]
    bases = [b.replace("cal:", "") for b in bases]
    sub = ident.sub
    compact = None if sub is None else sub.replace("{", "").replace("}", "").replace("_", "")
    found: list[tuple[str, tuple[int, ...]]] = []
    for b in bases:
        if ident.layer is not None:
            layered = _LAYER_BASES.get(b, b)
            name = "x" if (layered in ("h", "x") and ident.layer == 0) else f"{layered}{ident.layer}"
            if vocab.has(name):
                index = _index(compact, vocab.values[name], name) if sub is not None else ()
                found.append((name, index))
            continue
        if sub is None:
            if vocab.has(b):
                found.append(((b), ()))
            continue
        for name in dict.fromkeys([b + compact, b + "_" + compact, b + "_" + sub.replace("{", "").replace("}", "")]):
            if vocab.has(name):
                found.append(((name), ()))
        if vocab.has(b) and _is_mat(vocab.values[b]) and re.fullmatch(r"[\d,]+", compact):
            found.append(((b), _index(compact, vocab.values[b], b)))
        if not found and vocab.layered and re.fullmatch(r"\d{1,2}", compact) and \
                vocab.has(f"{_LAYER_BASES.get(b, b)}{compact}"):
            found.append(((f"{_LAYER_BASES.get(b, b)}{compact}"), ()))
    return found


def _index(text: str, value: Any, name: str) -> tuple[int, ...]:
    """A 1-based printed index (``2``, ``12``, ``1,2``) -> 0-based, checked against the shape."""
    if not _is_mat(value):
        raise LatexError(f"{name} is a scalar; it has no element {text}")
    rows, cols = value.shape
    parts = text.split(",") if "," in text else ([text[0], text[1:]] if cols > 1 and len(text) == 2 else [text])
    if not all(p.isdigit() for p in parts):
        raise LatexError(f"index {text!r} of {name} must be numbers")
    idx = tuple(int(p) - 1 for p in parts)
    if cols == 1 and len(idx) == 1:
        if not 0 <= idx[0] < rows:
            raise LatexError(f"{name} has {rows} elements; index {text} is out of range")
        return idx
    if len(idx) != 2 or not (0 <= idx[0] < rows and 0 <= idx[1] < cols):
        raise LatexError(f"{name} is {rows}x{cols}; index {text} is out of range (write _{{i,j}} from 1)")
    return idx


def _element(value: Any, index: tuple[int, ...], name: str) -> Any:
    if len(index) == 1:
        return value[index[0], 0]
    return value[index[0], index[1]]


def _transpose(value: Any) -> Any:
    return value.T if _is_mat(value) else value


# ----------------------------------------------------------------------------- entry point

def strip_dollars(text: str) -> str:
    """The LaTeX between ``$…$`` (or ``$$…$$``, ``\\(…\\)``)."""
    s = text.strip()
    for left, right in (("$$", "$$"), ("$", "$"), (r"\(", r"\)")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            inner = s[len(left):len(s) - len(right)]
            if "$" in inner:
                raise LatexError("one expression between $…$ expected")
            return inner
    raise LatexError("a symbolic answer is written between $…$")


def parse_answer(text: str, vocab: Vocabulary) -> Any:
    """A LaTeX answer (with or without its ``$…$``) -> a SymPy expression, or a Matrix for a vector/matrix."""
    if not isinstance(text, str):
        raise LatexError("expected text")
    if len(text) > MAX_CHARS:
        raise LatexError(f"answer longer than {MAX_CHARS} characters")
    if "\x00" in text:
        raise LatexError("NUL character in the answer")
    inner = strip_dollars(text) if "$" in text or text.strip().startswith(r"\(") else text
    tokens = tokenize(inner)
    if not tokens:
        raise LatexError("empty expression")
    n = _Normaliser(tokens, vocab)
    out = n.sequence(None)
    return convert(out, n.bindings)
