"""SymPy's Python code printer, adapted to kernels: every symbol by its generated identifier.

Identifiers come from a mapping the code generator builds; a symbol without one is an error, so
no name from a spec file can reach the generated source by accident.  Matrix products print as
``np.dot`` (Numba calls BLAS for them), transposes as ``.T``.
"""
from __future__ import annotations

from typing import Mapping

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.pycode import PythonCodePrinter


class KernelPrinter(PythonCodePrinter):
    """``PythonCodePrinter`` with symbols renamed by ``names`` and calls of generated helpers."""

    def __init__(self, names: Mapping[sp.Basic, str], helpers: frozenset[str] = frozenset()):
        super().__init__({"standard": "python3", "fully_qualified_modules": True})
        self.names = dict(names)
        self.helpers = helpers

    def _print_Symbol(self, expr):
        try:
            return self.names[expr]
        except KeyError:
            raise ValueError(f"no generated identifier for symbol {expr}") from None

    _print_Dummy = _print_Symbol

    def _print_MatrixSymbol(self, expr):
        return self._print_Symbol(expr)

    def _print_Function(self, expr):
        if isinstance(expr, AppliedUndef):
            name = expr.func.__name__
            if name not in self.helpers:
                raise ValueError(f"unknown function {name}")
            return f"{name}({', '.join(self._print(a) for a in expr.args)})"
        return super()._print_Function(expr)

    def _print_Pow(self, expr, rational=False):
        # small integer powers of a symbol as products: Numba would compile an integer-power loop
        base, exp = expr.args
        if base.is_Symbol and exp.is_Integer and 2 <= abs(int(exp)) <= 4:
            product = "*".join([self._print(base)] * abs(int(exp)))
            return f"({product})" if exp > 0 else f"(1/({product}))"   # parenthesised: it stands for a power
        return super()._print_Pow(expr, rational=rational)

    def _print_Rational(self, expr):
        # a constant folded into the nearest float (what Python's p/q would compute at run time)
        return self.number(expr)

    def number(self, value) -> str:
        """A constant as the code writes it: the nearest float."""
        return repr(float(value))

    _print_Half = _print_Rational

    def _print_maxof(self, expr):
        return f"max({', '.join(self._print(a) for a in expr.args)})"

    def _print_Transpose(self, expr):
        return f"{self._print(expr.arg)}.T"

    def _print_MatMul(self, expr):
        args = [a for a in expr.args if not a.is_number]
        if len(args) != len(expr.args) or len(args) < 2:
            raise ValueError(f"cannot print {expr} as a product of two or more matrices")
        out = self._print(args[0])
        for a in args[1:]:
            out = f"np.dot({out}, {self._print(a)})"
        return out


class VectorPrinter(KernelPrinter):
    """For code the many-problems kernel vectorises: ``exp`` and ``log`` as ``vexp`` and ``vlog``
    (written in arithmetic, ``kernels/vecmath.py``)."""

    def _print_exp(self, expr):
        return f"vexp({self._print(expr.args[0])})"

    def _print_log(self, expr):
        if len(expr.args) != 1:
            return super()._print_log(expr)
        return f"vlog({self._print(expr.args[0])})"


class Float32VectorPrinter(VectorPrinter):
    """For the float32 twin of the many-problems loop: every constant a float32 (a float64 or integer
    constant would make Numba compute in float64), exp as ``vexpf`` (float32 arithmetic), and
    the helpers called by their float32 twins (``sigmoid_f32``).  Other functions (log, log1p,
    tanh, ...) compute in float64, their result rounded to float32."""

    suffix = "_f32"

    def number(self, value) -> str:
        return f"np.float32({float(value)!r})"

    def _print_Integer(self, expr):
        return self.number(expr)

    _print_Float = _print_Integer
    _print_One = _print_Integer
    _print_Zero = _print_Integer
    _print_NegativeOne = _print_Integer

    def _print_Function(self, expr):
        if isinstance(expr, AppliedUndef):
            text = super()._print_Function(expr)
            name = expr.func.__name__
            return name + self.suffix + text[len(name):]
        return f"np.float32({super()._print_Function(expr)})"

    def _print_exp(self, expr):
        return f"vexpf({self._print(expr.args[0])})"

    def _print_log(self, expr):
        return f"np.float32({super()._print_log(expr)})"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer and 1 <= abs(int(exp)) <= 4:
            shown = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Pow"])
            product = "*".join([shown] * abs(int(exp)))
            if exp > 0:
                return f"({product})"
            return f"({self.number(1)}/{product})" if abs(int(exp)) == 1 else f"({self.number(1)}/({product}))"
        return f"np.float32({super()._print_Pow(expr, rational=rational)})"
