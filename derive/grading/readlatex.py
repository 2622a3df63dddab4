"""latex2sympy2, guarded: the layer *behind* the normalisation of :mod:`derive.grading.parse`.

:func:`convert` receives only text the normaliser wrote (placeholders ``{v_{k}}``, numbers and a
handful of commands; an assertion checks that alphabet), calls latex2sympy2 with its module
globals saved and restored and with ``eval``, ``exec`` and every ``parse_expr`` made to raise
(:func:`no_eval`), then walks the returned tree allowing only arithmetic node types and rebuilds
the value with shape-checked matrix algebra, bounding the size of every number it makes.
"""
from __future__ import annotations

import builtins
import contextlib
import contextvars
import re
from typing import Any, Callable

import sympy as sp

from derive.core.algebra import MatrixAlgebra, _is_mat

MAX_EXPONENT = 64       # |p| and q of a rational exponent p/q
MAX_BITS = 4096         # bits of any exact number built while parsing


class LatexError(ValueError):
    """The answer is not a well-formed expression of this problem; the message says where and why."""


class Repairs:
    """While active (:func:`repairing`), a matrix product whose shapes do not fit is read as one
    of its fixes instead of raising: ``Aᵀ B``, ``A Bᵀ`` or ``A ⊙ B``, the k-th misfit taking fix
    ``choices[k]`` (default the first).  ``made`` lists (fix, A, B) per misfit, ``options`` how
    many fixes each had: the grader names a fix that turns the answer into the right formula as
    the student's slip (W where Wᵀ is needed), never as a reading of what was meant."""

    def __init__(self, choices: tuple[int, ...] = ()):
        self.choices = tuple(choices)
        self.made: list[tuple[str, Any, Any]] = []
        self.options: list[int] = []


_REPAIRS: contextvars.ContextVar = contextvars.ContextVar("nnderive_repairs", default=None)


@contextlib.contextmanager
def repairing(repairs: Repairs):
    token = _REPAIRS.set(repairs)
    try:
        yield repairs
    finally:
        _REPAIRS.reset(token)


def _fixes(a: Any, b: Any) -> list[tuple[str, Any]]:
    out = []
    if a.rows == b.rows:
        out.append(("transpose_left", lambda: a.T * b))
    if a.cols == b.cols:
        out.append(("transpose_right", lambda: a * b.T))
    if a.shape == b.shape:
        out.append(("hadamard", lambda: sp.Matrix(a.rows, a.cols, [x * y for x, y in zip(a, b)])))
    return out


def _product(alg: MatrixAlgebra, a: Any, b: Any) -> Any:
    """Juxtaposition, \\cdot, \\times: the matrix product of two matrices, else scaling."""
    if _is_mat(a) and _is_mat(b):
        repairs = _REPAIRS.get()
        if a.cols != b.rows and repairs is not None:
            fixes = _fixes(a, b)
            k = len(repairs.options)
            choice = repairs.choices[k] if k < len(repairs.choices) else 0
            repairs.options.append(len(fixes))
            if choice < len(fixes):
                repairs.made.append((fixes[choice][0], a, b))
                return fixes[choice][1]()
        if a.cols != b.rows:
            raise LatexError(f"a product of shapes {a.rows}x{a.cols} and {b.rows}x{b.cols} does not fit"
                             + ("; for an element-wise product write \\odot" if a.shape == b.shape else ""))
        return a * b
    if _is_mat(a):
        return a.applyfunc(lambda x: x * b)
    if _is_mat(b):
        return b.applyfunc(lambda y: a * y)
    return a * b


# ----------------------------------------------------------------------------- latex2sympy2, guarded

class EvalBlocked(RuntimeError):
    """Something tried to evaluate text as code while an answer was being parsed."""


def _blocked(name: str):
    def refuse(*args, **kwargs):
        raise EvalBlocked(f"{name} called while parsing an answer")
    return refuse


@contextlib.contextmanager
def no_eval():
    """Make eval, exec, sympy's parse_expr (so sympify of strings) and latex2sympy2's parse_expr raise."""
    import latex2sympy2
    import sympy.parsing.sympy_parser as spp
    saved = (builtins.eval, builtins.exec, spp.parse_expr, latex2sympy2.parse_expr)
    builtins.eval, builtins.exec = _blocked("eval"), _blocked("exec")
    spp.parse_expr = latex2sympy2.parse_expr = _blocked("parse_expr")
    try:
        yield
    finally:
        builtins.eval, builtins.exec, spp.parse_expr, latex2sympy2.parse_expr = saved


_L2S_GLOBALS = ("variances", "var", "VARIABLE_VALUES", "is_real", "frac_type")


@contextlib.contextmanager
def _latex2sympy2_state():
    """latex2sympy2 keeps module-global state; keep it exactly as it was around each call."""
    import latex2sympy2
    saved = {k: getattr(latex2sympy2, k) for k in _L2S_GLOBALS}
    copies = {k: (dict(v) if isinstance(v, dict) else v) for k, v in saved.items()}
    latex2sympy2.VARIABLE_VALUES = {}
    try:
        yield latex2sympy2
    finally:
        for k, v in copies.items():
            setattr(latex2sympy2, k, v)


_LATEX_OUT = re.compile(r"(\{v_\{\d+\}\}|\d+(?:\.\d+)?|\.\d+|\\(?:frac|sqrt|exp|ln|log|cdot|mod|pi)(?![A-Za-z])|"
                        r"[-+*/^_(){}\[\]| ]|e)+")


def convert(text: str, bindings: dict[str, Any]) -> Any:
    """latex2sympy2 on normalised text, then the tree walked back into values."""
    if not _LATEX_OUT.fullmatch(text or " "):
        raise AssertionError(f"normaliser produced text outside its alphabet: {text!r}")
    if not text.strip():
        raise LatexError("empty expression")
    with no_eval(), _latex2sympy2_state() as l2s:
        try:
            tree = l2s.latex2sympy(text)
        except (EvalBlocked, RecursionError, MemoryError):
            raise
        except Exception as err:  # noqa: BLE001 - latex2sympy2 raises bare Exception on syntax errors
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise LatexError(f"cannot parse: {first}") from None
    return _Walker(bindings).walk(tree)


class _Walker:
    """The layer behind: only whitelisted node types, rebuilt with shape-checked algebra."""

    def __init__(self, bindings: dict[str, Any]):
        self.values = {}
        for key, v in bindings.items():
            n = key[len("v_{"):-1]
            self.values[f"v_{n}" if len(n) == 1 else f"v_{{{n}}}"] = v
        self.alg = MatrixAlgebra()

    def walk(self, e: Any) -> Any:
        if isinstance(e, (list, tuple, dict)) or not isinstance(e, sp.Basic):
            raise LatexError("a single expression expected")
        if e.is_Symbol:
            if e.name not in self.values:
                raise LatexError(f"unexpected name {e.name!r}")
            return self.values[e.name]
        if e.is_Rational:
            return _bounded(e)
        if e is sp.E or e is sp.pi:
            return e
        if isinstance(e, sp.Add):
            out = self.walk(e.args[0])
            for a in e.args[1:]:
                out = self.alg.add(out, self.walk(a))
            return out
        if isinstance(e, sp.Mul):
            return self.product(e.args)
        if isinstance(e, sp.Pow):
            return self.power(e.args[0], e.args[1])
        if isinstance(e, sp.exp):
            return self.each(_exp, self.walk(e.args[0]))
        if isinstance(e, sp.log):
            return self.log(e)
        if isinstance(e, sp.Abs):
            return self.each(sp.Abs, self.walk(e.args[0]))
        if isinstance(e, sp.Mod):
            return self.hadamard(self.walk(e.args[0]), self.walk(e.args[1]))
        raise LatexError(f"{type(e).__name__} is not allowed in an answer")

    def product(self, args) -> Any:
        out = None
        for a in args:
            if isinstance(a, sp.Pow) and a.args[1] == -1 and not a.args[0].is_Number:
                divisor = self.walk(a.args[0])
                if _is_mat(divisor):
                    raise LatexError("division by a vector or matrix")
                out = sp.Integer(1) / divisor if out is None else self.alg.div(out, divisor)
                continue
            v = self.walk(a)
            out = v if out is None else _product(self.alg, out, v)
            _check_size(out)
        return out

    def power(self, base, exponent) -> Any:
        e = self.walk(exponent)
        b = self.walk(base)
        if _is_mat(e):
            raise LatexError("an exponent must be a scalar (a transpose is written ^T, ^{\\top} or ^{\\mathsf{T}})")
        if _is_mat(b):
            raise LatexError("powers of vectors and matrices are not understood; write \\odot")
        if b is sp.E:
            return _exp(e)
        if not (isinstance(e, sp.Rational) and abs(e.p) <= MAX_EXPONENT and e.q <= MAX_EXPONENT):
            if isinstance(e, sp.Expr) and e.is_number:
                raise LatexError(f"exponent too large or not rational (|p|, q ≤ {MAX_EXPONENT})")
            raise LatexError("variable exponents are not understood")
        if b == 0 and e < 0:
            raise LatexError("division by zero")
        return _bounded(b ** e)

    def log(self, e) -> Any:
        arg = self.walk(e.args[0])
        base = e.args[1] if len(e.args) > 1 else sp.E
        base = self.walk(base) if base is not sp.E else base
        if _is_mat(base) or not (base is sp.E or (isinstance(base, sp.Rational) and base > 1 and base.q == 1
                                                  and base <= 10**6)):
            raise LatexError("a logarithm's base must be e or a whole number above 1")
        f = (lambda x: sp.log(x)) if base is sp.E else (lambda x: sp.log(x) / sp.log(base))
        return self.each(f, arg)

    def each(self, f: Callable, v: Any) -> Any:
        return v.applyfunc(f) if _is_mat(v) else f(v)

    def hadamard(self, a: Any, b: Any) -> Any:
        if _is_mat(a) and _is_mat(b) and a.shape != b.shape:
            raise LatexError(f"\\odot needs equal shapes, got {a.rows}x{a.cols} and {b.rows}x{b.cols}")
        return self.alg.mul(a, b)


MAX_EXP_ARG = 1000


def _exp(x: Any) -> Any:
    """e^x, refusing a numeric x so large that the number itself could not be handled."""
    if isinstance(x, sp.Expr) and x.is_number:
        try:
            size = abs(complex(sp.N(x, 15)))
        except (OverflowError, ValueError, TypeError):
            size = float("inf")
        if not size <= MAX_EXP_ARG:
            raise LatexError(f"e to a power larger than {MAX_EXP_ARG} is not a number this checker handles")
    return sp.exp(x)


def _bounded(v: Any) -> Any:
    if isinstance(v, sp.Rational) and max(int(v.p).bit_length(), int(v.q).bit_length()) > MAX_BITS:
        raise LatexError("a number in the answer is too large")
    return v


def _check_size(v: Any) -> None:
    if not _is_mat(v):
        _bounded(v)
