"""A claim's formula in print: the spec's small matrix language read by the whitelisting parser
(:mod:`derive.core.expressions`, no eval) into LaTeX, in the handout's notation.

``(W3.T @ delta3) * gprime2`` becomes ``\\left(\\mathbf{W}^{3\\top} \\boldsymbol{\\delta}^{3}\\right) \\odot
g^{2\\prime}(\\mathbf{z}^{2})``.  Each value carries its LaTeX, its precedence (so parentheses appear
exactly where the parse needs them) and whether it is a matrix (``*`` of two matrices is ``⊙``).
"""
from __future__ import annotations

from dataclasses import dataclass

from derive.core import primitives
from derive.core.steps import ELEMENTWISE
from derive.printing.notation import GRAD, fill, scalar_name
from derive.core.expressions import parse_expression

ADD, MUL, NEG, POW, ATOM = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class T:
    tex: str
    prec: int = ATOM
    mat: bool = False
    name: str = ""          # the quantity it names, when it is a bare name
    value: object = None    # the number, when it is one (for exponents)
    op: str = ""            # "odot" or "matmul" for products: mixed, they are bracketed


def _wrap(v: T, prec: int) -> str:
    return rf"\left({v.tex}\right)" if v.prec < prec else v.tex


def _factor(v: T, op: str, right: bool = False) -> str:
    """An operand of a product: bracketed when it is a sum, a negation on the right, or a
    product of the other kind (``(A B) ⊙ C`` and ``A (B ⊙ C)`` must not look alike)."""
    if v.prec < MUL or (right and v.prec < POW) or (v.op and op and v.op != op):
        return rf"\left({v.tex}\right)"
    return v.tex


class LatexAlgebra:
    """The operations of :class:`derive.verify.claims.MatrixAlgebra`, building LaTeX instead of values."""

    def __init__(self, table: dict, elements: dict):
        self.table, self.elements = table, elements

    def number(self, value):
        decimal = all(f in (2, 5) for f in _factors(int(value.q)))
        tex = str(value) if value.is_Integer else (_decimal(value) if decimal else rf"\frac{{{value.p}}}{{{value.q}}}")
        return T(tex, ATOM, value=value)

    def add(self, a, b):
        return T(f"{_wrap(a, ADD)} + {_wrap(b, ADD)}", ADD, a.mat or b.mat)

    def sub(self, a, b):
        return T(f"{_wrap(a, ADD)} - {_wrap(b, MUL)}", ADD, a.mat or b.mat)

    def mul(self, a, b):
        if a.mat and b.mat:
            return T(rf"{_factor(a, 'odot')} \odot {_factor(b, 'odot', right=True)}", MUL, True, op="odot")
        right = _factor(b, "", right=True)
        sep = r" \cdot " if right[:1].isdigit() else " "
        return T(f"{_factor(a, '')}{sep}{right}", MUL, a.mat or b.mat, op=a.op or b.op)

    def div(self, a, b):
        return T(rf"\frac{{{a.tex}}}{{{b.tex}}}", ATOM, a.mat or b.mat)

    def pow(self, a, b):
        return T(f"{{{_wrap(a, ATOM)}}}^{{{b.tex}}}", POW, a.mat)

    def neg(self, a):
        return T(f"-{_wrap(a, MUL)}", NEG, a.mat)

    def matmul(self, a, b):
        return T(f"{_factor(a, 'matmul')} {_factor(b, 'matmul', right=True)}", MUL, True, op="matmul")

    def attribute(self, a, name):
        if name != "T":
            raise ValueError(f"attribute '.{name}' is not allowed")
        if a.name:
            from derive.printing.notation import transpose
            return T(transpose(a.tex), ATOM, True)
        return T(rf"{_wrap(a, ATOM)}^{{\top}}", POW, True)

    def index(self, a, idx):
        key = f"{a.name}[{','.join(map(str, idx))}]"
        if a.name and key in self.elements:
            return T(self.elements[key], ATOM)
        return T(f"{{{_wrap(a, ATOM)}}}_{{{','.join(str(i + 1) for i in idx)}}}", ATOM)

    def list(self, items):
        rows = items if items and isinstance(items[0], list) else [[x] for x in items]
        body = r" \\ ".join(" & ".join(x.tex for x in row) for row in rows)
        return T(rf"\begin{{bmatrix}} {body} \end{{bmatrix}}", ATOM, True)

    def exponent_value(self, b):
        return b.value


def _call(latex: str, mat_result=None):
    def f(*args, **kw):
        sub = "".join(f"_{{{v.tex}}}" for v in kw.values())
        inner = ", ".join(a.tex for a in args)
        mat = any(a.mat for a in args) if mat_result is None else mat_result
        return T(rf"{latex}{sub}\left({inner}\right)", ATOM, mat)
    return f


def functions() -> dict:
    """The claim language's functions, each printed (names and LaTeX from the registry)."""
    funcs = {name: _call(a.latex) for name, a in primitives.ACTIVATIONS.items()}
    funcs.update({name: _call(f.latex) for name, f in primitives.FUNCTIONS.items()})
    funcs.update({name: _call(_loss_name(name, l.latex), False) for name, l in primitives.LOSSES.items()})
    funcs["softmax_rows"] = _call(primitives.ACTIVATIONS["softmax"].latex + r"_{\mathrm{rows}}", True)
    funcs["abs"] = lambda a: T(rf"\left|{a.tex}\right|", ATOM, a.mat)
    funcs["sqrt"] = lambda a: T(rf"\sqrt{{{a.tex}}}", ATOM, a.mat)
    funcs.update(
        softmax=_call(primitives.ACTIVATIONS["softmax"].latex, True),
        outer=lambda a, b: T(rf"{_wrap(a, ATOM)} {{{_wrap(b, ATOM)}}}^{{\top}}", MUL, True),
        concat=lambda *vs: T(r"\left[" + ", ".join(v.tex for v in vs) + r"\right]", ATOM, True),
        diag=_call(r"\operatorname{diag}", True),
        sum=lambda v: T(rf"\textstyle\sum {_wrap(v, ATOM)}", MUL, False),
        dot=lambda a, b: T(rf"{{{_wrap(a, ATOM)}}}^{{\top}} {_wrap(b, ATOM)}", MUL, False),
        ones=lambda n: T(rf"\mathbf{{1}}_{{{n.tex}}}", ATOM, True),
        eye=lambda n: T(rf"I_{{{n.tex}}}", ATOM, True),
        diff=lambda f, x: T(rf"\frac{{\partial}}{{\partial {x.tex}}} {_wrap(f, POW)}", MUL, f.mat),
        jacobian=lambda f, v: T(rf"\frac{{\partial {f.tex}}}{{\partial {v.tex}}}", ATOM, True),
        # maps (derive/conv.py): ⋆ is the cross-correlation, * the convolution
        flip=_call(r"\operatorname{rot}_{180^{\circ}}", True),
        pad=lambda m, p, q=None: T(rf"\operatorname{{pad}}_{{{p.tex}{'' if q is None else ',' + q.tex}}}"
                                   rf"\left({m.tex}\right)", ATOM, True),
        dilate=lambda m, s: T(rf"\operatorname{{dil}}_{{{s.tex}}}\left({m.tex}\right)", ATOM, True),
        correlate=lambda m, k: T(rf"{_wrap(m, POW)} \star {_wrap(k, POW)}", MUL, True),
        convolve=lambda m, k: T(rf"{_wrap(m, POW)} * {_wrap(k, POW)}", MUL, True),
        d=lambda q, x: T(rf"\frac{{\partial {q.tex}}}{{\partial {x.tex}}}", ATOM, False),
    )
    return funcs


def _loss_name(name: str, latex: str) -> str:
    """A loss as a function name: its registry name when its LaTeX is a formula (½‖y − t‖²)."""
    return latex if latex.startswith(r"\operatorname") else r"\operatorname{" + name.replace("_", r"\_") + "}"


def claim_names(names, spec, quantities) -> dict:
    """Every name a claim may use: declared symbols, quantities, their aliases and ∂L/∂ names."""
    out = {name: T(scalar_name(name)) for name, _ in spec.symbols}
    for name, tex in names.quantities.items():
        q = quantities.get(name)
        out[name] = T(tex, ATOM, bool(q is not None and q.shape), name)
    for name, q in quantities.items():
        if name in names.quantities and ELEMENTWISE + name not in out and q.shape:
            out[ELEMENTWISE + name] = T(fill(GRAD, L=names.loss, v=names.quantities[name]), ATOM, True)
    for d_alias, target in (("y", _last_h(quantities)), ("h0", "x")):
        if target in out:
            out[d_alias] = out[target]
            if ELEMENTWISE + target in out:
                out[ELEMENTWISE + d_alias] = out[ELEMENTWISE + target]
    return out


def _last_h(quantities) -> str:
    layers = [int(n[1:]) for n in quantities if n.startswith("h") and n[1:].isdigit()]
    return f"h{max(layers)}" if layers else ""


def formula(text: str, table: dict, elements: dict, path: str = "claim") -> str:
    """The LaTeX of one side of a claim (``table`` from :func:`claim_names`)."""
    algebra = LatexAlgebra(table, elements)
    return parse_expression(text, names=table, functions=functions(), path=path, algebra=algebra).tex


def _factors(n: int) -> list[int]:
    out, k = [], 2
    while k * k <= n:
        while n % k == 0:
            out.append(k)
            n //= k
        k += 1
    return out + ([n] if n > 1 else [])


def _decimal(value) -> str:
    """A Rational with a terminating decimal expansion, written out exactly."""
    for k in range(1, 40):
        scaled = value * 10 ** k
        if scaled.is_Integer:
            digits = str(abs(int(scaled))).rjust(k + 1, "0")
            return ("-" if value < 0 else "") + digits[:-k] + "." + digits[-k:]
    return str(float(value))
