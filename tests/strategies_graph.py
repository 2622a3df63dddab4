"""Random scalar graphs (``[graph]`` specs) and an independent mpmath oracle for them.

``graphs()`` draws straight-line code as a lecturer writes it: a few given values (some of them
parameters, some never read), nodes of the whitelisted operations (``+ − * /``, powers, the
elementary functions of ``derive/primitives.py`` and every scalar activation of its registry, with
or without their parameters), constants, names bound again (``c = c + c + 1``), ``max``/``min``/
``abs``/ReLU at their kinks (the values are drawn from a small pool, so ties and zeros are
common), and a ``[stated]`` table of numbers, some the true value rounded, some wrong.

The oracle never asks the engine: :func:`evaluate` walks the generated expression trees with
mpmath at 50 digits in forward mode (dual numbers), with the kink conventions documented in
docs/guide.md (ReLU'(0) = 0, leaky ReLU'(0) = α, ELU'(0) = α, |x|'(0) = 0, max(a, b) = b +
max(0, a − b) and min(a, b) = a − max(0, a − b) with max(0, u)'(0) = 0, sign and step flat).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mpmath
from hypothesis import strategies as st

from derive.core import primitives
from strategies import decimals

# every scalar activation of the registry and its parameters; the elementary functions
ACTIVATIONS = {n: a for n, a in primitives.ACTIVATIONS.items() if not a.vector}
FUNCTIONS = dict(primitives.FUNCTIONS)
POOL = ["0", "1", "-1", "2", "-2", "0.5", "-0.5", "1.5", "3", "3.14159265358979323846", "0.000001", "-12.5"]
NAMES = ["a", "b", "c", "d", "e", "f", "g", "u", "v", "w", "x1", "x2", "y", "z", "q", "s", "k"]


class Undefined(ArithmeticError):
    """The expression has no finite real value or derivative here (log 0, 1/0, √−1, √0')."""


@dataclass(frozen=True)
class GraphCase:
    toml: str
    values: tuple[tuple[str, str], ...]         # (name, decimal text)
    params: tuple[str, ...]
    nodes: tuple[tuple[str, tuple], ...]        # (the engine's node name: c, c_1, ...; expression tree)
    loss: str                                   # the engine's name of the loss node
    stated: tuple[tuple[str, str, bool], ...] = field(default=())   # (key, text, drawn as right)


# ----------------------------------------------------------------------------- the oracle

class Dual:
    """A value and its derivative along one direction, in mpmath."""

    __slots__ = ("v", "d")

    def __init__(self, v, d=0):
        self.v, self.d = mpmath.mpf(v), mpmath.mpf(d)


def _sigma(x):
    return 1 / (1 + mpmath.exp(-x))


def _chain(x: Dual, value, slope) -> Dual:
    return Dual(value, slope * x.d)


KINKS: list = []     # distances to a kink met while evaluating (|u| at ReLU, |a − b| at max, ...)


def _call(name: str, args: list[Dual], kw: dict) -> Dual:
    x = args[0]
    v = x.v
    if name in ("abs", "relu", "leaky_relu", "elu", "sign", "step"):
        KINKS.append(abs(v))
    if name in ("max", "min"):
        KINKS.append(abs(args[0].v - args[1].v))
    if name == "exp":
        e = mpmath.exp(v)
        return _chain(x, e, e)
    if name == "log":
        if v <= 0:
            raise Undefined("log of a number <= 0")
        return _chain(x, mpmath.log(v), 1 / v)
    if name == "sqrt":
        if v <= 0:                       # √0 has no derivative (and √ of a negative no real value)
            raise Undefined("sqrt at or below 0")
        r = mpmath.sqrt(v)
        return _chain(x, r, 1 / (2 * r))
    if name == "abs":
        return _chain(x, abs(v), mpmath.sign(v))
    if name == "sech":
        s = 2 / (mpmath.exp(v) + mpmath.exp(-v))
        return _chain(x, s, -s * mpmath.tanh(v))
    if name in ("max", "min"):
        a, b = args
        first = (a.v > b.v) == (name == "max")     # max: a if a > b else b; min: b if a > b else a
        return a if first else b
    alpha = kw.get("alpha", mpmath.mpf(dict(ACTIVATIONS[name].params).get("alpha", "0")))
    beta = kw.get("beta", mpmath.mpf(1))
    if name == "identity":
        return x
    if name == "sigmoid":
        s = _sigma(v)
        return _chain(x, s, s * (1 - s))
    if name == "tanh":
        t = mpmath.tanh(v)
        return _chain(x, t, 1 - t * t)
    if name == "relu":
        return _chain(x, v, 1) if v > 0 else _chain(x, 0, 0)
    if name == "leaky_relu":
        return _chain(x, v, 1) if v > 0 else _chain(x, alpha * v, alpha)
    if name == "elu":
        return _chain(x, v, 1) if v > 0 else _chain(x, alpha * (mpmath.exp(v) - 1), alpha * mpmath.exp(v))
    if name == "softplus":
        return _chain(x, mpmath.log(1 + mpmath.exp(v)), _sigma(v))
    if name == "swish":
        s = _sigma(beta * v)
        return _chain(x, v * s, s + beta * v * s * (1 - s))
    if name == "bipolar_sigmoid":
        y = (1 - mpmath.exp(-v)) / (1 + mpmath.exp(-v))
        return _chain(x, y, (1 - y * y) / 2)
    if name == "sign":
        return Dual(1 if v >= 0 else -1, 0)
    if name == "step":
        return Dual(1 if v >= 0 else 0, 0)
    raise AssertionError(f"no oracle for {name}")


def _eval(tree, env: dict) -> Dual:
    op = tree[0]
    if op == "num":
        return Dual(mpmath.mpf(tree[1]))
    if op == "ref":
        return env[tree[1]]
    if op == "neg":
        x = _eval(tree[1], env)
        return Dual(-x.v, -x.d)
    if op == "call":
        args = [_eval(a, env) for a in tree[2]]
        return _call(tree[1], args, {k: mpmath.mpf(v) for k, v in tree[3]})
    if op == "pow":
        x, k = _eval(tree[1], env), tree[2]
        if x.v == 0 and k < 1:
            raise Undefined("0 to a power below 1")
        if k != int(k) and x.v < 0:
            raise Undefined("a fractional power of a negative number")
        return Dual(x.v ** k, k * x.v ** (k - 1) * x.d)
    a, b = _eval(tree[1], env), _eval(tree[2], env)
    if op == "add":
        return Dual(a.v + b.v, a.d + b.d)
    if op == "sub":
        return Dual(a.v - b.v, a.d - b.d)
    if op == "mul":
        return Dual(a.v * b.v, a.d * b.v + a.v * b.d)
    if op == "div":
        if b.v == 0:
            raise Undefined("division by zero")
        return Dual(a.v / b.v, (a.d * b.v - a.v * b.d) / (b.v * b.v))
    raise AssertionError(op)


def evaluate(case: GraphCase, seed: str | None = None) -> dict[str, mpmath.mpf]:
    """Every node's value and (``seed``: the derivative along that value) at 50 digits, by the
    straight-line code itself.  Raises :class:`Undefined` where a node has no finite real value or
    derivative; only nodes up to the loss count (later ones are never evaluated by the engine's
    backward pass, but their values are)."""
    if any(v == "symbol" for _, v in case.values):
        raise Undefined("a value is a symbol")
    with mpmath.workdps(50):
        KINKS.clear()
        env = {n: Dual(mpmath.mpf(v), 1 if n == seed else 0) for n, v in case.values}
        for name, tree in case.nodes:
            env[name] = _eval(tree, env)
            if abs(env[name].v) > mpmath.mpf(10) ** 60 or abs(env[name].d) > mpmath.mpf(10) ** 60:
                raise Undefined("beyond the sizes this suite compares")
        return env


def oracle(case: GraphCase) -> tuple[dict, dict]:
    """({node or value: value}, {value name: ∂loss/∂value}); raises Undefined."""
    base = evaluate(case)
    kink = min(KINKS, default=mpmath.inf)
    values = {n: d.v for n, d in base.items()}
    grads = {}
    for n, _ in case.values:
        grads[n] = evaluate(case, seed=n)[case.loss].d
    KINKS[:] = [kink]
    return values, grads


def kink_distance() -> float:
    """After :func:`oracle`: how far the nearest kink was (0: a kink met exactly)."""
    return float(min(KINKS, default=mpmath.inf))


# ----------------------------------------------------------------------------- text

def text(tree, top: bool = True) -> str:
    op = tree[0]
    if op == "num":
        return tree[1] if not tree[1].startswith("-") or top else f"({tree[1]})"
    if op == "ref":
        return tree[2]
    if op == "neg":
        return f"-{text(tree[1], False)}" if top else f"(-{text(tree[1], False)})"
    if op == "call":
        args = [text(a) for a in tree[2]] + [f"{k}={v}" for k, v in tree[3]]
        return f"{tree[1]}({', '.join(args)})"
    if op == "pow":
        k = tree[2]
        exp = str(int(k)) if k == int(k) else "0.5"
        body = f"{text(tree[1], False)}**{exp if k >= 0 else '(' + exp + ')'}"
        return body if top else f"({body})"
    sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
    body = f"{text(tree[1], False)} {sym} {text(tree[2], False)}"
    return body if top else f"({body})"


# ----------------------------------------------------------------------------- the strategy

@st.composite
def _expr(draw, scope: list[tuple[str, str]], depth: int):
    """An expression tree over ``scope`` ((engine name, name as written) pairs now in force)."""
    ref = st.sampled_from(scope).map(lambda p: ("ref", p[0], p[1]))
    const = st.sampled_from(POOL + ["0.25", "10", "-3"]).map(lambda c: ("num", c))
    if depth <= 0:
        return draw(st.one_of(ref, ref, const))
    kind = draw(st.sampled_from(["leaf", "bin", "bin", "pow", "neg", "fn", "act", "kink"]))
    sub = _expr(scope, depth - 1)
    if kind == "leaf":
        return draw(st.one_of(ref, const))
    if kind == "bin":
        return (draw(st.sampled_from(["add", "sub", "mul", "div"])), draw(sub), draw(sub))
    if kind == "pow":
        return ("pow", draw(sub), draw(st.sampled_from([2, 3, -1, -2, 0.5, 1, 5, -3])))
    if kind == "neg":
        return ("neg", draw(sub))
    if kind == "fn":
        name = draw(st.sampled_from(["exp", "log", "sqrt", "abs", "sech", "max", "min"]))
        return ("call", name, tuple(draw(sub) for _ in range(FUNCTIONS[name].arity)), ())
    if kind == "act":
        name = draw(st.sampled_from(sorted(ACTIVATIONS)))
        kw = tuple((k, draw(decimals(1, 150))) for k, _ in ACTIVATIONS[name].params if draw(st.booleans()))
        return ("call", name, (draw(sub),), kw)
    # a kink met exactly: max/min of a value and itself, |u − u|, ReLU-like of u − u
    u = draw(sub)
    name = draw(st.sampled_from(["max", "min", "abs", "relu", "leaky_relu", "elu", "sign", "step"]))
    if name in ("max", "min"):
        return ("call", name, (u, u), ())
    return ("call", name, (("sub", u, u),), ())


def _round(v, places: int) -> str:
    with mpmath.workdps(50):
        q = mpmath.nint(v * 10 ** places)
        n = int(q)
    sign, n = ("-" if n < 0 else ""), abs(n)
    return f"{sign}{n // 10 ** places}.{n % 10 ** places:0{places}d}" if places else f"{sign}{n}"


@st.composite
def graphs(draw, stated: bool = True) -> GraphCase:
    n_values = draw(st.integers(1, 4))
    names = draw(st.permutations(NAMES))
    value_names = names[:n_values]
    # now and then a value left as a symbol: a graph without numbers (refused by solve, in one line)
    values = tuple((n, "symbol" if draw(st.integers(0, 15)) == 0 else draw(st.sampled_from(POOL) | decimals(-300, 300)))
                   for n in value_names)
    params = tuple(n for n in value_names if draw(st.booleans())) or (value_names[0],)
    # the names a node may bind: fresh ones, or one already bound (a rebinding)
    fresh = list(names[n_values:])
    scope = {n: n for n in value_names}          # name as written → engine name now in force
    count: dict[str, int] = {}
    nodes, written = [], []
    for _ in range(draw(st.integers(1, 6))):
        pairs = [(scope[w], w) for w in scope]
        tree = draw(_expr(pairs, draw(st.integers(0, 3))))
        if written and draw(st.integers(0, 3)) == 0:          # bind a node's name again
            lhs = draw(st.sampled_from([w for _, w, _ in written]))
        else:
            lhs = fresh.pop(0)
        if lhs in count:
            count[lhs] += 1
            engine = f"{lhs}_{count[lhs]}"
        else:
            count[lhs], engine = 0, lhs
        nodes.append((engine, tree))
        written.append((engine, lhs, text(tree)))
        scope[lhs] = engine
    # the loss: the last node (default), or an earlier one named in `loss` (later nodes unused)
    loss_at = len(nodes) - 1 if draw(st.booleans()) else draw(st.integers(0, len(nodes) - 1))
    loss_written = written[loss_at][1]
    # a `loss` naming a rebound name means its latest binding, so name only a latest one
    latest = {w: e for e, w, _ in written}
    if latest[loss_written] != nodes[loss_at][0]:
        loss_at = len(nodes) - 1
    loss = nodes[loss_at][0]
    lines = ["[meta]", 'title = "a generated graph"', "", "[graph]",
             "values = { " + ", ".join(f'{n} = "{v}"' for n, v in values) + " }",
             "params = [" + ", ".join(f'"{p}"' for p in params) + "]",
             "nodes = ["] + [f'  "{w} = {t}",' for _, w, t in written] + ["]"]
    if loss_at != len(nodes) - 1 or draw(st.booleans()):
        lines.append(f'loss = "{written[loss_at][1]}"')
    case = GraphCase("", values, params, tuple(nodes), loss)
    said = ()
    if stated and draw(st.booleans()):
        said = _stated(draw, case)
        if said:
            lines += ["", "[stated]"] + [f'{k} = "{t}"' for k, t, _ in said]
    return GraphCase("\n".join(lines) + "\n", values, params, tuple(nodes), loss, said)


def _stated(draw, case: GraphCase) -> tuple:
    """Some node values and gradients, printed right (rounded) or wrong (off by 2–9 units of the
    last place); none when the oracle has no value."""
    try:
        values, grads = oracle(case)
    except Undefined:
        return ()
    keys = [n for n, _ in case.nodes[: [n for n, _ in case.nodes].index(case.loss) + 1]]
    keys += [f"grad_{n}" for n, _ in case.values]
    true = {**values, **{f"grad_{n}": g for n, g in grads.items()}}
    out = []
    for key in draw(st.lists(st.sampled_from(keys), min_size=1, max_size=4, unique=True)):
        if abs(true[key]) > 1e6:
            continue
        places = draw(st.integers(0, 4))
        right = draw(st.booleans())
        v = true[key]
        if not right:
            v += draw(st.sampled_from([2, 5, 9, -2, -3, -7])) * mpmath.mpf(10) ** -places
        out.append((key, _round(v, places), right))
    return tuple(out)
