"""Operations on 2-D maps (nested lists of SymPy expressions): flip, zero padding, dilation,
cross-correlation and convolution; and the same as functions of the claim language."""
from __future__ import annotations

from typing import Callable

import sympy as sp

Expr = sp.Expr
MAX_SIDE = 128            # rows or columns of any map, kernel or dense layer


def window_starts(length: int, kernel: int, stride: int) -> range:
    """The positions where a window of ``kernel`` fits in ``length`` cells, stride ``stride``."""
    return range(0, length - kernel + 1, stride)


def rot180(m: list[list[Expr]]) -> list[list[Expr]]:
    return [list(reversed(row)) for row in reversed(m)]


def zero_pad(m: list[list[Expr]], pad: tuple[int, int]) -> list[list[Expr]]:
    rows, cols = len(m), len(m[0])
    zero = sp.Integer(0)
    return [[m[i - pad[0]][j - pad[1]] if pad[0] <= i < rows + pad[0] and pad[1] <= j < cols + pad[1] else zero
             for j in range(cols + 2 * pad[1])] for i in range(rows + 2 * pad[0])]


def dilate(m: list[list[Expr]], stride: tuple[int, int]) -> list[list[Expr]]:
    """Stride − 1 zeros between neighbouring elements."""
    rows, cols = len(m), len(m[0])
    zero = sp.Integer(0)
    return [[m[i // stride[0]][j // stride[1]] if i % stride[0] == 0 and j % stride[1] == 0 else zero
             for j in range((cols - 1) * stride[1] + 1)] for i in range((rows - 1) * stride[0] + 1)]


def correlate(m: list[list[Expr]], k: list[list[Expr]], stride: tuple[int, int] = (1, 1)) -> list[list[Expr]]:
    """The valid 2-D cross-correlation Σ_u Σ_v k[u][v] m[iS+u][jS+v] (no flip), as nested lists."""
    kh, kw = len(k), len(k[0])
    return [[sp.Add(*[k[u][v] * m[i + u][j + v] for u in range(kh) for v in range(kw)])
             for j in window_starts(len(m[0]), kw, stride[1])]
            for i in window_starts(len(m), kh, stride[0])]


def convolve(m: list[list[Expr]], k: list[list[Expr]], stride: tuple[int, int] = (1, 1)) -> list[list[Expr]]:
    """The valid 2-D convolution: the cross-correlation with the kernel rotated by 180°."""
    return correlate(m, rot180(k), stride)


def claim_functions() -> dict[str, Callable]:
    """Matrix functions for ``[[claim]]`` formulas: flip, pad, dilate, correlate, convolve."""
    rows = lambda M: [list(M.row(i)) for i in range(M.rows)]
    mat = lambda g: sp.Matrix(g)

    def size(n, what):
        if not (isinstance(n, sp.Integer) and 0 <= n <= MAX_SIDE):
            raise ValueError(f"{what} must be an integer from 0 to {MAX_SIDE}")
        return int(n)

    def matrix(M, what):
        if not isinstance(M, sp.MatrixBase) or M.rows > MAX_SIDE or M.cols > MAX_SIDE:
            raise ValueError(f"{what} needs a matrix")
        return M

    def pad(M, p, q=None):
        return mat(zero_pad(rows(matrix(M, "pad")), (size(p, "padding"), size(p if q is None else q, "padding"))))

    def fits(M, K, what):
        if K.rows > M.rows or K.cols > M.cols:
            raise ValueError(f"{what}: the kernel is larger than the map")
    return {
        "flip": lambda M: mat(rot180(rows(matrix(M, "flip")))),
        "pad": pad,
        "dilate": lambda M, s: mat(dilate(rows(matrix(M, "dilate")), (max(1, size(s, "stride")),) * 2)),
        "correlate": lambda M, K: (fits(matrix(M, "correlate"), matrix(K, "correlate"), "correlate"),
                                   mat(correlate(rows(M), rows(K))))[1],
        "convolve": lambda M, K: (fits(matrix(M, "convolve"), matrix(K, "convolve"), "convolve"),
                                  mat(convolve(rows(M), rows(K))))[1],
    }
