"""Independent oracles: the same mathematics written again with NumPy floats and mpmath.

Nothing here imports the engine's derivation, evaluation or SymPy.  Spec files are read with
``tomllib`` directly.  The activations, losses and their textbook derivatives are typed out
here from the textbook formulas, so an error in the registry or in ``diff`` would show up as a
disagreement.

The 2-2-2 network (``net222``, mpmath at 50 digits) and the 3-3-3-3 MLP (``mlp3333``, NumPy float64)
are written out by hand, with deliberate mistakes on request: tests build answer files from them
and expect the checker's verdicts to follow from the arithmetic.  ``central_difference`` is the
one finite-difference helper of the suite.
"""
from __future__ import annotations

import ast
import re
import tomllib
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np

# ----------------------------------------------------------------------------- printed numbers


def stated_value(text: str) -> tuple[float, float]:
    """(value, half unit in the last place) of a printed number such as '0.0470' or '0.34 - 1'."""
    text = str(text).replace("\u2212", "-")
    parts = text.replace(" ", "").replace("+", " +").replace("-", " -").split()
    values = [Decimal(p) for p in parts]
    decimals = max(-v.as_tuple().exponent for v in values)
    return float(sum(values)), 0.5 * 10.0 ** (-decimals)


def allowed_verdicts(stated: str, true: float, carried: float | None, tie: float = 1e-9) -> set[str]:
    """The verdicts consistent with float arithmetic; a value within ``tie`` of the rounding
    boundary may go either way (the engine decides such ties exactly)."""
    s, half = stated_value(stated)

    def status(v):
        gap = abs(s - v) - half
        return "tie" if abs(gap) <= tie * max(1.0, abs(s)) else ("in" if gap < 0 else "out")

    e = status(true)
    c = status(carried) if carried is not None else "out"
    out = set()
    if e in ("in", "tie"):
        out.add("exact")
    if e in ("out", "tie"):
        if c in ("in", "tie"):
            out.add("carried")
        if c in ("out", "tie"):
            out.add("wrong")
    return out


# ----------------------------------------------------------------------------- activations

def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


# name -> (g(z), g'(z) from z and h)  -- textbook formulas
ACT = {
    "identity": (lambda z, p: z, lambda z, h, p: np.ones_like(z)),
    "sigmoid": (lambda z, p: _sigmoid(z), lambda z, h, p: h * (1 - h)),
    "tanh": (lambda z, p: np.tanh(z), lambda z, h, p: 1 - h**2),
    "relu": (lambda z, p: np.maximum(z, 0), lambda z, h, p: (z > 0).astype(float)),
    "leaky_relu": (lambda z, p: np.where(z > 0, z, p.get("alpha", 0.01) * z),
                   lambda z, h, p: np.where(z > 0, 1.0, p.get("alpha", 0.01))),
    "elu": (lambda z, p: np.where(z > 0, z, p.get("alpha", 1.0) * (np.exp(z) - 1)),
            lambda z, h, p: np.where(z > 0, 1.0, p.get("alpha", 1.0) * np.exp(z))),
    "softplus": (lambda z, p: np.log1p(np.exp(z)), lambda z, h, p: _sigmoid(z)),
    "swish": (lambda z, p: z * _sigmoid(p.get("beta", 1.0) * z),
              lambda z, h, p: _sigmoid(p.get("beta", 1.0) * z)
              + p.get("beta", 1.0) * z * _sigmoid(p.get("beta", 1.0) * z) * (1 - _sigmoid(p.get("beta", 1.0) * z))),
    "bipolar_sigmoid": (lambda z, p: (1 - np.exp(-z)) / (1 + np.exp(-z)), lambda z, h, p: (1 - h**2) / 2),
}


def _act(spec) -> tuple[str, dict]:
    if isinstance(spec, str):
        return spec, {}
    return spec["name"], {k: float(v) for k, v in spec.items() if k != "name"}


# ----------------------------------------------------------------------------- the network oracle

def _losses(y, t):
    """name -> (loss, ∂loss/∂y) for one sample, textbook formulas."""
    n = len(y)
    sm = np.exp(y - y.max()) / np.exp(y - y.max()).sum()
    return {
        "half_sse": (0.5 * np.sum((y - t) ** 2), y - t),
        "mse": (np.mean((y - t) ** 2), 2 * (y - t) / n),
        "mae": (np.mean(np.abs(y - t)), np.sign(y - t) / n),
        "bce": (-np.mean(t * np.log(y) + (1 - t) * np.log(1 - y)), (y - t) / (y * (1 - y)) / n),
        "cross_entropy": (-np.sum(t * np.log(y)), -t / y),
        "softmax_cross_entropy": (-np.sum(t * np.log(sm)), sm * t.sum() - t),
    }


def network_values(data: dict, stated: dict | None = None) -> dict[str, np.ndarray]:
    """Every quantity of a layered network spec, computed with floats.

    With ``stated`` (name -> array with NaN where nothing was printed), each quantity is
    recomputed from the stated values of its inputs where they were printed: the "carried"
    recomputation, written independently of the engine.
    """
    net = data["network"]
    stated = stated or {}
    out: dict[str, np.ndarray] = {}

    def use(name):
        v = np.array(out[name], dtype=float)
        if name in stated:
            mask = ~np.isnan(stated[name])
            v[mask] = stated[name][mask]
        return v

    f = lambda a: np.array([[float(c) for c in r] for r in a]) if isinstance(a[0], list) else np.array([float(c) for c in a])
    out["x"] = f(net["input"])
    t = f(net["target"])
    layers = net["layer"]
    L = len(layers)
    prev = "x"
    for l, layer in enumerate(layers, start=1):
        out[f"W{l}"] = f(layer["weights"])
        out[f"b{l}"] = f(layer["bias"]) if "bias" in layer else np.zeros(len(layer["weights"]))
        name, p = _act(layer["activation"])
        out[f"z{l}"] = out[f"W{l}"] @ use(prev) + out[f"b{l}"]
        out[f"h{l}"] = ACT[name][0](use(f"z{l}"), p)
        prev = f"h{l}"
    out["loss"], out["grad_y"] = _losses(use(f"h{L}"), t)[net["loss"]]
    out["loss"] = np.array(out["loss"])
    for l in range(L, 0, -1):
        name, p = _act(layers[l - 1]["activation"])
        out[f"gprime{l}"] = ACT[name][1](use(f"z{l}"), use(f"h{l}"), p)
        upstream = "grad_y" if l == L else f"grad_h{l}"
        out[f"delta{l}"] = use(upstream) * use(f"gprime{l}")
        before = "x" if l == 1 else f"h{l - 1}"
        out[f"grad_W{l}"] = np.outer(use(f"delta{l}"), use(before))
        out[f"grad_b{l}"] = use(f"delta{l}")
        if l > 1:
            out[f"grad_h{l - 1}"] = out[f"W{l}"].T @ use(f"delta{l}")
    lr = float(net.get("learning_rate", "0"))
    for l in range(1, L + 1):
        out[f"W{l}_new"] = out[f"W{l}"] - lr * use(f"grad_W{l}")
        out[f"b{l}_new"] = out[f"b{l}"] - lr * use(f"grad_b{l}")
    out["y"] = out[f"h{L}"]
    return out


# ----------------------------------------------------------------------------- mpmath activations and losses
# (the random-network and recurrent tests' references)

def mp_sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


MP_ACTIVATIONS = {
    "identity": lambda x, p: x, "sigmoid": lambda x, p: mp_sigmoid(x), "tanh": lambda x, p: mpmath.tanh(x),
    "relu": lambda x, p: max(x, 0), "leaky_relu": lambda x, p: x if x > 0 else p["alpha"] * x,
    "elu": lambda x, p: x if x > 0 else p["alpha"] * (mpmath.exp(x) - 1),
    "softplus": lambda x, p: mpmath.log(1 + mpmath.exp(x)), "swish": lambda x, p: x * mp_sigmoid(p.get("beta", 1) * x),
    "bipolar_sigmoid": lambda x, p: (1 - mpmath.exp(-x)) / (1 + mpmath.exp(-x)),
    "sign": lambda x, p: 1 if x >= 0 else -1, "step": lambda x, p: 1 if x >= 0 else 0,
}


def mp_loss_of(name, y, t):
    n = len(y)
    if name == "half_sse":
        return sum((a - b) ** 2 for a, b in zip(y, t)) / 2
    if name == "mse":
        return sum((a - b) ** 2 for a, b in zip(y, t)) / n
    if name == "mae":
        return sum(abs(a - b) for a, b in zip(y, t)) / n
    if name == "bce":
        return -sum(b * mpmath.log(a) + (1 - b) * mpmath.log(1 - a) for a, b in zip(y, t)) / n
    if name == "cross_entropy":
        return -sum(b * mpmath.log(a) for a, b in zip(y, t))
    if name == "softmax_cross_entropy":
        lse = mpmath.log(sum(mpmath.exp(a) for a in y))
        return -sum(b * (a - lse) for a, b in zip(y, t))
    if name == "hinge":
        c = max(range(n), key=lambda i: t[i])
        return sum(max(0, y[j] - y[c] + 1) for j in range(n) if j != c)
    raise KeyError(name)


# ----------------------------------------------------------------------------- the graph oracle

mpmath.mp.dps = 50

_MP = {"exp": mpmath.exp, "log": mpmath.log, "sqrt": mpmath.sqrt, "abs": abs,
       "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)), "tanh": mpmath.tanh}


def _mp_eval(node: ast.AST, env: dict):
    """Arithmetic on mpf numbers over an AST (our own bundled files only)."""
    if isinstance(node, ast.Expression):
        return _mp_eval(node.body, env)
    if isinstance(node, ast.Constant):
        return mpmath.mpf(str(node.value))
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        return -_mp_eval(node.operand, env)
    if isinstance(node, ast.BinOp):
        a, b = _mp_eval(node.left, env), _mp_eval(node.right, env)
        return {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                ast.Div: lambda: a / b, ast.Pow: lambda: a**b}[type(node.op)]()
    if isinstance(node, ast.Call):
        return _MP[node.func.id](*[_mp_eval(a, env) for a in node.args])
    raise ValueError(ast.dump(node))


def _mp_value(text: str):
    return _mp_eval(ast.parse(text, mode="eval"), {})


def graph_values(data: dict, stated: dict | None = None) -> dict[str, mpmath.mpf]:
    """Values and gradients of a scalar-graph spec in 50-digit arithmetic.

    Local derivatives come from mpmath's numerical differentiation of each node's expression,
    except for a node ``sigmoid(a)``, whose local derivative is written with its output
    ``o(1 − o)`` (so that a stated ``o`` feeds the carried recomputation, as the slides do).
    With ``stated`` (name -> mpf), quantities are recomputed from stated inputs.
    """
    g = data["graph"]
    stated = stated or {}
    out: dict[str, mpmath.mpf] = {}
    use = lambda n: stated.get(n, out[n])
    for name, text in g["values"].items():
        out[name] = _mp_value(str(text))
    nodes = []
    for text in g["nodes"]:
        lhs, rhs = (s.strip() for s in text.split("="))
        tree = ast.parse(rhs, mode="eval")
        args = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in _MP})
        nodes.append((lhs, tree, args, rhs))
        out[lhs] = _mp_eval(tree, {a: use(a) for a in args})
    loss = g.get("loss", nodes[-1][0])
    order = [n[0] for n in nodes]
    nodes = nodes[: order.index(loss) + 1]
    out["grad_" + loss] = mpmath.mpf(1)
    names = [n[0] for n in nodes[:-1]][::-1] + list(g["values"])
    for name in names:
        total = mpmath.mpf(0)
        for c, tree, args, rhs in nodes:
            if name not in args:
                continue
            if rhs.replace(" ", "") == f"sigmoid({name})":
                local = use(c) * (1 - use(c))
            else:
                env = {a: use(a) for a in args}

                def f(v, env=env, tree=tree):
                    return _mp_eval(tree, {**env, name: v})
                local = mpmath.diff(f, env[name])
            total += use("grad_" + c) * local
        out["grad_" + name] = total
    lr = mpmath.mpf(str(g.get("learning_rate", "0")))
    for p in g.get("params", []):
        out[p + "_new"] = out[p] - lr * use("grad_" + p)
    new = {p: use(p + "_new") for p in g.get("params", [])}
    env = {n: out[n] for n in g["values"]}
    env.update(new)
    for name, tree, args, _ in nodes:
        out[name + "_new"] = _mp_eval(tree, {a: (stated.get(a + "_new", env[a]) if a in new or a in order
                                                   else env[a]) for a in args})
        env[name] = out[name + "_new"]
    return out


def load(path: Path) -> dict:
    return tomllib.loads(Path(path).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- the CNN oracle

def _num(text) -> Fraction:
    return Fraction(str(text))


def _pair(v, default=None):
    if v is None:
        v = default
    return (int(v[0]), int(v[1])) if isinstance(v, list) else (int(v), int(v))


def cnn_layers(data: dict) -> list[dict]:
    """The [[cnn.layer]] tables with every default filled in (stride, padding, pool stride, bias)."""
    out = []
    for raw in data["cnn"]["layer"]:
        layer = dict(raw)
        kind = layer["type"]
        if kind == "conv2d":
            layer["stride"] = _pair(raw.get("stride", 1))
            layer["padding"] = _pair(raw.get("padding", 0))
            layer.setdefault("mode", "cross_correlation")
        elif kind in ("maxpool", "avgpool"):
            layer["size"] = _pair(raw["size"])
            layer["stride"] = _pair(raw.get("stride"), raw["size"])
        out.append(layer)
    return out


def _windows(shape, size, stride):
    """Top-left corners of the windows, row by row (textbook: while the window fits)."""
    rows = [i for i in range(0, shape[0]) if i + size[0] <= shape[0] and i % stride[0] == 0]
    cols = [j for j in range(0, shape[1]) if j + size[1] <= shape[1] and j % stride[1] == 0]
    return rows, cols


def cnn_values(data: dict, stated: dict | None = None) -> dict[str, np.ndarray]:
    """Every quantity of a [cnn] spec with NumPy floats: the forward pass, then the backward pass in the
    textbook scatter form (each output's gradient added back onto its window), not the engine's full
    correlation with the flipped kernel.  ``stated`` as for :func:`network_values` (the carried values)."""
    net = data["cnn"]
    stated = stated or {}
    out: dict[str, np.ndarray] = {}
    f = lambda a: np.array([[float(_num(c)) for c in r] for r in a]) if isinstance(a[0], list) \
        else np.array([float(_num(c)) for c in a])

    def use(name):
        v = np.array(out[name], dtype=float)
        if name in stated:
            mask = ~np.isnan(stated[name])
            v[mask] = stated[name][mask]
        return v

    out["x"] = f(net["input"])
    layers = cnn_layers(data)
    count: dict[str, int] = {}
    cur = "x"
    record = []
    for layer in layers:
        kind = layer["type"]
        key = "pool" if kind in ("maxpool", "avgpool") else kind
        k = count[key] = count.get(key, 0) + 1
        src = cur
        if kind == "conv2d":
            K = f(layer["kernel"])
            out[f"K{k}"] = K
            out[f"K{k}_flip"] = K[::-1, ::-1]
            ph, pw = layer["padding"]
            P = src
            if (ph, pw) != (0, 0):
                P = f"pad{k}"
                out[P] = np.pad(use(src), ((ph, ph), (pw, pw)))
                out[f"shape_pad{k}"] = np.array(out[P].shape, dtype=float)
            Keff = K[::-1, ::-1] if layer["mode"] == "convolution" else K
            c = float(_num(layer["bias"])) if "bias" in layer else 0.0
            if "bias" in layer:
                out[f"c{k}"] = np.array(c)
            M = use(P)
            rows, cols = _windows(M.shape, K.shape, layer["stride"])
            Z = np.array([[np.sum(Keff * M[i:i + K.shape[0], j:j + K.shape[1]]) + c for j in cols] for i in rows])
            cur = f"conv{k}"
            out[cur] = Z
            out[f"shape_conv{k}"] = np.array(Z.shape, dtype=float)
            record.append(("conv2d", k, src, cur, layer, P))
        elif kind == "activation":
            name, p = _act(layer["activation"])
            z = use(src)
            cur = f"act{k}"
            if name == "softmax":
                e = np.exp(z - z.max())
                out[cur] = e / e.sum()
            else:
                out[cur] = ACT[name][0](z, p)
            record.append(("activation", k, src, cur, (name, p), None))
        elif kind in ("maxpool", "avgpool"):
            A = use(src)
            rows, cols = _windows(A.shape, layer["size"], layer["stride"])
            h, w = layer["size"]
            red = np.max if kind == "maxpool" else np.mean
            cur = f"pool{k}"
            out[cur] = np.array([[red(A[i:i + h, j:j + w]) for j in cols] for i in rows])
            out[f"shape_pool{k}"] = np.array(out[cur].shape, dtype=float)
            record.append((kind, k, src, cur, layer, None))
        elif kind == "flatten":
            cur = f"flat{k}"
            out[cur] = use(src).ravel()
            record.append(("flatten", k, src, cur, layer, None))
        elif kind == "dense":
            W = f(layer["weights"])
            out[f"W{k}"] = W
            b = f(layer["bias"]) if "bias" in layer else np.zeros(W.shape[0])
            if "bias" in layer:
                out[f"b{k}"] = b
            cur = f"fc{k}"
            out[cur] = W @ use(src) + b
            record.append(("dense", k, src, cur, layer, None))
    y = use(cur)
    if "loss" in net:
        t = f(net["target"])
        out["t"] = t
        loss, grad = _losses(y.ravel(), t.ravel())[net["loss"]]
        out["loss"], out["grad_" + cur] = np.array(loss), grad.reshape(y.shape)
    else:
        G = f(net["output_gradient"]) if "output_gradient" in net else np.ones_like(y)
        out["upstream"] = G
        out["loss"], out["grad_" + cur] = np.array(np.sum(G * y)), G.astype(float)
    for kind, k, src, dst, layer, P in reversed(record):
        g = use("grad_" + dst)
        if kind == "conv2d":
            K = out[f"K{k}"]
            flip = layer["mode"] == "convolution"
            Keff = K[::-1, ::-1] if flip else K
            M = use(P)
            rows, cols = _windows(M.shape, K.shape, layer["stride"])
            dP, dKeff = np.zeros_like(M), np.zeros_like(K)
            for a, i in enumerate(rows):
                for b, j in enumerate(cols):
                    dP[i:i + K.shape[0], j:j + K.shape[1]] += g[a, b] * Keff
                    dKeff += g[a, b] * M[i:i + K.shape[0], j:j + K.shape[1]]
            out["grad_" + P] = dP
            if flip:
                out[f"grad_K{k}_flip"] = dKeff
            out[f"grad_K{k}"] = dKeff[::-1, ::-1] if flip else dKeff
            if f"c{k}" in out:
                out[f"grad_c{k}"] = np.array(g.sum())
            if P != src:
                ph, pw = layer["padding"]
                out["grad_" + src] = use("grad_" + P)[ph:dP.shape[0] - ph, pw:dP.shape[1] - pw]
        elif kind == "activation":
            name, p = layer
            z, a = use(src), use(dst)
            if name == "softmax":
                J = np.diag(a) - np.outer(a, a)
                out[f"dact{k}"] = J
                out["grad_" + src] = J.T @ g
            else:
                out[f"dact{k}"] = ACT[name][1](z, a, p)
                out["grad_" + src] = g * use(f"dact{k}")
        elif kind in ("maxpool", "avgpool"):
            A = use(src)
            rows, cols = _windows(A.shape, layer["size"], layer["stride"])
            h, w = layer["size"]
            dA = np.zeros_like(A)
            for a, i in enumerate(rows):
                for b, j in enumerate(cols):
                    if kind == "maxpool":
                        u, v = np.unravel_index(np.argmax(A[i:i + h, j:j + w]), (h, w))  # the first maximum
                        dA[i + u, j + v] += g[a, b]
                    else:
                        dA[i:i + h, j:j + w] += g[a, b] / (h * w)
            out["grad_" + src] = dA
        elif kind == "flatten":
            out["grad_" + src] = g.reshape(out[src].shape)
        elif kind == "dense":
            out[f"grad_W{k}"] = np.outer(g, use(src))
            if f"b{k}" in out:
                out[f"grad_b{k}"] = g
            out["grad_" + src] = out[f"W{k}"].T @ g
    lr = net.get("learning_rate")
    if lr is not None:
        for name in [n for n in out if re.fullmatch(r"(K|c|W|b)\d+", n)]:
            out[name + "_new"] = out[name] - float(_num(lr)) * use("grad_" + name)
    out["y"] = out[cur]
    out["grad_y"] = out["grad_" + cur]
    return out


def cnn_loss_mp(data: dict, params: dict[str, list] | None = None, dps: int = 40):
    """The loss of a [cnn] spec in ``dps``-digit mpmath arithmetic, with parameters and the input
    replaced by ``params`` (name -> nested lists of mpf), for central finite differences."""
    with mpmath.workdps(dps):
        return _cnn_loss_mp(data, params or {})


def _cnn_loss_mp(data: dict, params: dict):
    net = data["cnn"]
    mp = lambda t: mpmath.mpf(_num(t).numerator) / _num(t).denominator
    conv = lambda a: [[mp(c) for c in r] for r in a] if isinstance(a[0], list) else [mp(c) for c in a]
    get = lambda name, raw: params[name] if name in params else conv(raw)
    m = get("x", net["input"])
    count: dict[str, int] = {}
    sig = lambda z: 1 / (1 + mpmath.exp(-z))
    acts = {"identity": lambda z: z, "sigmoid": sig, "tanh": mpmath.tanh, "relu": lambda z: z if z > 0 else 0 * z,
            "softplus": lambda z: mpmath.log(1 + mpmath.exp(z)), "swish": lambda z: z * sig(z),
            "elu": lambda z: z if z > 0 else mpmath.exp(z) - 1}
    for layer in cnn_layers(data):
        kind = layer["type"]
        key = "pool" if kind in ("maxpool", "avgpool") else kind
        k = count[key] = count.get(key, 0) + 1
        if kind == "conv2d":
            K = get(f"K{k}", layer["kernel"])
            if layer["mode"] == "convolution":
                K = [row[::-1] for row in K[::-1]]
            c = get(f"c{k}", [layer["bias"]])[0] if "bias" in layer else 0
            ph, pw = layer["padding"]
            H, W = len(m), len(m[0])
            P = [[m[i - ph][j - pw] if ph <= i < H + ph and pw <= j < W + pw else mpmath.mpf(0)
                  for j in range(W + 2 * pw)] for i in range(H + 2 * ph)]
            rows, cols = _windows((len(P), len(P[0])), (len(K), len(K[0])), layer["stride"])
            m = [[sum(K[u][v] * P[i + u][j + v] for u in range(len(K)) for v in range(len(K[0]))) + c
                  for j in cols] for i in rows]
        elif kind == "activation":
            name = layer["activation"] if isinstance(layer["activation"], str) else layer["activation"]["name"]
            if name == "softmax":
                e = [mpmath.exp(z) for z in m]
                m = [v / sum(e) for v in e]
            else:
                g = acts[name]
                m = [[g(z) for z in r] for r in m] if isinstance(m[0], list) else [g(z) for z in m]
        elif kind in ("maxpool", "avgpool"):
            h, w = layer["size"]
            rows, cols = _windows((len(m), len(m[0])), (h, w), layer["stride"])
            win = lambda i, j: [m[i + u][j + v] for u in range(h) for v in range(w)]
            m = [[max(win(i, j)) if kind == "maxpool" else sum(win(i, j)) / (h * w) for j in cols] for i in rows]
        elif kind == "flatten":
            m = [v for r in m for v in r]
        elif kind == "dense":
            Wd = get(f"W{k}", layer["weights"])
            b = get(f"b{k}", layer["bias"]) if "bias" in layer else [0] * len(Wd)
            m = [sum(Wd[i][j] * m[j] for j in range(len(m))) + b[i] for i in range(len(Wd))]
    y = [v for r in m for v in r] if isinstance(m[0], list) else m
    if "loss" in net:
        t = conv(net["target"])
        t = [v for r in t for v in r] if isinstance(t[0], list) else t
        if net["loss"] == "half_sse":
            return sum((a - b) ** 2 for a, b in zip(y, t)) / 2
        if net["loss"] == "cross_entropy":
            return -sum(b * mpmath.log(a) for a, b in zip(y, t))
        if net["loss"] == "mse":
            return sum((a - b) ** 2 for a, b in zip(y, t)) / len(y)
        raise ValueError(net["loss"])
    G = conv(net["output_gradient"]) if "output_gradient" in net else None
    G = [v for r in G for v in r] if G and isinstance(G[0], list) else (G or [1] * len(y))
    return sum(g * v for g, v in zip(G, y))
# ----------------------------------------------------------------------------- the perceptron oracle

def _exact(text) -> Fraction:
    """A printed number (or a plain integer) as an exact fraction."""
    return Fraction(Decimal(str(text).replace("\u2212", "-")))


def _unit(name: str):
    """Threshold units, textbook definitions: sgn(0) = +1 (the perceptron convention), step(0) = 1."""
    return {"sign": lambda v: Fraction(1) if v >= 0 else Fraction(-1),
            "step": lambda v: Fraction(1) if v >= 0 else Fraction(0)}[name]


def perceptron_values(data: dict, stated: dict | None = None) -> dict:
    """Every quantity of a ``[perceptron]`` spec in exact fractions; with ``stated`` (name -> value or
    list of values) each quantity is recomputed from the stated values of its inputs."""
    p = data["perceptron"]
    stated = stated or {}
    out: dict = {}
    use = lambda name: stated.get(name, out[name])
    X = [[_exact(v) for v in s["x"]] for s in p["samples"]]
    for k, x in enumerate(X, start=1):
        out[f"X{k}"] = x
    if "weights" in p:
        g = _unit(p.get("activation", "sign"))
        spread = g(Fraction(1)) - g(Fraction(-1))
        d = [_exact(s["d"]) for s in p["samples"]]
        eta = _exact(p["learning_rate"])
        out["W0"] = [_exact(v) for v in p["weights"]]
        t, epoch = 0, 0
        while True:
            epoch += 1
            errors = Fraction(0)
            for k, x in enumerate(X):
                t += 1
                w = use(f"W{t - 1}")
                out[f"net{t}"] = sum(a * b for a, b in zip(w, x))
                out[f"o{t}"] = g(use(f"net{t}"))
                out[f"W{t}"] = [a + eta * (d[k] - use(f"o{t}")) * b for a, b in zip(w, x)]
                errors += abs(d[k] - out[f"o{t}"]) / spread
            out[f"errors{epoch}"] = errors
            if p.get("epochs", 1) == "converge":
                if errors == 0:
                    out["epochs"] = Fraction(epoch)
                    break
                assert epoch < p.get("max_epochs", 100), "no convergence"
            elif epoch == p.get("epochs", 1):
                break
        out["W_final"] = out[f"W{t}"]
        return out
    layers = p["layer"]
    names = [("net_y", "y"), ("net", "o")][-len(layers):]
    for k, x in enumerate(X, start=1):
        prev = x
        for layer, (net_name, out_name) in zip(layers, names):
            g = _unit(layer.get("activation", p.get("activation", "sign")))
            W = [[_exact(v) for v in row] for row in layer["weights"]]
            T = [_exact(v) for v in layer.get("threshold", ["0"] * len(W))]
            net = [sum(a * b for a, b in zip(row, prev)) - th for row, th in zip(W, T)]
            out[f"{net_name}{k}"] = net if len(net) > 1 else net[0]
            outs = [g(v) for v in net]
            out[f"{out_name}{k}"] = outs if len(outs) > 1 else outs[0]
            prev = outs
    return out


def architecture_params(data: dict) -> dict:
    """Parameter counts of an ``[architecture]`` spec: a weight per pair of units in adjacent layers,
    a bias per unit (unless bias = false)."""
    a = data["architecture"]
    sizes = [int(np.prod(a["input_shape"])) if "input_shape" in a else a["input_size"]]
    out = {"n0": Fraction(sizes[0])}
    total = 0
    for l, layer in enumerate(a["layer"], start=1):
        sizes.append(layer["size"])
        out[f"n{l}"] = Fraction(layer["size"])
        count = sizes[l] * (sizes[l - 1] + (1 if layer.get("bias", True) else 0))
        out[f"params{l}"] = Fraction(count)
        total += count
    out["params"] = Fraction(total)
    return out


def network_param_count(data: dict) -> int:
    """The parameters of a ``[network]`` spec counted from the sizes its weights and biases are written with."""
    net = data["network"]
    n_prev = len(net["input"]) if "input" in net else net["input_size"]
    total = 0
    for layer in net["layer"]:
        size = len(layer["weights"]) if "weights" in layer else layer["size"]
        has_bias = layer.get("bias") is not False and ("bias" in layer or "weights" not in layer)
        total += size * n_prev + (size if has_bias else 0)
        n_prev = size
    return total

# ----------------------------------------------------------------------------- finite differences

def central_difference(at, h):
    """(at(h) − at(−h)) / 2h, where ``at(δ)`` is the function with one input moved by δ: the one
    finite-difference helper of the tests.  Its arithmetic is ``at``'s and ``h``'s (mpmath at 40
    digits with h = 1e-15, exact Rationals, or float64 with h = 1e-6)."""
    return (at(h) - at(-h)) / (2 * h)


# ----------------------------------------------------------------------------- hand-written networks

GIVEN_222 = {"x1": "0.5", "x2": "0.3", "y1": "0.23", "y2": "-0.07", "w1": "0.20", "w2": "-0.40", "w3": "0.50",
             "w4": "0.60", "w5": "0.10", "w6": "-0.50", "w7": "-0.30", "w8": "0.80"}
ORDER_222 = ["In_h1", "In_h2", "h1", "h2", "In_o1", "In_o2", "o1", "o2", "Error", "grad_o1", "grad_o2",
             "grad_In_o1", "grad_In_o2", "grad_h1", "grad_h2", "grad_In_h1", "grad_In_h2",
             "grad_w1", "grad_w2", "grad_w3", "grad_w4", "grad_w5", "grad_w6", "grad_w7", "grad_w8",
             "w1_new", "w2_new", "w3_new", "w4_new", "w5_new", "w6_new", "w7_new", "w8_new"]


def net222(override: dict | None = None, mistake: str | None = None, eta: str = "1") -> dict:
    """Every quantity of the 2-2-2 example; ``override`` replaces a value as soon as it is computed
    (a student's own number, used downstream); ``mistake`` is one of 'no_sigma_prime_o1',
    'sign_o1', 'update_plus', 'one_path_h1'."""
    mpmath.mp.dps = 50
    v = {k: mpmath.mpf(s) for k, s in GIVEN_222.items()}
    override = {k: mpmath.mpf(x) for k, x in (override or {}).items()}
    lr = mpmath.mpf(eta)
    sig = lambda z: 1 / (1 + mpmath.e ** (-z))

    def put(name, value):
        v[name] = override.get(name, value)

    put("In_h1", v["w1"] * v["x1"] + v["w3"] * v["x2"])
    put("In_h2", v["w2"] * v["x1"] + v["w4"] * v["x2"])
    put("h1", sig(v["In_h1"]))
    put("h2", sig(v["In_h2"]))
    put("In_o1", v["w5"] * v["h1"] + v["w7"] * v["h2"])
    put("In_o2", v["w6"] * v["h1"] + v["w8"] * v["h2"])
    put("o1", sig(v["In_o1"]))
    put("o2", sig(v["In_o2"]))
    put("Error", (v["o1"] - v["y1"]) ** 2 / 2 + (v["o2"] - v["y2"]) ** 2 / 2)
    put("grad_o1", (v["y1"] - v["o1"]) if mistake == "sign_o1" else (v["o1"] - v["y1"]))
    put("grad_o2", v["o2"] - v["y2"])
    put("grad_In_o1", v["grad_o1"] if mistake == "no_sigma_prime_o1" else v["grad_o1"] * v["o1"] * (1 - v["o1"]))
    put("grad_In_o2", v["grad_o2"] * v["o2"] * (1 - v["o2"]))
    put("grad_h1", v["grad_In_o1"] * v["w5"] + (0 if mistake == "one_path_h1" else v["grad_In_o2"] * v["w6"]))
    put("grad_h2", v["grad_In_o1"] * v["w7"] + v["grad_In_o2"] * v["w8"])
    put("grad_In_h1", v["grad_h1"] * v["h1"] * (1 - v["h1"]))
    put("grad_In_h2", v["grad_h2"] * v["h2"] * (1 - v["h2"]))
    put("grad_w1", v["grad_In_h1"] * v["x1"])
    put("grad_w2", v["grad_In_h2"] * v["x1"])
    put("grad_w3", v["grad_In_h1"] * v["x2"])
    put("grad_w4", v["grad_In_h2"] * v["x2"])
    put("grad_w5", v["grad_In_o1"] * v["h1"])
    put("grad_w6", v["grad_In_o2"] * v["h1"])
    put("grad_w7", v["grad_In_o1"] * v["h2"])
    put("grad_w8", v["grad_In_o2"] * v["h2"])
    for i in range(1, 9):
        sign = 1 if mistake == "update_plus" else -1
        put(f"w{i}_new", v[f"w{i}"] + sign * lr * v[f"grad_w{i}"])
    return v


def rnd(x, decimals: int) -> str:
    """``x`` rounded half away from zero to ``decimals`` places, as printed text."""
    d = Decimal(mpmath.nstr(x, 40, min_fixed=-100, max_fixed=100)) if not isinstance(x, (float, np.floating)) \
        else Decimal(repr(float(x)))
    return str(d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def mlp3333(mistake: str | None = None) -> dict:
    """The 3-3-3-3 example (ReLU, sigmoid, sigmoid; ½‖y − t‖²) in NumPy, column vectors."""
    x = np.array([0.1, 0.2, 0.7])
    t = np.array([1.0, 0.0, 0.0])
    W = [np.array([[0.1, 0.3, 0.4], [0.2, 0.2, 0.3], [0.3, 0.7, 0.9]]),
         np.array([[0.2, 0.3, 0.6], [0.3, 0.5, 0.4], [0.5, 0.7, 0.8]]),
         np.array([[0.1, 0.3, 0.5], [0.4, 0.7, 0.2], [0.8, 0.2, 0.9]])]
    b = [np.ones(3)] * 3
    sig = lambda z: 1 / (1 + np.exp(-z))
    z1 = W[0] @ x + b[0]
    h1 = np.maximum(z1, 0)
    z2 = W[1] @ h1 + b[1]
    h2 = sig(z2)
    z3 = W[2] @ h2 + b[2]
    h3 = sig(z3)
    delta3 = (h3 - t) * h3 * (1 - h3)
    grad_h2 = (W[2] if mistake == "W_not_transposed" else W[2].T) @ delta3
    delta2 = grad_h2 if mistake == "no_gprime2" else grad_h2 * h2 * (1 - h2)
    grad_W3 = np.outer(delta3, h2)
    return {"z1": z1, "h1": h1, "z2": z2, "h2": h2, "z3": z3, "h3": h3, "delta3": delta3, "grad_h2": grad_h2,
            "delta2": delta2, "grad_W3": grad_W3}
