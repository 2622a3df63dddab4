"""Backpropagation derived from the graph, as a tuple of steps.

Two forms, which the tests prove equal:

* element-wise (:func:`reverse_mode`): the chain rule on scalar nodes,
  ``∂L/∂v = Σ_c ∂L/∂c · ∂c/∂v`` over the consumers ``c`` of ``v`` (slide 001's ``δ5``);
* matrix (:func:`derive_network`): ``δ^L = ∇_y L ⊙ g'(z^L)``,
  ``δ^l = (W^{l+1 T} δ^{l+1}) ⊙ g'(z^l)``, ``∂L/∂W^l = δ^l h^{l−1 T}``, ``∂L/∂b^l = δ^l``.

Every local derivative comes from ``sympy.diff`` or from the registry's output form (proved
equal to diff in the tests).  SymPy's ``MatrixSymbol.diff`` is not used: it is wrong for
network losses (sympy issues #27406, #26585); matrices here are explicit element symbols.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import sympy as sp

from derive.core import primitives
from derive.core.errors import SpecError
from derive.core.scalar import Leaf, ScalarNode, _given, _VectorNode, reverse_mode
from derive.kinds.network.spec import MAX_EXACT_PARAMS, Network
from derive.core.steps import (ELEMENTWISE, LR, Activate, Affine, BackError, BatchMean, BiasGradient, DeltaHidden,
    DeltaOutput, Derivation, Given, LocalDerivative, LossValue, Node, OutputGradient, Quantity,
    Probabilities, Recompute, SoftmaxCrossEntropy, Step, Update, WeightGradient, symbol, vector_symbols)

PROBABILITIES = "p"     # softmax of the logits under softmax_cross_entropy
SUM_ONE = r"\sum_i t_i = 1"


# ----------------------------------------------------------------------------- element-wise form


def derive_elementwise(net: Network) -> Derivation:
    """The network as scalar nodes, differentiated node by node (the per-weight chain rule)."""
    check_size(net)
    leaves, nodes = network_nodes(net)
    steps: list[Step] = [_given(leaf) for leaf in leaves]
    steps += [Node(Quantity(n.name), (n.expr,), tuple(s.name for s in n.args()), op=n.op,
                   args=tuple(s.name for s in n.args()), params=n.params) for n in nodes]
    steps += reverse_mode(leaves, nodes, "loss", prefix=ELEMENTWISE)
    return Derivation(tuple(steps), "elementwise")


# ----------------------------------------------------------------------------- matrix form


def _given_vector(name: str, values, n: int, role: str) -> Given:
    q = Quantity(name, (n,))
    exprs = tuple(q.symbols()) if values is None else tuple(values)
    return Given(q, exprs, (), role=role)


def _given_matrix(name: str, values, rows: int, cols: int) -> Given:
    q = Quantity(name, (rows, cols))
    exprs = tuple(q.symbols()) if values is None else tuple(v for row in values for v in row)
    return Given(q, exprs, (), role="param")


@lru_cache(maxsize=64)
def _softmax_ce_identity(n: int) -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...]]:
    """Jᵀ ∇_y L for softmax + cross-entropy, expanded; proved equal to y − t when Σ t = 1.

    Returns (expanded product, simplified).  Raises if the identity fails (it cannot, but the
    engine proves rather than assumes it).
    """
    y, t = vector_symbols("y", n), vector_symbols("t", n)
    jac = primitives.ACTIVATIONS["softmax"].jacobian_from_output(y)
    grad = [sp.diff(primitives.LOSSES["cross_entropy"].define(y, t), v) for v in y]
    expanded = tuple(sp.expand(sp.Add(*[jac[j][i] * grad[j] for j in range(n)])) for i in range(n))
    simplified = tuple(y[i] - t[i] for i in range(n))
    last = {t[-1]: 1 - sp.Add(*t[:-1])}
    for e, s in zip(expanded, simplified):
        if sp.expand((e - s).xreplace(last)) != 0:
            raise ArithmeticError("softmax cross-entropy identity failed")
    return expanded, simplified


@lru_cache(maxsize=64)
def _logit_gradient(loss: str, n: int) -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...]] | None:
    """(diff form, simplified form) of ∂L/∂y for a loss on logits, the latter proved under Σ t = 1."""
    entry = primitives.LOSSES[loss]
    if entry.grad_sum_one is None:
        return None
    y, t = vector_symbols("y", n), vector_symbols("t", n)
    raw = tuple(sp.diff(entry.define(y, t), v) for v in y)
    simple = tuple(entry.grad_sum_one(y, t))
    last = {t[-1]: 1 - sp.Add(*t[:-1])}
    for r, s in zip(raw, simple):
        d = (r - s).xreplace(last)
        # expanded, the terms cancel one by one (cheap at any width); only a form that expanding
        # does not settle is put over one denominator (which costs seconds per output at 40 outputs)
        if sp.expand(d) != 0 and sp.cancel(sp.together(d)) != 0:
            raise ArithmeticError(f"{loss}: simplified gradient does not match diff")
    return raw, simple


def _sums_to_one(values) -> bool:
    return values is None or sp.Add(*values) == 1


def check_size(net: Network) -> None:
    """The exact engine writes every weight out as a symbol: refuse networks too large for that."""
    if net.param_count > MAX_EXACT_PARAMS:
        raise SpecError("network", f"{net.param_count} parameters is too many for the exact engine "
                                   f"(at most {MAX_EXACT_PARAMS}); the kernels handle large networks")


def _updates(net: Network, steps: list[Step]) -> list[Step]:
    """θ_new = θ − η ∂L/∂θ for every weight matrix and bias vector."""
    eta, out = symbol(LR), []
    for l, layer in enumerate(net.layers, start=1):
        names = [f"W{l}"] + ([f"b{l}"] if layer.bias != () else [])
        for p in names:
            q = next(s.target for s in steps if s.name == p)
            g = Quantity("grad_" + p, q.shape)
            out.append(Update(Quantity(p + "_new", q.shape),
                              tuple(a - eta * b for a, b in zip(q.symbols(), g.symbols())),
                              (p, LR, g.name), param=p))
    return out


def loss_gradient(expr: sp.Expr, ys) -> tuple[sp.Expr, ...]:
    """``(∂expr/∂y for y in ys)``, the same expressions as ``sp.diff`` gives, but each derivative
    only looks at the terms of the sum that hold its ``y``: a loss over 1 000 outputs costs
    1 000 small derivatives instead of 1 000 derivatives of a 1 000-term sum."""
    coeff, rest = expr.as_coeff_Mul()
    wanted = set(ys)
    holding: dict = {}
    for term in sp.Add.make_args(rest):
        for y in term.free_symbols & wanted:
            holding.setdefault(y, []).append(term)
    return tuple(sp.diff(coeff * sp.Add(*holding.get(y, ())), y) for y in ys)


def derive_network(net: Network, recompute: bool = True) -> Derivation:
    """The matrix-form derivation of a layered network (column vectors, W of shape (out, in))."""
    if net.samples:
        return derive_batch(net, recompute)
    if net.param_count > MAX_EXACT_PARAMS:      # wide layers: the layer-level derivation in index form
        from derive.kinds.network.wide import derive_wide
        return derive_wide(net)
    L = len(net.layers)
    sizes = net.sizes
    steps: list[Step] = [_given_vector("x", net.input, sizes[0], "input"),
                         _given_vector("t", net.target, sizes[-1], "target")]
    for l, layer in enumerate(net.layers, start=1):
        steps.append(_given_matrix(f"W{l}", layer.weights, layer.size, sizes[l - 1]))
        if layer.bias != ():
            steps.append(_given_vector(f"b{l}", layer.bias, layer.size, "param"))
    if net.learning_rate is not None:
        steps.append(Given(Quantity(LR), (net.learning_rate,), (), role="hyper"))
    steps += _forward(net, "")
    h_name = lambda l: "x" if l == 0 else f"h{l}"
    y, t = vector_symbols(f"h{L}", sizes[-1]), vector_symbols("t", sizes[-1])

    # output gradient ∇_y L
    loss = primitives.LOSSES[net.loss]
    raw = loss_gradient(loss.define(y, t), y)
    grad_y, assumption, raw_kept = raw, None, None
    pair = _logit_gradient(net.loss, sizes[-1]) if loss.grad_sum_one else None
    if pair is not None and _sums_to_one(net.target):
        ren = dict(zip(vector_symbols("y", sizes[-1]) + vector_symbols("t", sizes[-1]), y + t))
        grad_y = tuple(e.xreplace(ren) for e in pair[1])
        raw_kept, assumption = raw, SUM_ONE
    steps.append(OutputGradient(Quantity("grad_y", (sizes[-1],)), grad_y, (f"h{L}", "t"), loss=net.loss,
                                raw=raw_kept, assumption=assumption))

    # local derivatives, deltas, gradients, from the top layer down
    for l in range(L, 0, -1):
        layer = net.layers[l - 1]
        act = primitives.ACTIVATIONS[layer.activation.name]
        n = layer.size
        z, h = vector_symbols(f"z{l}", n), vector_symbols(f"h{l}", n)
        if act.vector:
            jac = act.jacobian_from_output(h)
            steps.append(LocalDerivative(Quantity(f"gprime{l}", (n, n)), tuple(v for row in jac for v in row),
                                         (f"h{l}",), layer=l, activation=act.name, form="output"))
        elif act.from_output is not None:
            steps.append(LocalDerivative(Quantity(f"gprime{l}", (n,)),
                                         tuple(act.from_output(hi, **layer.activation.kwargs) for hi in h),
                                         (f"h{l}",), layer=l, activation=act.name, form="output"))
        else:
            d = primitives.derivative(act.name, layer.activation.kwargs)
            steps.append(LocalDerivative(Quantity(f"gprime{l}", (n,)),
                                         tuple(d.xreplace({primitives.X: zi}) for zi in z),
                                         (f"z{l}",), layer=l, activation=act.name, form="input"))
        gp = Quantity(f"gprime{l}", (n, n) if act.vector else (n,))
        upstream = "grad_y" if l == L else f"grad_h{l}"
        g = vector_symbols(upstream, n)
        delta_cls = DeltaOutput if l == L else DeltaHidden
        if act.vector:
            product = tuple(sp.Add(*[gp.symbol((j, i)) * g[j] for j in range(n)]) for i in range(n))
            if l == L and net.loss == "cross_entropy" and _sums_to_one(net.target):
                expanded, simple = _softmax_ce_identity(n)
                ren = dict(zip(vector_symbols("y", n) + vector_symbols("t", n), h + t))
                steps.append(SoftmaxCrossEntropy(
                    Quantity(f"delta{l}", (n,)), tuple(e.xreplace(ren) for e in simple), (f"h{l}", "t"),
                    layer=l, raw=product, expanded=tuple(e.xreplace(ren) for e in expanded), assumption=SUM_ONE))
            else:
                steps.append(delta_cls(Quantity(f"delta{l}", (n,)), product, (gp.name, upstream),
                                       layer=l, jacobian=True))
        else:
            steps.append(delta_cls(Quantity(f"delta{l}", (n,)), tuple(g[i] * gp.symbol((i,)) for i in range(n)),
                                   (upstream, gp.name), layer=l))
        delta = vector_symbols(f"delta{l}", n)
        prev = vector_symbols(h_name(l - 1), sizes[l - 1])
        steps.append(WeightGradient(Quantity(f"grad_W{l}", (n, sizes[l - 1])),
                                    tuple(delta[i] * prev[j] for i in range(n) for j in range(sizes[l - 1])),
                                    (f"delta{l}", h_name(l - 1)), layer=l))
        if layer.bias != ():
            steps.append(BiasGradient(Quantity(f"grad_b{l}", (n,)), tuple(delta), (f"delta{l}",), layer=l))
        if l > 1:
            W = Quantity(f"W{l}", (n, sizes[l - 1]))
            steps.append(BackError(Quantity(f"grad_h{l - 1}", (sizes[l - 1],)),
                                   tuple(sp.Add(*[W.symbol((i, j)) * delta[i] for i in range(n)])
                                         for j in range(sizes[l - 1])),
                                   (f"W{l}", f"delta{l}"), layer=l - 1))

    # one gradient-descent step, then the forward pass again with the new parameters
    if net.learning_rate is not None:
        steps += _updates(net, steps)
        if recompute:
            steps += _forward(net, "_new")
    aliases = [("y", f"h{L}"), ("h0", "x"), (f"grad_h{L}", "grad_y")] + \
              [(f"grad_z{l}", f"delta{l}") for l in range(1, L + 1)]
    if recompute and net.learning_rate is not None:
        aliases.append(("y_new", f"h{L}_new"))
    return Derivation(tuple(steps), "network", tuple(aliases))


# ----------------------------------------------------------------------------- mini-batches

def sample_name(name: str, k: int) -> str:
    """The name of quantity ``name`` of sample ``k`` (counted from 1) of a mini-batch: ``z1_s2``."""
    return f"{name}_s{k}"


def _shared_names(net: Network) -> set[str]:
    """The quantities every sample of a mini-batch shares: parameters, updated parameters, η."""
    names = {LR}
    for l, layer in enumerate(net.layers, start=1):
        for p in [f"W{l}"] + ([f"b{l}"] if layer.bias != () else []):
            names |= {p, p + "_new"}
    return names


class _SampleRenamer:
    """Renames a one-sample derivation's steps to sample ``k``'s names, leaving shared ones alone."""

    def __init__(self, k: int, shared: set[str]):
        self.k, self.shared, self.cache = k, shared, {}

    def name(self, name: str) -> str:
        return name if name in self.shared else sample_name(name, self.k)

    def sym(self, s: sp.Symbol) -> sp.Symbol:
        if s not in self.cache:
            base, _, rest = s.name.partition("[")
            self.cache[s] = s if base in self.shared else sp.Symbol(self.name(base) + ("[" + rest if rest else ""),
                                                                    real=True)
        return self.cache[s]

    def expr(self, e: sp.Expr) -> sp.Expr:
        return e.xreplace({s: self.sym(s) for s in e.free_symbols})

    def step(self, step: Step) -> Step:
        changes = {"target": Quantity(self.name(step.name), step.target.shape),
                   "exprs": tuple(self.expr(e) for e in step.exprs),
                   "inputs": tuple(self.name(n) for n in step.inputs)}
        if getattr(step, "of", ""):
            changes["of"] = self.name(step.of)
        for key in ("raw", "expanded"):
            if getattr(step, key, None):
                changes[key] = tuple(self.expr(e) for e in getattr(step, key))
        return replace(step, **changes)


def _mean(name: str, shape: tuple[int, ...], m: int) -> BatchMean:
    q = Quantity(name, shape)
    exprs = tuple(sp.Rational(1, m) * sp.Add(*[symbol(sample_name(name, k), idx) for k in range(1, m + 1)])
                  for idx in q.indices())
    return BatchMean(q, exprs, tuple(sample_name(name, k) for k in range(1, m + 1)), of=name)


def derive_batch(net: Network, recompute: bool = True) -> Derivation:
    """A mini-batch: each sample's derivation under its own names (``z1_s2``), then the means.

    The loss is the mean of the samples' losses, L = (1/m) Σ_k L^(k), so its gradients are the
    means of theirs; the update uses the means, and the forward pass is recomputed per sample.
    """
    m = len(net.samples)
    check_size(net)
    if net.param_count * m > MAX_EXACT_PARAMS:
        raise SpecError("network.input", f"{m} samples of {net.param_count} parameters is too much for the exact "
                                         f"engine (at most {MAX_EXACT_PARAMS} parameter-samples)")
    shared = _shared_names(net)
    ones = [replace(net, input=x, target=t, samples=(), learning_rate=None) for x, t in net.samples]
    single = [derive_network(one, recompute=False) for one in ones]
    steps: list[Step] = [s for s in single[0].steps if isinstance(s, Given) and s.name in shared]
    if net.learning_rate is not None:
        steps.append(Given(Quantity(LR), (net.learning_rate,), (), role="hyper"))
    aliases: list[tuple[str, str]] = []
    for k, d in enumerate(single, start=1):
        ren = _SampleRenamer(k, shared)
        steps += [ren.step(s) for s in d.steps if s.name not in shared]
        aliases += [(ren.name(a), ren.name(b)) for a, b in d.aliases]
    means = ["loss"] + [n for l in range(1, len(net.layers) + 1)
                        for n in (f"delta{l}", f"grad_W{l}", f"grad_b{l}") if n in single[0]]
    steps += [_mean(n, single[0].quantity(n).shape, m) for n in means]
    aliases += [(f"grad_z{l}", f"delta{l}") for l in range(1, len(net.layers) + 1)]
    if net.learning_rate is not None:
        steps += _updates(net, steps)
        if recompute:
            for k, one in enumerate(ones, start=1):
                ren = _SampleRenamer(k, shared)
                steps += [ren.step(s) for s in _forward(one, "_new")]
                aliases.append((sample_name("y_new", k), sample_name(f"h{len(net.layers)}_new", k)))
            steps.append(_mean("loss_new", (), m))
    return Derivation(tuple(steps), "network", tuple(aliases))


def _forward(net: Network, suffix: str) -> list[Step]:
    """z^l = W^l h^{l−1} + b^l, h^l = g(z^l), L = loss(y, t); ``suffix='_new'`` uses updated parameters."""
    steps: list[Step] = []
    sizes = net.sizes
    kind = Affine if not suffix else None
    prev_name = "x"
    for l, layer in enumerate(net.layers, start=1):
        n, m = layer.size, sizes[l - 1]
        W = Quantity(f"W{l}{suffix}", (n, m))
        prev = vector_symbols(prev_name, m)
        exprs = []
        for i in range(n):
            e = sp.Add(*[W.symbol((i, j)) * prev[j] for j in range(m)])
            if layer.bias != ():
                e += symbol(f"b{l}{suffix}", (i,))
            exprs.append(e)
        inputs = (W.name, prev_name) + ((f"b{l}{suffix}",) if layer.bias != () else ())
        z = Quantity(f"z{l}{suffix}", (n,))
        act = primitives.ACTIVATIONS[layer.activation.name]
        zs = z.symbols()
        hs = act.define(list(zs)) if act.vector else [act.define(v, **layer.activation.kwargs) for v in zs]
        h = Quantity(f"h{l}{suffix}", (n,))
        if kind is Affine:
            steps.append(Affine(z, tuple(exprs), inputs, layer=l))
            steps.append(Activate(h, tuple(hs), (z.name,), layer=l, activation=act.name,
                                  params=layer.activation.params))
        else:
            steps.append(Recompute(z, tuple(exprs), inputs, of=f"z{l}"))
            steps.append(Recompute(h, tuple(hs), (z.name,), of=f"h{l}"))
        prev_name = h.name
    y = vector_symbols(prev_name, sizes[-1])
    if not suffix and net.loss == "softmax_cross_entropy":
        steps.append(Probabilities(Quantity(PROBABILITIES, (sizes[-1],)), tuple(primitives.ACTIVATIONS["softmax"].define(y)),
                                   (prev_name,)))
    expr = primitives.LOSSES[net.loss].define(y, vector_symbols("t", sizes[-1]))
    loss = Quantity("loss" + suffix)
    steps.append(LossValue(loss, (expr,), (prev_name, "t"), loss=net.loss) if not suffix
                 else Recompute(loss, (expr,), (prev_name, "t"), of="loss"))
    return steps


def network_nodes(net: Network) -> tuple[list[Leaf], list[ScalarNode]]:
    """The network written out as scalar nodes z^l_i, h^l_i and the loss (the element-wise form)."""
    leaves: list[Leaf] = []

    def leaf(name, index, value, role):
        sym = symbol(name, index)
        leaves.append(Leaf(sym.name, value, role))
        return sym

    h = [leaf("x", (i,), None if net.input is None else net.input[i], "input") for i in range(net.input_size)]
    nodes: list[ScalarNode] = []
    for l, layer in enumerate(net.layers, start=1):
        z = []
        for i in range(layer.size):
            total = sp.Add(*[leaf(f"W{l}", (i, j), None if layer.weights is None else layer.weights[i][j], "param") * h[j]
                             for j in range(len(h))])
            if layer.bias != ():
                total += leaf(f"b{l}", (i,), None if layer.bias is None else layer.bias[i], "param")
            name = symbol(f"z{l}", (i,)).name
            nodes.append(ScalarNode(name, total, "affine"))
            z.append(symbol(f"z{l}", (i,)))
        act = primitives.ACTIVATIONS[layer.activation.name]
        params = layer.activation.params
        if act.vector:
            outs = act.define(z)
        else:
            outs = [act.define(zi, **dict(params)) for zi in z]
        h = []
        for i, out in enumerate(outs):
            name = symbol(f"h{l}", (i,)).name
            nodes.append(_VectorNode(name, out, layer.activation.name, params) if act.vector
                         else ScalarNode(name, out, layer.activation.name, params))
            h.append(symbol(f"h{l}", (i,)))
    t = [leaf("t", (i,), None if net.target is None else net.target[i], "target") for i in range(len(h))]
    nodes.append(ScalarNode("loss", primitives.LOSSES[net.loss].define(h, t), "loss"))
    return leaves, nodes
