"""Recurrent networks (the ``[recurrent]`` kind): an Elman RNN or an LSTM cell unrolled over time,
and backpropagation through time derived by the chain rule on the unrolled graph.

The forward pass, for t = 1 … T with h_0 = 0 (and C_0 = 0) unless given, in the forms of deck 000
(``000_9ff9b7f9e4790c65.txt``, Elman network and LSTM cell) and deck 004
(``004_d00e0ad09de1f318.txt``, RNN forward pass):

* Elman:  a_t = W_hh h_{t−1} + W_xh x_t + b_h,  h_t = g1(a_t)
* LSTM:   hx_t = [h_{t−1}; x_t],  f_t = σ(W_f hx_t + b_f),  i_t = σ(W_i hx_t + b_i),
          C̃_t = tanh(W_c hx_t + b_c),  C_t = f_t ⊙ C_{t−1} + i_t ⊙ C̃_t,  o_t = σ(W_o hx_t + b_o),
          h_t = o_t ⊙ tanh(C_t)
* an optional output layer s_t = W_hy h_t + b_y, y_t = g2(s_t); without one the loss reads h_t;
* the loss: L = Σ_t loss(y_t, t_t) (``loss_at = "every"``, the default), or L = loss(y_T, t_T)
  (``loss_at = "last"``, a sequence read into one output).

The backward pass is not written here.  Every element of every forward quantity becomes a scalar
node of one graph (:class:`derive.core.scalar.ScalarNode`: local derivatives by ``sympy.diff``, or the
registry's output form σ' = σ(1 − σ)), :func:`derive.kinds.network.derivation.reverse_mode` applies
∂L/∂v = Σ_c ∂L/∂c · ∂c/∂v, and the scalar gradients are grouped back into one
:class:`ThroughTime` step per quantity.  Each step also records its terms, one per quantity that
reads it, read off the local Jacobian (``W_hhᵀ ∂L/∂a_{t+1}``, ``∂L/∂C_t ⊙ f_t``,
``Σ_t ∂L/∂a_t h_{t−1}ᵀ``...), so that the printer can show the matrix form of what the chain rule
computed; the terms describe the expressions, they do not produce them.

Quantity names (indices 0-based in data, times 1-based in names; docs/recurrent.md):

* given: ``x{t}``, targets ``t{t}``, ``h0`` (and ``c0``), the parameters ``W_hh W_xh b_h``
  (Elman) or ``W_f b_f W_i b_i W_c b_c W_o b_o`` (LSTM), ``W_hy b_y`` (output layer),
  ``learning_rate``;
* forward: ``a{t} h{t}`` (Elman); ``hx{t} zf{t} f{t} zi{t} i{t} zc{t} ctilde{t} c{t} zo{t} o{t}
  tc{t} h{t}`` (LSTM; ``tc{t}`` is tanh(C_t)); ``s{t} y{t}`` (output layer; else ``y{t}`` is an
  alias of ``h{t}``); ``loss{t}`` and ``loss`` (every step), or ``loss`` (last step);
* backward: ``grad_{name}`` for every forward quantity, ``h0``, ``c0`` and every parameter
  (not for inputs and targets), ``grad_loss`` = 1 where the chain rule starts;
* update: ``{param}_new``.

Deck 004's names are aliases of an Elman problem's: ``U`` = ``W_xh``, ``W`` = ``W_hh``,
``V`` = ``W_hy``, ``b_a`` = ``b_h``, ``o{t}`` = ``y{t}``.

Every element of every step is a plain SymPy expression in the element symbols of earlier
quantities (no matrices, no unevaluated derivatives), so a generic code generator can print it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import sympy as sp

from derive.core import primitives
from derive.core.errors import SpecError
from derive.core.spec import (ActivationRef, _activation, _int, _kind, _learning_rate, _string, _table,
    _unknown_keys, _vector)
from derive.core.steps import (Activate, Derivation, Given, LossValue, Node, Quantity, Seed, Step, Update,
    symbol, vector_symbols)

MAX_STEPS = 50           # sequence length
MAX_SIZE = 32            # input, hidden and output widths
MAX_UNROLLED = 10_000    # time steps × weights: the exact engine writes every product out (~10 s to derive)
LR = "learning_rate"
CELLS = ("elman", "lstm")
GATES = (("f", "sigmoid"), ("i", "sigmoid"), ("c", "tanh"), ("o", "sigmoid"))  # LSTM: W_f, b_f, ...
DECK004_ALIASES = (("U", "W_xh"), ("W", "W_hh"), ("V", "W_hy"), ("b_a", "b_h"))

__all__ = ["Recurrent", "load_recurrent", "derive_recurrent", "RecurrentAffine", "TimeActivation", "Concat",
           "Hadamard", "StepLoss", "TotalLoss", "ThroughTime", "Term"]


# ----------------------------------------------------------------------------- the problem

@dataclass(frozen=True)
class Recurrent:
    cell: str                                   # "elman" | "lstm"
    input_size: int
    hidden_size: int
    output_size: int | None                     # None: no output layer, the loss reads h_t
    steps: int                                  # T
    inputs: tuple[tuple[sp.Expr, ...], ...] | None   # x_1 … x_T; None: symbols
    targets: tuple[tuple[sp.Expr, ...], ...] | None  # t_1 … t_T (every) or (t_T,) (last); None: symbols
    g1: ActivationRef                           # Elman hidden activation
    g2: ActivationRef                           # output-layer activation
    loss: str
    loss_at: str                                # "every" | "last"
    params: tuple[tuple[str, tuple[sp.Expr, ...] | None], ...]  # name -> row-major values, None: symbols
    h0: tuple[sp.Expr, ...] | None              # None: symbols
    c0: tuple[sp.Expr, ...] | None
    learning_rate: sp.Expr | None

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The parameters and their shapes, in the order they are given."""
        return param_shapes(self.cell, self.input_size, self.hidden_size, self.output_size)

    @property
    def param_count(self) -> int:
        return sum(_size(s) for s in self.shapes().values())

    @property
    def output(self) -> bool:
        return self.output_size is not None

    @property
    def loss_times(self) -> list[int]:
        return list(range(1, self.steps + 1)) if self.loss_at == "every" else [self.steps]


def param_shapes(cell: str, m: int, n: int, p: int | None) -> dict[str, tuple[int, ...]]:
    if cell == "elman":
        shapes = {"W_hh": (n, n), "W_xh": (n, m), "b_h": (n,)}
    else:
        shapes = {}
        for g, _ in GATES:
            shapes[f"W_{g}"] = (n, n + m)
            shapes[f"b_{g}"] = (n,)
    if p is not None:
        shapes.update({"W_hy": (p, n), "b_y": (p,)})
    return shapes


def _size(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


# ----------------------------------------------------------------------------- reading [recurrent]

_KEYS = {"cell", "input_size", "hidden_size", "output_size", "steps", "inputs", "targets", "g1", "g2", "loss",
         "loss_at", "params", "h0", "c0", "learning_rate"}


def _sequence(value, path: str, length: int | None, width: int | None) -> tuple[tuple[sp.Expr, ...], ...]:
    """A list of vectors (one per time step)."""
    if not isinstance(value, list) or not value or not all(isinstance(v, list) for v in value):
        raise SpecError(path, f"expected a list of vectors (one list of numbers per time step), got {_kind(value)}")
    if len(value) > MAX_STEPS:
        raise SpecError(path, f"at most {MAX_STEPS} time steps, got {len(value)}")
    if length is not None and len(value) != length:
        raise SpecError(path, f"expected {length} vector{'s' if length != 1 else ''}, got {len(value)}")
    out = []
    for k, v in enumerate(value):
        vec = _vector(v, f"{path}[{k}]", width if width is not None else (len(out[0]) if out else None))
        if len(vec) > MAX_SIZE:
            raise SpecError(f"{path}[{k}]", f"at most {MAX_SIZE} numbers per time step, got {len(vec)}")
        out.append(vec)
    return tuple(out)


def _given_array(value, path: str, shape: tuple[int, ...]) -> tuple[sp.Expr, ...] | None:
    """Numbers of a parameter or initial state, row-major; "symbol" (or absent) for symbols."""
    if value is None or value == "symbol":
        return None
    if len(shape) == 1:
        return _vector(value, path, shape[0])
    rows, cols = shape
    if not isinstance(value, list) or len(value) != rows:
        got = f"{len(value)} rows" if isinstance(value, list) else _kind(value)
        raise SpecError(path, f"expected a {rows}x{cols} matrix (a list of {rows} rows), got {got}")
    return tuple(x for i, row in enumerate(value) for x in _vector(row, f"{path}[{i}]", cols))


def _width(table: dict, key: str, path: str, default: int | None = None) -> int | None:
    if key not in table:
        return default
    return _int(table[key], f"{path}.{key}", 1, MAX_SIZE)


def load_recurrent(table: dict, path: str = "recurrent") -> Recurrent:
    _unknown_keys(table, _KEYS, path)
    cell = _string(table.get("cell", "elman"), f"{path}.cell", 16)
    if cell not in CELLS:
        raise SpecError(f"{path}.cell", f"expected one of {', '.join(CELLS)}, got {cell!r}")
    if "hidden_size" not in table:
        raise SpecError(f"{path}.hidden_size", "missing; give the width of the hidden state h_t")
    n = _width(table, "hidden_size", path)
    params_raw = _table(table.get("params", {}), f"{path}.params")

    inputs = None
    if "inputs" in table:
        inputs = _sequence(table["inputs"], f"{path}.inputs", None, _width(table, "input_size", path))
        m, T = len(inputs[0]), len(inputs)
        if "steps" in table and _int(table["steps"], f"{path}.steps", 1, MAX_STEPS) != T:
            raise SpecError(f"{path}.steps", f"inputs has {T} time steps")
    else:
        for key in ("input_size", "steps"):
            if key not in table:
                raise SpecError(f"{path}.{key}", "missing; give 'inputs' (one vector per time step), "
                                                 "or 'input_size' and 'steps' for symbolic inputs")
        m, T = _width(table, "input_size", path), _int(table["steps"], f"{path}.steps", 1, MAX_STEPS)

    p = _width(table, "output_size", path)
    if p is None and isinstance(params_raw.get("W_hy"), list):
        p = len(params_raw["W_hy"])
        if not 1 <= p <= MAX_SIZE:
            raise SpecError(f"{path}.params.W_hy", f"expected 1 to {MAX_SIZE} rows, got {p}")
    if p is None and ("b_y" in params_raw or "W_hy" in params_raw):
        raise SpecError(f"{path}.output_size", "missing: W_hy and b_y belong to an output layer; give its width")

    shapes = param_shapes(cell, m, n, p)
    _unknown_keys(params_raw, set(shapes), f"{path}.params")
    params = tuple((name, _given_array(params_raw.get(name), f"{path}.params.{name}", shape))
                   for name, shape in shapes.items())

    if cell == "lstm" and "g1" in table:
        raise SpecError(f"{path}.g1", "an LSTM cell's activations are fixed (σ for the gates, tanh for the "
                                      "candidate and the state); g1 is for an Elman network")
    if cell == "elman" and "c0" in table:
        raise SpecError(f"{path}.c0", "only an LSTM cell has a cell state C_0")
    g1 = _activation(table.get("g1", "tanh"), f"{path}.g1")
    if primitives.ACTIVATIONS[g1.name].vector:
        raise SpecError(f"{path}.g1", f"{g1.name} acts on a whole layer; the hidden activation must be element-wise")
    if "g2" in table and p is None:
        raise SpecError(f"{path}.g2", "g2 is the output layer's activation; give output_size (and W_hy, b_y)")
    g2 = _activation(table.get("g2", "identity"), f"{path}.g2")

    loss = _string(table.get("loss", ""), f"{path}.loss", 64)
    if loss not in primitives.LOSSES:
        raise SpecError(f"{path}.loss", f"unknown loss {loss!r} (known: {', '.join(primitives.LOSSES)})")
    if primitives.LOSSES[loss].on_logits and g2.name != "identity":
        raise SpecError(f"{path}.loss", f"{loss} takes logits: make g2 'identity'")
    loss_at = _string(table.get("loss_at", "every"), f"{path}.loss_at", 16)
    if loss_at not in ("every", "last"):
        raise SpecError(f"{path}.loss_at", f"expected 'every' (L = Σ_t L_t) or 'last' (L = L_T), got {loss_at!r}")
    width = p if p is not None else n
    targets = None
    if "targets" in table:
        targets = _sequence(table["targets"], f"{path}.targets", T if loss_at == "every" else 1, width)

    h0 = _given_array(table.get("h0", ["0"] * n), f"{path}.h0", (n,))
    c0 = _given_array(table.get("c0", ["0"] * n), f"{path}.c0", (n,)) if cell == "lstm" else None
    problem = Recurrent(cell, m, n, p, T, inputs, targets, g1, g2, loss, loss_at, params, h0, c0,
                        _learning_rate(table, path))
    check_size(problem, path)
    return problem


def check_size(r: Recurrent, path: str = "recurrent") -> None:
    """The exact engine writes every product of the unrolled graph out: refuse problems too large."""
    unrolled = r.steps * r.param_count
    if unrolled > MAX_UNROLLED:
        raise SpecError(path, f"{r.steps} time steps × {r.param_count} parameters = {unrolled} is too large for the "
                              f"exact engine (at most {MAX_UNROLLED}); shorten the sequence or narrow the layers")


# ----------------------------------------------------------------------------- steps

# The forward steps extend the engine's forward classes (an activation, a loss, a node), so that the
# checker treats their quantities as forward ones (derive/equiv.py).  An affine map is a Node, not
# an Affine: claims would keep Affine quantities as atoms in a first proof attempt, which for a
# formula restating a time step's affine map costs a failed simplification.

@dataclass(frozen=True)
class RecurrentAffine(Node):
    """``Σ_k M_k v_k + b`` at one time step: ``terms`` = ((matrix, vector), ...), ``bias``."""

    time: int = 0
    terms: tuple[tuple[str, str], ...] = ()
    bias: str = ""
    rule: ClassVar[str] = "recurrent_affine"


@dataclass(frozen=True)
class TimeActivation(Activate):
    """``g(v)`` element-wise (or softmax of the whole vector) at one time step."""

    time: int = 0
    rule: ClassVar[str] = "time_activation"


@dataclass(frozen=True)
class Concat(Node):
    """``[u; v]``: vectors stacked (the LSTM's [h_{t−1}, x_t])."""

    time: int = 0
    parts: tuple[str, ...] = ()
    rule: ClassVar[str] = "concatenation"


@dataclass(frozen=True)
class Hadamard(Node):
    """``Σ_k u_k ⊙ v_k``: element-wise products (C_t = f_t ⊙ C_{t−1} + i_t ⊙ C̃_t, h_t = o_t ⊙ tanh C_t)."""

    time: int = 0
    products: tuple[tuple[str, str], ...] = ()
    rule: ClassVar[str] = "hadamard"


@dataclass(frozen=True)
class StepLoss(LossValue):
    """``loss(y_t, t_t)``: the loss of one time step."""

    time: int = 0
    rule: ClassVar[str] = "step_loss"


@dataclass(frozen=True)
class TotalLoss(LossValue):
    """``L = Σ_t L_t``."""

    parts: tuple[str, ...] = ()
    rule: ClassVar[str] = "total_loss"


@dataclass(frozen=True)
class Term:
    """One quantity's share of a gradient, read off the local Jacobian ∂consumer/∂of.

    ``kind``: ``transpose`` (Mᵀ ∂L/∂c; ``operand`` M), ``outer`` (∂L/∂c vᵀ; v), ``identity``
    (∂L/∂c), ``hadamard`` (∂L/∂c ⊙ p; p), ``derivative`` (∂L/∂c ⊙ g'(of) for c = g(of); g),
    ``select`` (entries ``offset`` … of ∂L/∂c, for a stacked vector), ``diag`` (∂L/∂c ⊙ the
    vector ``factors``), or ``chain`` ((∂c/∂of)ᵀ ∂L/∂c, any other Jacobian).
    """

    consumer: str
    kind: str
    operand: str = ""
    offset: int = 0
    factors: tuple[sp.Expr, ...] = ()


@dataclass(frozen=True)
class ThroughTime(Step):
    """∂L/∂``of`` by the chain rule on the unrolled graph: Σ over the quantities c that read it of
    (∂c/∂of)ᵀ ∂L/∂c; ``terms`` name those shares, ``time`` is of's time step (None for a parameter)."""

    of: str = ""
    time: int | None = None
    terms: tuple[Term, ...] = ()
    rule: ClassVar[str] = "bptt"


# ----------------------------------------------------------------------------- forward pass


def _mat(name: str, rows: int, cols: int) -> list[list[sp.Symbol]]:
    return [[symbol(name, (i, j)) for j in range(cols)] for i in range(rows)]


def _affine(name: str, t: int, terms, bias: str, rows: int, sizes: dict) -> RecurrentAffine:
    exprs = []
    for i in range(rows):
        e = sp.Add(*[symbol(M, (i, j)) * symbol(v, (j,)) for M, v in terms for j in range(sizes[v])])
        exprs.append(e + symbol(bias, (i,)))
    inputs = tuple(dict.fromkeys([x for pair in terms for x in pair] + [bias]))
    return RecurrentAffine(Quantity(name, (rows,)), tuple(exprs), inputs, op="recurrent_affine", args=inputs, time=t,
                           terms=tuple(terms), bias=bias)


def _activate(name: str, t: int, of: str, act: ActivationRef, n: int) -> TimeActivation:
    entry = primitives.ACTIVATIONS[act.name]
    v = vector_symbols(of, n)
    exprs = entry.define(v) if entry.vector else [entry.define(x, **act.kwargs) for x in v]
    return TimeActivation(Quantity(name, (n,)), tuple(exprs), (of,), time=t, activation=act.name, params=act.params)


def _given_steps(r: Recurrent) -> list[Given]:
    m, n, T = r.input_size, r.hidden_size, r.steps

    def given(name, shape, values, role):
        q = Quantity(name, shape)
        return Given(q, tuple(q.symbols()) if values is None else tuple(values), (), role=role)
    out = [given(f"x{t}", (m,), None if r.inputs is None else r.inputs[t - 1], "input") for t in range(1, T + 1)]
    width = r.output_size or n
    for k, t in enumerate(r.loss_times):
        out.append(given(f"t{t}", (width,), None if r.targets is None else r.targets[k], "target"))
    out.append(given("h0", (n,), r.h0, "state"))
    if r.cell == "lstm":
        out.append(given("c0", (n,), r.c0, "state"))
    shapes = r.shapes()
    out += [given(name, shapes[name], values, "param") for name, values in r.params]
    if r.learning_rate is not None:
        out.append(Given(Quantity(LR), (r.learning_rate,), (), role="hyper"))
    return out


def _forward(r: Recurrent) -> list[Step]:
    m, n, T = r.input_size, r.hidden_size, r.steps
    sizes = {f"x{t}": m for t in range(1, T + 1)} | {f"h{t}": n for t in range(0, T + 1)}
    sizes |= {f"hx{t}": n + m for t in range(1, T + 1)}
    steps: list[Step] = []
    sigmoid, tanh = ActivationRef("sigmoid"), ActivationRef("tanh")
    for t in range(1, T + 1):
        if r.cell == "elman":
            steps.append(_affine(f"a{t}", t, (("W_hh", f"h{t - 1}"), ("W_xh", f"x{t}")), "b_h", n, sizes))
            steps.append(_activate(f"h{t}", t, f"a{t}", r.g1, n))
        else:
            hx = Quantity(f"hx{t}", (n + m,))
            parts = (f"h{t - 1}", f"x{t}")
            steps.append(Concat(hx, tuple(vector_symbols(parts[0], n) + vector_symbols(parts[1], m)), parts, op="concat", args=parts,
                                time=t, parts=parts))
            gates = {}
            for g, act in GATES:
                steps.append(_affine(f"z{g}{t}", t, ((f"W_{g}", hx.name),), f"b_{g}", n, sizes))
                out = f"ctilde{t}" if g == "c" else f"{g}{t}"
                steps.append(_activate(out, t, f"z{g}{t}", sigmoid if act == "sigmoid" else tanh, n))
                gates[g] = out
            products = ((gates["f"], f"c{t - 1}"), (gates["i"], gates["c"]))
            steps.append(_hadamard(f"c{t}", t, products, n))
            steps.append(_activate(f"tc{t}", t, f"c{t}", tanh, n))
            steps.append(_hadamard(f"h{t}", t, ((gates["o"], f"tc{t}"),), n))
        if r.output and t in r.loss_times:
            steps.append(_affine(f"s{t}", t, (("W_hy", f"h{t}"),), "b_y", r.output_size, sizes))
            steps.append(_activate(f"y{t}", t, f"s{t}", r.g2, r.output_size))
    out = "y" if r.output else "h"
    width = r.output_size or n
    loss = primitives.LOSSES[r.loss]
    for t in r.loss_times:
        name = f"loss{t}" if r.loss_at == "every" else "loss"
        steps.append(StepLoss(Quantity(name), (loss.define(vector_symbols(f"{out}{t}", width), vector_symbols(f"t{t}", width)),),
                              (f"{out}{t}", f"t{t}"), time=t, loss=r.loss))
    if r.loss_at == "every":
        parts = tuple(f"loss{t}" for t in r.loss_times)
        steps.append(TotalLoss(Quantity("loss"), (sp.Add(*[symbol(p) for p in parts]),), parts, loss=r.loss,
                               parts=parts))
    return steps


def _hadamard(name: str, t: int, products, n: int) -> Hadamard:
    exprs = tuple(sp.Add(*[symbol(u, (i,)) * symbol(v, (i,)) for u, v in products]) for i in range(n))
    inputs = tuple(dict.fromkeys(x for pair in products for x in pair))
    return Hadamard(Quantity(name, (n,)), exprs, inputs, op="hadamard", args=inputs, time=t, products=tuple(products))


# ----------------------------------------------------------------------------- backward pass: the chain rule

_ELEMENT = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\[(\d+(?:,\d+)?)\]")
_TIME = re.compile(r"[A-Za-z_]*?[a-z](\d+)$")


def _scalar_graph(given: list[Given], forward: list[Step]):
    """The unrolled graph as scalar nodes (one per element), and the leaves whose gradients are wanted."""
    from derive.core.scalar import Leaf, ScalarNode, _VectorNode

    class SumNode(ScalarNode):
        """A sum (an affine map, element-wise products, a loss): ``sympy.diff`` of the terms that
        contain the argument only (the others' derivatives are 0), so a wide affine map costs one
        derivative per argument rather than one per term."""

        def local(self, arg: sp.Symbol) -> sp.Expr:
            return sp.Add(*[sp.diff(t, arg) for t in sp.Add.make_args(self.expr) if arg in t.free_symbols])

    leaves = [Leaf(sym.name, None, g.role) for g in given if g.role in ("param", "state") for sym in g.target.symbols()]
    nodes = []
    for step in forward:
        vector = isinstance(step, TimeActivation) and primitives.ACTIVATIONS[step.activation].vector
        for sym, expr in step.items():
            if isinstance(step, TimeActivation):
                cls = _VectorNode if vector else ScalarNode
                nodes.append(cls(sym.name, expr, step.activation, step.params))
            else:
                nodes.append(SumNode(sym.name, expr, step.rule))
    return leaves, nodes


def _where(steps: list[Step]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Element symbol name -> (quantity, index)."""
    out = {}
    for s in steps:
        for idx, sym in zip(s.target.indices(), s.target.symbols()):
            out[sym.name] = (s.name, idx)
    return out


def _time_of(name: str) -> int | None:
    m = _TIME.fullmatch(name)
    return int(m.group(1)) if m and not name.startswith(("W_", "b_")) else None


def _backward(chain_steps, known: list[Step]) -> list[Step]:
    """Scalar chain-rule steps grouped into one :class:`ThroughTime` step per quantity."""
    from derive.core.steps import ChainRule
    where = _where(known)
    by_name = {s.name: s for s in known}
    out: list[Step] = []
    groups: dict[str, dict] = {}
    order: list[str] = []
    for cs in chain_steps:
        if isinstance(cs, Seed):
            out.append(cs)
            continue
        assert isinstance(cs, ChainRule)
        q, idx = where[cs.of]
        if q not in groups:
            groups[q] = {}
            order.append(q)
        groups[q][idx] = cs
    for q in order:
        target = by_name[q].target
        elems = [groups[q][idx] for idx in target.indices()]
        exprs = tuple(e.exprs[0] for e in elems)
        jac: dict[str, dict] = {}
        for idx, e in zip(target.indices(), elems):
            for consumer, local in e.terms:
                c, k = where[consumer]
                jac.setdefault(c, {})[(k, idx)] = local
        terms = tuple(_term(c, q, jac[c], by_name) for c in jac)
        reads = ["grad_" + c for c in jac] + [_quantity(s.name) for e in exprs for s in e.free_symbols]
        inputs = tuple(dict.fromkeys(r for r in reads if r != "grad_" + q))
        out.append(ThroughTime(Quantity("grad_" + q, target.shape), exprs, inputs, of=q, time=_time_of(q),
                               terms=terms))
    return out


def _quantity(symbol_name: str) -> str:
    m = _ELEMENT.fullmatch(symbol_name)
    return m.group(1) if m else symbol_name


def _element(expr: sp.Expr, where: dict) -> tuple[str, tuple[int, ...]] | None:
    if not isinstance(expr, sp.Symbol):
        return None
    m = _ELEMENT.fullmatch(expr.name)
    return (m.group(1), tuple(int(i) for i in m.group(2).split(","))) if m else None


def _same_quantity(values, expected_index) -> str | None:
    """The one quantity whose elements ``values`` are, at ``expected_index(position)``; else None."""
    names = set()
    for pos, v in values:
        el = _element(v, {})
        if el is None or el[1] != expected_index(pos):
            return None
        names.add(el[0])
    return names.pop() if len(names) == 1 else None


def _term(c: str, q: str, jac: dict, steps: dict) -> Term:
    """Which matrix form ``Σ_k ∂L/∂c_k ∂c_k/∂q_i`` takes, read off the local Jacobian ``jac``."""
    cshape, qshape = steps[c].target.shape, steps[q].target.shape
    keys = set(jac)
    consumer = steps[c]
    if len(qshape) == 1 and len(cshape) == 1:
        m, n = cshape[0], qshape[0]
        full = {((k,), (i,)) for k in range(m) for i in range(n)}
        diag = {((i,), (i,)) for i in range(n)}
        if keys == full:
            M = _same_quantity([((k, i), v) for ((k,), (i,)), v in jac.items()], lambda pos: pos)
            if M is not None and steps[M].target.shape == (m, n):
                return Term(c, "transpose", M)
        if m == n and keys == diag:
            factors = tuple(jac[((i,), (i,))] for i in range(n))
            if all(f == 1 for f in factors):
                return Term(c, "identity")
            if isinstance(consumer, TimeActivation) and consumer.inputs == (q,):
                return Term(c, "derivative", consumer.activation, factors=factors)
            P = _same_quantity([(i, f) for i, f in enumerate(factors)], lambda pos: (pos,))
            if P is not None:
                return Term(c, "hadamard", P)
            return Term(c, "diag", factors=factors)
        for off in range(m - n + 1):
            if keys == {((off + i,), (i,)) for i in range(n)} and all(v == 1 for v in jac.values()):
                return Term(c, "select", offset=off)
    if len(qshape) == 2 and len(cshape) == 1 and cshape[0] == qshape[0]:
        rows, cols = qshape
        if keys == {((i,), (i, j)) for i in range(rows) for j in range(cols)}:
            v = _same_quantity([(j, jac[((i,), (i, j))]) for i in range(rows) for j in range(cols)],
                               lambda pos: (pos,))
            if v is not None and steps[v].target.shape == (cols,):
                return Term(c, "outer", v)
    if not qshape and not cshape and jac.get(((), ())) == 1:
        return Term(c, "identity")
    return Term(c, "chain")


# ----------------------------------------------------------------------------- the derivation

def derive_recurrent(r: Recurrent) -> Derivation:
    """Givens, the forward pass through time, the chain rule through time, and one update."""
    from derive.core.scalar import reverse_mode
    check_size(r)
    given = _given_steps(r)
    forward = _forward(r)
    leaves, nodes = _scalar_graph(given, forward)
    backward = _backward(reverse_mode(leaves, nodes, "loss", prefix="grad_"), given + forward)
    steps: list[Step] = given + forward + backward
    if r.learning_rate is not None:
        eta = symbol(LR)
        for name, shape in r.shapes().items():
            q = Quantity(name, shape)
            g = Quantity("grad_" + name, shape)
            steps.append(Update(Quantity(name + "_new", shape),
                                tuple(a - eta * b for a, b in zip(q.symbols(), g.symbols())), (name, LR, g.name),
                                param=name))
    aliases: list[tuple[str, str]] = []
    if not r.output:
        aliases += [(f"y{t}", f"h{t}") for t in r.loss_times]
    if r.cell == "elman":
        aliases += [(a, b) for a, b in DECK004_ALIASES if r.output or b != "W_hy"]
        if r.output:
            aliases += [(f"o{t}", f"y{t}") for t in r.loss_times]
    return Derivation(tuple(steps), "recurrent", tuple(aliases))
