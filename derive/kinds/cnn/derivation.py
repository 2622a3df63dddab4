"""Convolutional networks as a problem kind: the ``[cnn]`` spec table, its steps and its derivation.

A ``[cnn]`` spec is a stack of layers on one 2-D input map (one channel): ``conv2d`` (a 2-D
cross-correlation, or with ``mode = "convolution"`` a true convolution, which flips the kernel;
stride and zero padding), ``activation`` (any element-wise activation of the registry), ``maxpool``
and ``avgpool``, ``flatten`` (row-major, as ``torch.flatten``) and ``dense`` (``u = W f + b``).

The forward pass is written element by element, one :class:`~derive.core.steps.Step` per quantity.  The
backward pass is *derived*: every element becomes a scalar node of :mod:`derive.core.scalar` and
:func:`derive.kinds.network.derivation.reverse_mode` applies the chain rule node by node (each local derivative by
``sympy.diff``, or by the registry's output form for an activation).  The chain-rule expressions are
then grouped back into one step per gradient quantity, and the familiar closed forms are *proved*
equal to them when the step is built (:func:`_prove`): the gradient with respect to a layer's input
is the full correlation of the output gradient with the kernel rotated by 180°, the kernel gradient
is the correlation of the layer's input with the output gradient.  A proof that fails is an engine
error, never a silent fallback.

Quantities (``k`` counts the layers of one type, from 1; the full list is in ``docs/cnn.md``):
``x`` input map, ``pad{k}`` zero-padded input of conv ``k``, ``K{k}`` kernel, ``c{k}`` conv bias,
``K{k}_flip`` the kernel rotated by 180°, ``conv{k}`` conv output, ``act{k}`` activation output,
``dact{k}`` its local derivative, ``pool{k}`` pooled map, ``flat{k}`` flattened vector, ``W{k}``,
``b{k}``, ``fc{k}`` dense layer; ``t`` target, ``upstream`` the given output gradient, ``loss``;
``shape_pad{k}``, ``shape_conv{k}``, ``shape_pool{k}`` output sizes by the formula
⌊(L + 2P − K)/S⌋ + 1; gradients ``grad_<name>``; ``grad_conv{k}_dil`` (stride > 1) and
``grad_conv{k}_full`` (the output gradient spread to stride spacing and zero-padded by kernel − 1);
``<param>_new`` after one gradient step.  ``y`` is the last layer's output.

Max pooling selects the *first* maximum of each window in row-major order (PyTorch's rule), and its
gradient goes to that element only; average pooling spreads it evenly over the window.  ReLU'(0) =
0, as everywhere in the registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sympy as sp

from derive.core import primitives
from derive.core.steps import LR
from derive.core.scalar import reverse_mode
from derive.core.scalar import Leaf, ScalarNode, _VectorNode
from derive.core.maps import correlate, dilate, rot180, window_starts, zero_pad
from derive.kinds.cnn.spec import Act, Cnn, Conv2d, Dense, Flatten, Layer, Pool, output_size, prove_output_size
from derive.core.steps import ChainRule, Derivation, Given, LossValue, Quantity, Seed, Step, Update, symbol

TIE_RULE = "the first maximum of the window in row-major order (as PyTorch)"

Expr = sp.Expr
Shape = tuple[int, ...]


# ----------------------------------------------------------------------------- the problem


# ----------------------------------------------------------------------------- sizes


# ----------------------------------------------------------------------------- spec reading


# ----------------------------------------------------------------------------- steps: forward

@dataclass(frozen=True)
class ZeroPad(Step):
    """The input of a conv layer surrounded by ``padding`` rings of zeros."""

    layer: int = 0
    padding: tuple[int, int] = (0, 0)
    rule: ClassVar[str] = "zero_padding"


@dataclass(frozen=True)
class FlipKernel(Step):
    """The kernel rotated by 180° (rows and columns reversed): what a true convolution correlates with,
    and what the input gradient of a cross-correlation is correlated with."""

    layer: int = 0
    rule: ClassVar[str] = "flip"


@dataclass(frozen=True)
class Conv2D(Step):
    """z_ij = Σ_u Σ_v k_uv p_{iS+u, jS+v} + c, with ``kernel`` the quantity correlated with
    (the kernel itself, or for ``mode = 'convolution'`` the kernel rotated by 180°)."""

    layer: int = 0
    source: str = ""          # the (padded) map read
    kernel: str = ""          # the quantity correlated with
    stride: tuple[int, int] = (1, 1)
    mode: str = "cross_correlation"
    rule: ClassVar[str] = "conv2d"


@dataclass(frozen=True)
class OutputShape(Step):
    """The size of a map by L_out = ⌊(L_in + 2P − K)/S⌋ + 1 (per dimension); the padded size L_in + 2P
    when ``kernel`` is 0.  ``dims`` holds (L_in, P, K, S) per dimension, ``proof`` the symbolic proof."""

    layer: int = 0
    dims: tuple[tuple[int, int, int, int], ...] = ()
    proof: str = ""
    rule: ClassVar[str] = "output_size"


@dataclass(frozen=True)
class MapActivation(Step):
    """a = g(z), element by element, on a map or a vector (softmax: on a vector)."""

    layer: int = 0
    activation: str = "identity"
    params: tuple[tuple[str, Expr], ...] = ()
    rule: ClassVar[str] = "activation"


@dataclass(frozen=True)
class MaxPool(Step):
    """s_ij = the maximum of window (i, j); a Piecewise selecting the first maximum in row-major order."""

    layer: int = 0
    size: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    windows: tuple[tuple[str, ...], ...] = ()   # per output element, the names of its window's elements
    rule: ClassVar[str] = "max_pool"


@dataclass(frozen=True)
class AvgPool(Step):
    """s_ij = the mean of window (i, j)."""

    layer: int = 0
    size: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    rule: ClassVar[str] = "avg_pool"


@dataclass(frozen=True)
class Flat(Step):
    """f = the map's elements in row-major order."""

    layer: int = 0
    rule: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class FullyConnected(Step):
    """u = W f + b."""

    layer: int = 0
    rule: ClassVar[str] = "dense"


@dataclass(frozen=True)
class Objective(Step):
    """L = Σ g ⊙ y for a given output gradient G = ∂L/∂y (no loss given): the backward pass of G."""

    rule: ClassVar[str] = "objective"


# ----------------------------------------------------------------------------- steps: backward

@dataclass(frozen=True)
class CnnGradient(Step):
    """A gradient derived by the chain rule; ``terms`` per element: ((consumer, ∂consumer/∂element), ...)."""

    layer: int = 0
    of: str = ""
    terms: tuple[tuple[tuple[str, Expr], ...], ...] = ()
    rule: ClassVar[str] = "chain_rule"


@dataclass(frozen=True)
class CnnOutputGradient(CnnGradient):
    """∂L/∂y: the derivative of the loss, or the given output gradient."""

    loss: str = ""
    rule: ClassVar[str] = "output_gradient"


@dataclass(frozen=True)
class ActivationDerivative(Step):
    """g'(z) element by element (the Jacobian ∂a/∂z for softmax), as the chain rule's local derivatives."""

    layer: int = 0
    activation: str = "identity"
    form: str = "output"
    rule: ClassVar[str] = "local_derivative"


@dataclass(frozen=True)
class ActivationGradient(CnnGradient):
    """∂L/∂z = ∂L/∂a ⊙ g'(z) (or (∂a/∂z)ᵀ ∂L/∂a for softmax)."""

    derivative: str = ""
    rule: ClassVar[str] = "activation_gradient"


@dataclass(frozen=True)
class SpreadGradient(Step):
    """The output gradient of a conv layer spread to stride spacing (``dilate``) and/or zero-padded by
    kernel − 1 on every side (``pad``): the map the full correlation reads."""

    layer: int = 0
    dilation: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    rule: ClassVar[str] = "spread_gradient"


@dataclass(frozen=True)
class ConvInputGradient(CnnGradient):
    """∂L/∂P: derived by the chain rule, proved equal to ``spread ⋆ kernel``, the full correlation of the
    output gradient with the forward kernel rotated by 180° (``kernel`` names that rotated kernel)."""

    spread: str = ""
    kernel: str = ""
    proof: str = ""
    rule: ClassVar[str] = "conv_input_gradient"


@dataclass(frozen=True)
class ConvKernelGradient(CnnGradient):
    """∂L/∂K: derived by the chain rule, proved equal to ``source ⋆ grad`` (the layer's input correlated
    with the output gradient at stride spacing), restricted to the kernel's size."""

    source: str = ""
    grad: str = ""
    proof: str = ""
    rule: ClassVar[str] = "conv_kernel_gradient"


@dataclass(frozen=True)
class FlipGradient(CnnGradient):
    """∂L/∂K for a true convolution: the gradient of the rotated kernel, rotated back."""

    rule: ClassVar[str] = "flip_gradient"


@dataclass(frozen=True)
class ConvBiasGradient(CnnGradient):
    """∂L/∂c = Σ_ij ∂L/∂z_ij (the bias is shared by every position)."""

    rule: ClassVar[str] = "conv_bias_gradient"


@dataclass(frozen=True)
class CropGradient(CnnGradient):
    """∂L/∂X: the gradient of the padded map without its padding rings."""

    padding: tuple[int, int] = (0, 0)
    rule: ClassVar[str] = "crop_gradient"


@dataclass(frozen=True)
class MaxPoolGradient(CnnGradient):
    """∂L/∂a: the pooled gradient routed to the selected maximum of each window, 0 elsewhere."""

    rule: ClassVar[str] = "max_pool_gradient"


@dataclass(frozen=True)
class AvgPoolGradient(CnnGradient):
    """∂L/∂a: the pooled gradient spread evenly over each window."""

    size: tuple[int, int] = (2, 2)
    rule: ClassVar[str] = "avg_pool_gradient"


@dataclass(frozen=True)
class UnflattenGradient(CnnGradient):
    """∂L/∂S: the gradient of the flattened vector put back into the map's shape."""

    rule: ClassVar[str] = "unflatten_gradient"


@dataclass(frozen=True)
class DenseInputGradient(CnnGradient):
    """∂L/∂f = Wᵀ ∂L/∂u."""

    rule: ClassVar[str] = "dense_input_gradient"


@dataclass(frozen=True)
class DenseWeightGradient(CnnGradient):
    """∂L/∂W = ∂L/∂u fᵀ."""

    rule: ClassVar[str] = "dense_weight_gradient"


@dataclass(frozen=True)
class DenseBiasGradient(CnnGradient):
    """∂L/∂b = ∂L/∂u."""

    rule: ClassVar[str] = "dense_bias_gradient"


FORWARD = (ZeroPad, FlipKernel, Conv2D, OutputShape, MapActivation, MaxPool, AvgPool, Flat, FullyConnected, Objective)


# ----------------------------------------------------------------------------- map helpers

def grid(name: str, shape: Shape) -> list[list[sp.Symbol]]:
    """The element symbols of a 2-D quantity as rows."""
    return [[symbol(name, (i, j)) for j in range(shape[1])] for i in range(shape[0])]


# ----------------------------------------------------------------------------- the derivation

def _flat(rows: list[list[Expr]]) -> tuple[Expr, ...]:
    return tuple(v for row in rows for v in row)


def _max_piecewise(elements: list[Expr]) -> Expr:
    """max of ``elements``, selecting the first maximum in their order: branch k is taken when
    e_k ≥ every later element (and no earlier branch was taken, i.e. every earlier one is smaller)."""
    if len(elements) == 1:
        return elements[0]
    # built unevaluated: SymPy would otherwise ask its assumptions about every comparison of symbols
    ge = lambda a, b: sp.GreaterThan(a, b, evaluate=False)
    branches = [(e, sp.And(*[ge(e, later) for later in elements[k + 1:]], evaluate=False))
                for k, e in enumerate(elements[:-1])]
    return sp.Piecewise(*branches, (elements[-1], True), evaluate=False)


def _derivative(expr: Expr, arg: sp.Symbol) -> Expr:
    """∂expr/∂arg by ``sympy.diff``, term by term: only the terms that contain ``arg`` are differentiated
    (the others give 0), and a Piecewise branch by branch (its conditions are locally constant), built
    without SymPy's simplification of the branches.  The same derivative as ``sympy.diff(expr, arg)``, which
    the tests check, at a fraction of the cost on the long sums of a convolution."""
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*[(_derivative(e, arg), c) for e, c in expr.args], evaluate=False)
    return sp.Add(*[_term_derivative(t, arg) for t in sp.Add.make_args(expr) if arg in t.free_symbols])


def _term_derivative(term: Expr, arg: sp.Symbol) -> Expr:
    """d(c·arg)/d arg = c for a monomial linear in ``arg`` (most terms here: k_uv · p_ij); else ``sympy.diff``."""
    coeff, rest = term.as_independent(arg, as_Add=False)
    return coeff if rest == arg else sp.diff(term, arg)


@dataclass(frozen=True)
class _MapNode(ScalarNode):
    """A scalar node of a padding, convolution, pooling, flatten or dense layer."""

    def local(self, arg: sp.Symbol) -> Expr:
        return _derivative(self.expr, arg)


class _Builder:
    """Forward steps with their scalar nodes, then the backward steps grouped from the chain rule."""

    def __init__(self, net: Cnn):
        self.net = net
        self.steps: list[Step] = []
        self.leaves: list[Leaf] = []
        self.nodes: list[ScalarNode] = []
        self.shapes: dict[str, Shape] = {}
        self.layers: list[tuple[Layer, int, str, str, dict, int]] = []   # (layer, k, input, output, names, position)
        self.params: list[str] = []
        self.definitions: dict = {}    # helper quantities (flipped kernels, spread gradients) for the proofs

    # -- quantities
    def given(self, name: str, shape: Shape, values, role: str) -> None:
        q = Quantity(name, shape)
        exprs = tuple(q.symbols()) if values is None else tuple(values)
        self.steps.append(Given(q, exprs, (), role=role))
        self.shapes[name] = shape
        for sym, v in zip(q.symbols(), exprs):
            self.leaves.append(Leaf(sym.name, None if values is None else v, role))
        if role == "param":
            self.params.append(name)

    def forward(self, step: Step, op: str, params=(), vector: bool = False) -> None:
        self.steps.append(step)
        self.shapes[step.name] = step.target.shape
        node = _VectorNode if vector else ScalarNode if op in primitives.ACTIVATIONS else _MapNode
        for sym, expr in step.items():
            self.nodes.append(node(sym.name, expr, op, tuple(params)))

    # -- the forward pass
    def build_forward(self) -> str:
        net = self.net
        self.given("x", net.input_shape, None if net.input is None else _flat([list(r) for r in net.input]), "input")
        if net.loss:
            self.given("t", net.output_shape, net.target, "target")
        else:
            self.given("upstream", net.output_shape, net.upstream, "input")
        counters: dict[str, int] = {}
        current = "x"
        for i, layer in enumerate(net.stack):
            key = "pool" if isinstance(layer, Pool) else layer.kind
            k = counters[key] = counters.get(key, 0) + 1
            before = current
            current, names = getattr(self, "_" + layer.kind)(layer, k, current, i + 1)
            self.layers.append((layer, k, before, current, names, i + 1))
        if net.learning_rate is not None:
            self.steps.append(Given(Quantity(LR), (net.learning_rate,), (), role="hyper"))
        ys = Quantity(current, self.shapes[current]).symbols()
        if net.loss:
            ts = Quantity("t", self.shapes["t"]).symbols()
            expr = primitives.LOSSES[net.loss].define(list(ys), list(ts))
            self.forward(LossValue(Quantity("loss"), (expr,), (current, "t"), loss=net.loss), "loss")
        else:
            gs = Quantity("upstream", self.shapes["upstream"]).symbols()
            expr = sp.Add(*[g * y for g, y in zip(gs, ys)])
            self.forward(Objective(Quantity("loss"), (expr,), ("upstream", current)), "objective")
        return current

    def _conv2d(self, layer: Conv2d, k: int, src: str, position: int):
        shape = self.shapes[src]
        names = {"K": f"K{k}", "c": f"c{k}", "flip": f"K{k}_flip", "conv": f"conv{k}", "source": src}
        self.given(names["K"], layer.size, None if layer.kernel is None else _flat([list(r) for r in layer.kernel]),
                   "param")
        if layer.has_bias:
            self.given(names["c"], (), None if layer.bias is None else (layer.bias,), "param")
        source = src
        if layer.padding != (0, 0):
            padded = zero_pad(grid(src, shape), layer.padding)
            source = names["pad"] = f"pad{k}"
            self.forward(ZeroPad(Quantity(source, (len(padded), len(padded[0]))), _flat(padded), (src,),
                                 layer=position, padding=layer.padding), "zero_padding")
            dims = tuple((shape[d], layer.padding[d], 0, 1) for d in range(2))
            self.shape_step(f"shape_pad{k}", position, dims, (len(padded), len(padded[0])))
        kernel = names["K"]
        if layer.mode == "convolution":
            self.forward(self.flip_step(names["K"], names["flip"], position), "flip")
            kernel = names["flip"]
        out = correlate(grid(source, self.shapes[source]), grid(kernel, layer.size), layer.stride)
        bias = symbol(names["c"]) if layer.has_bias else 0
        inputs = (source, kernel) + ((names["c"],) if layer.has_bias else ())
        self.forward(Conv2D(Quantity(names["conv"], (len(out), len(out[0]))), tuple(e + bias for e in _flat(out)),
                            inputs, layer=position, source=source, kernel=kernel, stride=layer.stride,
                            mode=layer.mode), "conv2d")
        dims = tuple((shape[d], layer.padding[d], layer.size[d], layer.stride[d]) for d in range(2))
        self.shape_step(f"shape_conv{k}", position, dims, (len(out), len(out[0])))
        return names["conv"], names

    def flip_step(self, kernel: str, name: str, position: int) -> FlipKernel:
        shape = self.shapes[kernel]
        self.shapes[name] = shape
        q = Quantity(name, shape)
        exprs = _flat(rot180(grid(kernel, shape)))
        self.definitions.update(zip(q.symbols(), exprs))
        return FlipKernel(q, exprs, (kernel,), layer=position)

    def shape_step(self, name: str, position: int, dims, actual: tuple[int, int]) -> None:
        """The size by the slide's formula, checked against the windows the layer actually has."""
        sizes = tuple(L + 2 * P if K == 0 else output_size(L, K, S, P) for L, P, K, S in dims)
        if sizes != actual:
            raise ArithmeticError(f"{name}: the formula gives {sizes}, the layer has {actual}")
        proof = prove_output_size()
        if proof is None:
            raise ArithmeticError("the output-size formula could not be proved")
        self.steps.append(OutputShape(Quantity(name, (2,)), tuple(sp.Integer(s) for s in sizes), (),
                                      layer=position, dims=dims, proof=proof))
        self.shapes[name] = (2,)

    def _activation(self, layer: Act, k: int, src: str, position: int):
        ref = layer.activation
        act = primitives.ACTIVATIONS[ref.name]
        q = Quantity(f"act{k}", self.shapes[src])
        zs = Quantity(src, self.shapes[src]).symbols()
        exprs = act.define(list(zs)) if act.vector else [act.define(z, **ref.kwargs) for z in zs]
        self.forward(MapActivation(q, tuple(exprs), (src,), layer=position, activation=ref.name, params=ref.params),
                     ref.name, ref.params, vector=act.vector)
        return q.name, {"act": q.name, "source": src}

    def _pool(self, layer: Pool, k: int, src: str, position: int):
        shape = self.shapes[src]
        rows = grid(src, shape)
        windows = []
        for i in window_starts(shape[0], layer.size[0], layer.stride[0]):
            for j in window_starts(shape[1], layer.size[1], layer.stride[1]):
                windows.append([rows[i + u][j + v] for u in range(layer.size[0]) for v in range(layer.size[1])])
        out = tuple(len(window_starts(shape[d], layer.size[d], layer.stride[d])) for d in range(2))
        q = Quantity(f"pool{k}", out)
        if layer.op == "max":
            step = MaxPool(q, tuple(_max_piecewise(w) for w in windows), (src,), layer=position, size=layer.size,
                           stride=layer.stride, windows=tuple(tuple(s.name for s in w) for w in windows))
            self.forward(step, "max_pool")
        else:
            n = layer.size[0] * layer.size[1]
            self.forward(AvgPool(q, tuple(sp.Add(*w) / n for w in windows), (src,), layer=position,
                                 size=layer.size, stride=layer.stride), "avg_pool")
        dims = tuple((shape[d], 0, layer.size[d], layer.stride[d]) for d in range(2))
        self.shape_step(f"shape_pool{k}", position, dims, out)
        return q.name, {"pool": q.name, "source": src}

    def _flatten(self, layer: Flatten, k: int, src: str, position: int):
        syms = Quantity(src, self.shapes[src]).symbols()
        q = Quantity(f"flat{k}", (len(syms),))
        self.forward(Flat(q, tuple(syms), (src,), layer=position), "flatten")
        return q.name, {"flat": q.name, "source": src}

    def _dense(self, layer: Dense, k: int, src: str, position: int):
        m = self.shapes[src][0]
        names = {"W": f"W{k}", "b": f"b{k}", "fc": f"fc{k}", "source": src}
        self.given(names["W"], (layer.size, m), None if layer.weights is None else
                   _flat([list(r) for r in layer.weights]), "param")
        if layer.has_bias:
            self.given(names["b"], (layer.size,), layer.bias, "param")
        W, f = grid(names["W"], (layer.size, m)), Quantity(src, (m,)).symbols()
        exprs = tuple(sp.Add(*[W[i][j] * f[j] for j in range(m)]) + (symbol(names["b"], (i,)) if layer.has_bias else 0)
                      for i in range(layer.size))
        inputs = (names["W"], src) + ((names["b"],) if layer.has_bias else ())
        self.forward(FullyConnected(Quantity(names["fc"], (layer.size,)), exprs, inputs, layer=position), "affine")
        return names["fc"], names

    # -- the backward pass
    def build_backward(self, out: str) -> None:
        derived = reverse_mode(self.leaves, self.nodes, "loss", prefix="grad_")
        rules = {s.name: s for s in derived if isinstance(s, ChainRule)}
        self.steps += [s for s in derived if isinstance(s, Seed)]       # ∂L/∂L = 1, where the chain rule starts
        seed = symbol("grad_loss")
        self.rules = {name: (r.exprs[0].xreplace({seed: sp.S.One}),
                             tuple((c, local) for c, local in r.terms)) for name, r in rules.items()}
        loss = self.net.loss or "objective"
        self.gradient(CnnOutputGradient, out, len(self.layers), loss=loss)
        for layer, k, src, dst, names, position in reversed(self.layers):
            getattr(self, "_back_" + layer.kind)(layer, k, src, dst, names, position)

    def chain(self, name: str) -> tuple[tuple[Expr, ...], tuple, tuple[str, ...]]:
        """(expressions, terms, inputs) of the gradient of quantity ``name``, from the chain rule."""
        q = Quantity(name, self.shapes[name])
        exprs, terms = [], []
        for sym in q.symbols():
            e, t = self.rules["grad_" + sym.name]
            exprs.append(e)
            terms.append(t)
        return tuple(exprs), tuple(terms), _inputs(exprs)

    def gradient(self, cls, of: str, position: int, exprs=None, inputs=None, **kw) -> Step:
        derived, terms, reads = self.chain(of)
        step = cls(Quantity("grad_" + of, self.shapes[of]), derived if exprs is None else exprs,
                   reads if inputs is None else inputs, layer=position, of=of, terms=terms, **kw)
        self.steps.append(step)
        self.shapes[step.name] = step.target.shape
        return step

    def _back_conv2d(self, layer: Conv2d, k, src, dst, names, position):
        g = "grad_" + dst
        gshape = self.shapes[g]
        source = names.get("pad", src)
        kh, kw = layer.size
        spread_from = g
        if layer.stride != (1, 1):
            dil = dilate(grid(g, gshape), layer.stride)
            spread_from = f"{g}_dil"
            self.spread(spread_from, dil, (g,), position, layer.stride, (0, 0))
        full = zero_pad(grid(spread_from, self.shapes[spread_from]), (kh - 1, kw - 1))
        self.spread(f"{g}_full", full, (spread_from,), position, (1, 1), (kh - 1, kw - 1))
        if layer.mode == "convolution":
            rotated = names["K"]               # rot180 of the flipped kernel the forward pass used
        else:
            self.steps.append(self.flip_step(names["K"], names["flip"], position))
            rotated = names["flip"]
        derived, terms, reads = self.chain(source)
        formula = correlate(self.unfolded(f"{g}_full"), self.unfolded(rotated))
        proof = self.prove(derived, formula, self.shapes[source], f"∂L/∂{source}")
        self.steps.append(ConvInputGradient(Quantity("grad_" + source, self.shapes[source]), derived, reads,
                                            layer=position, of=source, terms=terms, spread=f"{g}_full",
                                            kernel=rotated, proof=proof))
        self.shapes["grad_" + source] = self.shapes[source]
        kernel = names["flip"] if layer.mode == "convolution" else names["K"]
        derived, terms, reads = self.chain(kernel)
        formula = correlate(grid(source, self.shapes[source]), self.unfolded(spread_from))
        formula = [row[:kw] for row in formula[:kh]]
        proof = self.prove(derived, formula, layer.size, f"∂L/∂{kernel}")
        self.steps.append(ConvKernelGradient(Quantity("grad_" + kernel, layer.size), derived, reads, layer=position,
                                             of=kernel, terms=terms, source=source, grad=spread_from, proof=proof))
        self.shapes["grad_" + kernel] = layer.size
        if layer.mode == "convolution":
            self.gradient(FlipGradient, names["K"], position)
        if layer.has_bias:
            self.gradient(ConvBiasGradient, names["c"], position)
        if source != src:
            self.gradient(CropGradient, src, position, padding=layer.padding)

    def spread(self, name: str, rows, inputs, position, dilation, pad) -> None:
        q = Quantity(name, (len(rows), len(rows[0])))
        self.steps.append(SpreadGradient(q, _flat(rows), inputs, layer=position, dilation=dilation, pad=pad))
        self.shapes[name] = q.shape
        self.definitions.update(zip(q.symbols(), (e.xreplace(self.definitions) for e in _flat(rows))))

    def unfolded(self, name: str) -> list[list[Expr]]:
        """A helper quantity's elements as their definitions (a rotated kernel, a spread gradient)."""
        return [[self.definitions.get(s, s) for s in row] for row in grid(name, self.shapes[name])]

    def prove(self, derived, formula, shape: Shape, what: str) -> str:
        """The chain rule's expressions equal the closed form (zero beyond the formula's extent)."""
        for idx, d in zip(Quantity("_", shape).indices(), derived):
            i, j = idx
            f = formula[i][j] if i < len(formula) and j < len(formula[0]) else sp.Integer(0)
            if sp.expand(d.xreplace(self.definitions) - f.xreplace(self.definitions)) != 0:
                raise ArithmeticError(f"{what}[{i},{j}]: the chain rule gives {d}, the closed form {f}")
        return "expansion"

    def _back_activation(self, layer: Act, k, src, dst, names, position):
        act = primitives.ACTIVATIONS[layer.activation.name]
        derived, terms, reads = self.chain(src)
        n = Quantity(src, self.shapes[src]).size
        d = f"dact{k}"
        if act.vector:
            # terms of z_i: (a_j, ∂a_j/∂z_i) for every j: the Jacobian J[j][i]
            jac = [[sp.Integer(0)] * n for _ in range(n)]
            index = {s.name: j for j, s in enumerate(Quantity(dst, self.shapes[dst]).symbols())}
            for i, element_terms in enumerate(terms):
                for c, local in element_terms:
                    jac[index[c]][i] = local
            dq = Quantity(d, (n, n))
            self.steps.append(ActivationDerivative(dq, tuple(v for row in jac for v in row), (dst,), layer=position,
                                                   activation=act.name, form="output"))
            grads = Quantity("grad_" + dst, (n,)).symbols()
            exprs = tuple(sp.Add(*[grads[j] * dq.symbol((j, i)) for j in range(n)]) for i in range(n))
        else:
            locals_ = tuple(t[0][1] for t in terms)
            form = "output" if act.from_output is not None else "input"
            dq = Quantity(d, self.shapes[src])
            self.steps.append(ActivationDerivative(dq, locals_, _inputs(locals_), layer=position,
                                                   activation=act.name, form=form))
            grads = Quantity("grad_" + dst, self.shapes[src]).symbols()
            exprs = tuple(gr * s for gr, s in zip(grads, dq.symbols()))
        self.shapes[d] = dq.shape
        defs = dict(zip(dq.symbols(), self.steps[-1].exprs))
        for e, want in zip(exprs, derived):
            if sp.expand(e.xreplace(defs) - want) != 0:
                raise ArithmeticError(f"∂L/∂{src}: g'(z) ⊙ ∂L/∂a differs from the chain rule")
        self.gradient(ActivationGradient, src, position, exprs=exprs, inputs=("grad_" + dst, d), derivative=d)

    def _back_pool(self, layer: Pool, k, src, dst, names, position):
        if layer.op == "max":
            self.gradient(MaxPoolGradient, src, position)
        else:
            self.gradient(AvgPoolGradient, src, position, size=layer.size)

    def _back_flatten(self, layer, k, src, dst, names, position):
        self.gradient(UnflattenGradient, src, position)

    def _back_dense(self, layer: Dense, k, src, dst, names, position):
        self.gradient(DenseWeightGradient, names["W"], position)
        if layer.has_bias:
            self.gradient(DenseBiasGradient, names["b"], position)
        self.gradient(DenseInputGradient, src, position)

    def build_updates(self) -> None:
        if self.net.learning_rate is None:
            return
        eta = symbol(LR)
        for p in self.params:
            q = Quantity(p, self.shapes[p])
            g = Quantity("grad_" + p, q.shape)
            self.steps.append(Update(Quantity(p + "_new", q.shape),
                                     tuple(a - eta * b for a, b in zip(q.symbols(), g.symbols())),
                                     (p, LR, g.name), param=p))


def _inputs(exprs) -> tuple[str, ...]:
    names = []
    for e in exprs:
        for s in sorted(e.free_symbols, key=lambda s: s.name):
            base = s.name.split("[")[0]
            if base not in names:
                names.append(base)
    return tuple(names)


def derive_cnn(net: Cnn) -> Derivation:
    """The forward pass, the chain rule grouped into gradient steps (closed forms proved), updates."""
    b = _Builder(net)
    out = b.build_forward()
    b.build_backward(out)
    b.build_updates()
    aliases = (("y", out), ("grad_y", "grad_" + out))
    return Derivation(tuple(b.steps), "cnn", aliases)
