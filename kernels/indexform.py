"""The affine layer derived once in index form, its sums turned into matrix products.

For a batch of rows ``n``: ``z[n,i] = Σ_j W[i,j] h[n,j] + b[i]``.  With ``δ[n,i] = ∂L/∂z[n,i]``
the chain rule gives, by ``sympy.diff`` on indexed objects and summing out the Kronecker deltas,

    ∂L/∂W[k,l] = Σ_n δ[n,k] h[n,l],   ∂L/∂h[m,l] = Σ_i δ[m,i] W[i,l],   ∂L/∂b[k] = Σ_n δ[n,k].

SymPy's array-expression converters turn each sum of products into a matrix expression
(``h Wᵀ``, ``δᵀ h``, ``δ W``), which the printer writes as ``np.dot`` so that BLAS does the work.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp
from sympy.concrete.delta import deltasummation
from sympy.tensor.array.expressions.from_array_to_matrix import convert_array_to_matrix
from sympy.tensor.array.expressions.from_indexed_to_array import convert_indexed_to_array

B, N, M = sp.symbols("B N M", integer=True, positive=True)   # rows, outputs, inputs
W, H, D, b = (sp.IndexedBase(s) for s in ("W", "H", "D", "b"))
MATRICES = {"W": sp.MatrixSymbol("W", N, M), "H": sp.MatrixSymbol("H", B, M), "D": sp.MatrixSymbol("D", B, N)}


@dataclass(frozen=True)
class AffineForms:
    """Index forms of the affine layer and the matrix expressions of its products."""

    z: sp.Expr          # z[n,i]
    grad_W: sp.Expr     # ∂L/∂W[k,l]
    grad_h: sp.Expr     # ∂L/∂h[m,l]
    grad_b: sp.Expr     # ∂L/∂b[k]
    forward: sp.MatrixExpr    # the product in z: H Wᵀ
    weight: sp.MatrixExpr     # Dᵀ H
    back: sp.MatrixExpr       # D W


def _sum_deltas(expr: sp.Expr) -> sp.Expr:
    """Sums of Kronecker deltas summed out (the derivative's indices lie in range by construction)."""
    def one(s: sp.Sum):
        f = sp.expand(s.function)
        delta_vars = {a for d in f.atoms(sp.KroneckerDelta) for a in d.args}
        rest = []
        for limit in s.limits:
            if limit[0] in delta_vars:
                f = deltasummation(f, limit, no_piecewise=True)
            else:
                rest.append(limit)
        return sp.Sum(f, *rest) if rest else f
    previous = None
    while previous != expr:
        previous = expr
        expr = expr.replace(lambda e: isinstance(e, sp.Sum) and e.function.has(sp.KroneckerDelta), one)
    return expr


def _matrix(expr: sp.Expr, free: list) -> sp.MatrixExpr:
    """The matrix expression of a sum of products of indexed objects with free indices ``free``."""
    plain = {i: sp.Symbol(str(i), integer=True) for i in expr.atoms(sp.Idx)}
    elements = expr.replace(lambda e: isinstance(e, sp.Indexed),
                            lambda e: MATRICES[str(e.base)][tuple(plain.get(i, i) for i in e.indices)])
    return convert_array_to_matrix(convert_indexed_to_array(elements.xreplace(plain),
                                                            first_indices=[plain[i] for i in free]))


@lru_cache(maxsize=None)
def affine_forms() -> AffineForms:
    n, m = sp.Idx("n", B), sp.Idx("m", B)
    i, k = sp.Idx("i", N), sp.Idx("k", N)
    j, l = sp.Idx("j", M), sp.Idx("l", M)
    z = sp.Sum(W[i, j] * H[n, j], j) + b[i]
    chain = lambda var: _sum_deltas(sp.Sum(D[n, i] * sp.diff(z, var), n, i))   # Σ_{n,i} ∂L/∂z[n,i] ∂z[n,i]/∂var
    grad_W, grad_h, grad_b = chain(W[k, l]), chain(H[m, l]), chain(b[k])
    return AffineForms(z=z, grad_W=grad_W, grad_h=grad_h, grad_b=grad_b,
                       forward=_matrix(z - b[i], [n, i]), weight=_matrix(grad_W, [k, l]),
                       back=_matrix(grad_h, [m, l]))


def instantiate(expr: sp.Expr, sizes: dict, indices: dict, names: dict) -> sp.Expr:
    """An index form at concrete sizes and indices, with ``names[base](indices)`` for its elements."""
    concrete = expr.xreplace({i: sp.Integer(v) for i, v in indices.items()})   # before the sizes: an Idx
    concrete = concrete.xreplace({s: sp.Integer(v) for s, v in sizes.items()}).doit()  # holds its range
    return concrete.replace(lambda e: isinstance(e, sp.Indexed),
                            lambda e: names[str(e.base)](tuple(int(x) for x in e.indices)))
