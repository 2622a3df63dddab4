"""The claim language's matrix algebra and functions: scalars are SymPy expressions, vectors columns.

Used to read slide claims, the nodes of `[matrices]`, and students' LaTeX answers alike.
"""
from __future__ import annotations

from typing import Any

import sympy as sp

from derive.core import primitives


def _is_mat(v: Any) -> bool:
    return isinstance(v, sp.MatrixBase)


class MatrixAlgebra:
    """Scalars are SymPy expressions, vectors are columns, ``*`` is element-wise, ``@`` is the matrix product.

    With ``broadcast`` (claims and ``[matrices]`` nodes, not answers), a row ``1×n`` meets an ``m×n``
    matrix row by row, as a bias row ``b`` in the row-vector form ``X W + b`` of a batch.
    """

    def __init__(self, broadcast: bool = False):
        self.broadcast = broadcast

    def number(self, value):
        return value

    def _rows(self, a, b):
        """``a`` and ``b`` with a 1×n row repeated to the other's rows, when broadcasting."""
        if self.broadcast and a.cols == b.cols and 1 in (a.rows, b.rows) and a.rows != b.rows:
            if a.rows == 1:
                return sp.Matrix.vstack(*[a] * b.rows), b
            return a, sp.Matrix.vstack(*[b] * a.rows)
        return a, b

    def _elementwise(self, a, b, op, sym):
        if _is_mat(a) and _is_mat(b):
            a, b = self._rows(a, b)
            if a.shape != b.shape:
                raise ValueError(f"'{sym}' needs equal shapes, got {a.shape} and {b.shape}")
            return sp.Matrix(a.rows, a.cols, [op(x, y) for x, y in zip(a, b)])
        if _is_mat(a):
            return a.applyfunc(lambda x: op(x, b))
        if _is_mat(b):
            return b.applyfunc(lambda y: op(a, y))
        return op(a, b)

    def add(self, a, b):
        return self._elementwise(a, b, lambda x, y: x + y, "+")

    def sub(self, a, b):
        return self._elementwise(a, b, lambda x, y: x - y, "-")

    def mul(self, a, b):
        return self._elementwise(a, b, lambda x, y: x * y, "*")

    def div(self, a, b):
        return self._elementwise(a, b, lambda x, y: x / y, "/")

    def pow(self, a, b):
        return a.applyfunc(lambda x: x**b) if _is_mat(a) else a**b

    def neg(self, a):
        return -a

    def matmul(self, a, b):
        if not (_is_mat(a) and _is_mat(b)):
            raise ValueError("'@' needs two matrices or vectors")
        if a.cols != b.rows:
            raise ValueError(f"'@' shapes {a.shape} and {b.shape} do not fit")
        return a * b

    def attribute(self, a, name):
        if name == "T" and _is_mat(a):
            return a.T
        raise ValueError(f"attribute '.{name}' is not allowed (only '.T' of a matrix)")

    def index(self, a, idx):
        if not _is_mat(a):
            raise ValueError("only a vector or matrix can be subscripted")
        if len(idx) == 1 and a.cols == 1:
            idx = (idx[0], 0)
        if len(idx) != 2 or not (idx[0] < a.rows and idx[1] < a.cols):
            raise ValueError(f"subscript {idx} out of range for shape {a.shape}")
        return a[idx[0], idx[1]]

    def exponent_value(self, b):
        return b if isinstance(b, sp.Expr) and b.is_number else None

    def list(self, items):
        if items and all(isinstance(row, list) for row in items):
            if len({len(row) for row in items}) != 1:
                raise ValueError("matrix rows differ in length")
            return sp.Matrix(items)
        if any(isinstance(v, list) or _is_mat(v) for v in items):
            raise ValueError("a list holds scalars, or lists of scalars for a matrix")
        return sp.Matrix(len(items), 1, items)


def _lift(f):
    """A scalar function applied element-wise to a matrix."""
    def g(v, *rest, **kw):
        if _is_mat(v):
            return v.applyfunc(lambda x: f(x, *rest, **kw))
        return f(v, *rest, **kw)
    return g


def _scalar(v, what):
    if _is_mat(v):
        raise ValueError(f"{what} needs a scalar")
    return v


def _size(n):
    if not (isinstance(n, sp.Integer) and 1 <= n <= 64):
        raise ValueError("a size must be an integer from 1 to 64")
    return int(n)


def claim_functions(defs: dict | None = None) -> dict:
    """The functions every formula may call: the registry's functions and losses element-wise, the
    matrix helpers, and the 2-D map operations.  A kind adds its own (``Kind.claim_functions``)."""
    from derive.core.maps import claim_functions as map_functions   # flip, pad, dilate, correlate, convolve
    from derive.core.scalar import NODE_FUNCTIONS

    funcs: dict = {name: _lift(f) for name, f in NODE_FUNCTIONS.items()}
    funcs["max"] = lambda a, b: MatrixAlgebra()._elementwise(a, b, primitives.FUNCTIONS["max"].build, "max")
    funcs["min"] = lambda a, b: MatrixAlgebra()._elementwise(a, b, primitives.FUNCTIONS["min"].build, "min")
    funcs.update({name: _loss(loss) for name, loss in primitives.LOSSES.items()})
    funcs.update(
        softmax=lambda v: sp.Matrix(primitives.ACTIVATIONS["softmax"].define(list(v))),
        softmax_rows=_softmax_rows,
        outer=lambda a, b: a * b.T,
        concat=_concat,
        diag=lambda v: sp.diag(*list(v)),
        sum=lambda v: sp.Add(*list(v)) if _is_mat(v) else v,
        dot=lambda a, b: (a.T * b)[0, 0],
        ones=lambda n: sp.ones(_size(n), 1),
        eye=lambda n: sp.eye(_size(n)),
        diff=lambda f, x: (f.applyfunc(lambda e: sp.diff(e, symbol_arg(x))) if _is_mat(f)
                           else sp.diff(f, symbol_arg(x))),
        jacobian=lambda f, v: _jacobian(f, v, defs or {}),
    )
    funcs.update(map_functions())
    return funcs


def _loss(loss):
    """A registry loss L(y, t) of two vectors (or scalars) of one sample."""
    def f(y, t):
        ys, ts = (list(v) if _is_mat(v) else [v] for v in (y, t))
        if len(ys) != len(ts):
            raise ValueError(f"{loss.name}(y, t) needs y and t of one size, got {len(ys)} and {len(ts)}")
        return loss.define(ys, ts)
    return f


def _softmax_rows(m):
    """softmax of each row (the row-vector form: one sample per row)."""
    if not _is_mat(m):
        raise ValueError("softmax_rows needs a matrix")
    define = primitives.ACTIVATIONS["softmax"].define
    return sp.Matrix([define(list(m.row(i))) for i in range(m.rows)])


def _concat(*vs):
    """[u; v; ...]: vectors (and scalars) stacked into one column."""
    parts = [v if _is_mat(v) else sp.Matrix([v]) for v in vs]
    if not parts or any(p.cols != 1 for p in parts):
        raise ValueError("concat(...) stacks one or more vectors")
    return sp.Matrix.vstack(*parts)


def _jacobian(f, v, defs):
    """∂f/∂v (numerator layout) after unfolding f's definitions down to v's level."""
    f = f if _is_mat(f) else sp.Matrix([f])
    v = v if _is_mat(v) else sp.Matrix([v])
    if any(not isinstance(s, sp.Symbol) for s in v):
        raise ValueError("jacobian(f, v) needs a vector of names as v")
    unfold = Unfolder({k: e for k, e in defs.items() if k not in set(v)})
    return sp.Matrix(f.rows, v.rows, lambda i, j: sp.diff(unfold(f[i, 0]), v[j, 0]))


def symbol_arg(x):
    if not isinstance(x, sp.Symbol):
        raise ValueError("expected a name")
    return x


class Unfolder:
    """Replaces derived symbols by their definitions, recursively, each symbol unfolded once."""

    def __init__(self, defs: dict):
        self.defs = defs
        self.cache: dict = {}

    def symbol(self, sym: sp.Symbol) -> sp.Expr:
        if sym not in self.cache:
            expr = self.defs[sym]
            self.cache[sym] = expr.xreplace({s: self.symbol(s) for s in expr.free_symbols if s in self.defs})
        return self.cache[sym]

    def __call__(self, expr: sp.Expr) -> sp.Expr:
        return expr.xreplace({s: self.symbol(s) for s in expr.free_symbols if s in self.defs})
