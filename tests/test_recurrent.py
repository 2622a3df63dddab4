"""Recurrent networks (Elman RNN, LSTM cell): backpropagation through time against independent oracles.

* central finite differences of a 40-digit mpmath forward pass written here from the slides'
  equations (deck 000's Elman network and LSTM cell), nothing imported from the engine;
* PyTorch: ``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.LSTMCell`` with the weights copied in,
  and autograd on a loop written here for hidden activations ``nn.RNN`` does not offer;
* the spec table's errors, the terms read off the Jacobians, and the bundled examples' claims.
"""
from __future__ import annotations

import random

import mpmath
import pytest
import sympy as sp

from derive.core.errors import SpecError
from derive.core.evaluate import evaluate
from derive.kinds.recurrent.derivation import ThroughTime, derive_recurrent, load_recurrent
from derive.kinds import from_mapping
from derive.core.steps import symbol
from oracles import MP_ACTIVATIONS, mp_loss_of, mp_sigmoid
import oracles

mpmath.mp.dps = 40
GATES = ("f", "i", "c", "o")


def _dec(rng, lo=-1.0, hi=1.0):
    return f"{rng.uniform(lo, hi):.4f}"


HIDDEN = ["tanh", "sigmoid", "relu", "identity", "leaky_relu", "elu", "softplus", "swish", "bipolar_sigmoid"]
OUTPUTS = [("identity", "half_sse"), ("sigmoid", "bce"), ("softmax", "cross_entropy"), ("identity", "mse"),
           ("identity", "softmax_cross_entropy"), ("sigmoid", "half_sse"), ("tanh", "mae")]


def random_recurrent(seed: int) -> dict:
    """A random [recurrent] table: both cells, every hidden activation and output/loss pairing in turn."""
    rng = random.Random(seed)
    cell = "lstm" if seed % 3 == 2 else "elman"
    m, n, T = rng.randint(1, 2), rng.randint(1, 3), rng.randint(1, 3)
    output = seed % 4 != 3
    g2, loss = OUTPUTS[seed % len(OUTPUTS)] if output else ("identity", "half_sse")
    p = (max(2, rng.randint(1, 3)) if g2 == "softmax" else rng.randint(1, 2)) if output else None
    width = p if output else n
    loss_at = "last" if seed % 5 == 4 else "every"
    params = {}
    if cell == "elman":
        shapes = {"W_hh": (n, n), "W_xh": (n, m), "b_h": (n,)}
    else:
        shapes = {f"{k}_{g}": ((n, n + m) if k == "W" else (n,)) for g in GATES for k in ("W", "b")}
    if output:
        shapes.update({"W_hy": (p, n), "b_y": (p,)})
    for name, shape in shapes.items():
        params[name] = ([[_dec(rng) for _ in range(shape[1])] for _ in range(shape[0])] if len(shape) == 2
                        else [_dec(rng) for _ in range(shape[0])])

    def target():
        if loss in ("cross_entropy", "softmax_cross_entropy"):
            t = ["0"] * width
            t[rng.randrange(width)] = "1"
            return t
        return [_dec(rng, 0.05, 0.95) if loss == "bce" else _dec(rng) for _ in range(width)]
    table = {"cell": cell, "hidden_size": n, "inputs": [[_dec(rng) for _ in range(m)] for _ in range(T)],
             "targets": [target() for _ in range(T if loss_at == "every" else 1)], "loss": loss,
             "loss_at": loss_at, "learning_rate": "0.1", "params": params,
             "h0": [_dec(rng) for _ in range(n)]}
    if cell == "elman":
        act = HIDDEN[(2 * (seed // 3) + seed % 3) % len(HIDDEN)]   # the k-th Elman seed takes the k-th
        table["g1"] = {"name": act, "alpha": "0.2"} if act in ("leaky_relu", "elu") else act
    else:
        table["c0"] = [_dec(rng) for _ in range(n)]
    if output:
        table["output_size"] = p
        table["g2"] = g2
    return table


SEEDS = range(36)


# ----------------------------------------------------------------------------- the mpmath oracle

def _matvec(W, v):
    return [sum(w * x for w, x in zip(row, v)) for row in W]


def mp_loss(table: dict, theta: dict) -> mpmath.mpf:
    """The loss of a [recurrent] table at parameters ``theta`` (and initial states), 40 digits."""
    mp = lambda v: [mpmath.mpf(x) for x in v]
    xs = [mp(x) for x in table["inputs"]]
    T = len(xs)
    h, c = list(theta["h0"]), list(theta.get("c0", []))
    act = table.get("g1", "tanh")
    g1, p1 = (act, {}) if isinstance(act, str) else (act["name"], {k: mpmath.mpf(v) for k, v in act.items() if k != "name"})
    g2 = table.get("g2", "identity")
    every = table.get("loss_at", "every") == "every"
    targets = [mp(t) for t in table["targets"]]
    total = mpmath.mpf(0)
    for t in range(T):
        if table["cell"] == "elman":
            a = [u + v + b for u, v, b in zip(_matvec(theta["W_hh"], h), _matvec(theta["W_xh"], xs[t]), theta["b_h"])]
            h = [MP_ACTIVATIONS[g1](v, p1) for v in a]
        else:   # deck 000: f, i, C~, C, o, h = o * tanh(C), each gate reading [h_{t-1}, x_t]
            hx = h + xs[t]
            gate = {g: [u + b for u, b in zip(_matvec(theta[f"W_{g}"], hx), theta[f"b_{g}"])] for g in GATES}
            f, i, o = ([mp_sigmoid(v) for v in gate[g]] for g in ("f", "i", "o"))
            ctilde = [mpmath.tanh(v) for v in gate["c"]]
            c = [fk * ck + ik * gk for fk, ck, ik, gk in zip(f, c, i, ctilde)]
            h = [ok * mpmath.tanh(ck) for ok, ck in zip(o, c)]
        if not every and t < T - 1:
            continue
        if "W_hy" in theta:
            s = [u + b for u, b in zip(_matvec(theta["W_hy"], h), theta["b_y"])]
            if g2 == "softmax":
                e = [mpmath.exp(v) for v in s]
                y = [v / sum(e) for v in e]
            else:
                y = [MP_ACTIVATIONS[g2](v, {}) for v in s]
        else:
            y = h
        total += mp_loss_of(table["loss"], y, targets[t] if every else targets[0])
    return total


def _theta(table: dict) -> dict:
    theta = {}
    for name, value in table["params"].items():
        theta[name] = ([[mpmath.mpf(v) for v in row] for row in value] if isinstance(value[0], list)
                       else [mpmath.mpf(v) for v in value])
    theta["h0"] = [mpmath.mpf(v) for v in table["h0"]]
    if "c0" in table:
        theta["c0"] = [mpmath.mpf(v) for v in table["c0"]]
    return theta


def fd_gradients(table: dict) -> dict:
    """∂L/∂θ for every parameter and initial state by central differences (h = 1e-15, 40 digits)."""
    theta = _theta(table)
    step = mpmath.mpf(10) ** -15
    grads = {}
    for name, value in theta.items():
        cells = [(i, j) for i in range(len(value)) for j in range(len(value[0]))] if isinstance(value[0], list) \
            else [(i,) for i in range(len(value))]
        for idx in cells:
            def at(delta):
                copy = {k: [list(r) if isinstance(r, list) else r for r in v] for k, v in theta.items()}
                if len(idx) == 2:
                    copy[name][idx[0]][idx[1]] += delta
                else:
                    copy[name][idx[0]] += delta
                return mp_loss(table, copy)
            grads[(name, idx)] = oracles.central_difference(at, step)
    return grads


def _engine(table: dict):
    derivation = derive_recurrent(load_recurrent(table))
    return derivation, evaluate(derivation)


def test_the_random_problems_cover_both_cells_every_hidden_activation_and_output():
    cells, acts, outs, modes, plain = set(), set(), set(), set(), False
    for seed in SEEDS:
        table = random_recurrent(seed)
        cells.add(table["cell"])
        if "g1" in table:
            a = table["g1"]
            acts.add(a if isinstance(a, str) else a["name"])
        outs.add((table.get("g2"), table["loss"]))
        modes.add(table["loss_at"])
        plain |= "output_size" not in table
    assert cells == {"elman", "lstm"} and set(HIDDEN) <= acts and modes == {"every", "last"} and plain
    assert {o for o in OUTPUTS} <= outs


@pytest.mark.parametrize("seed", SEEDS)
def test_bptt_gradients_match_central_differences(seed):
    table = random_recurrent(seed)
    _, values = _engine(table)
    loss = mp_loss(table, _theta(table))
    assert abs(float(values[sp.Symbol("loss", real=True)]) - float(loss)) <= 1e-12 * max(1, abs(float(loss)))
    fd = fd_gradients(table)
    assert len(fd) > 3
    for (name, idx), g in fd.items():
        engine = float(values[symbol("grad_" + name, idx)])
        assert abs(engine - float(g)) <= 1e-10 * max(1.0, abs(float(g))), (seed, name, idx, engine, float(g))


def test_the_finite_difference_check_can_fail():
    """Drop one path of the chain rule (∂L/∂h_1 without the path through a_2, the recurrence): the
    gradients of the shared weights then disagree with the finite differences."""
    from derive.core.steps import Derivation
    seed = next(s for s in ELMAN_SEEDS if len(random_recurrent(s)["inputs"]) >= 2
                and random_recurrent(s)["loss_at"] == "every")
    table = random_recurrent(seed)
    derivation, values = _engine(table)
    step = derivation.step("grad_h1")
    assert {t.consumer for t in step.terms} >= {"a2"}
    cut = {symbol("grad_a2", (k,)): 0 for k in range(table["hidden_size"])}
    broken = step.__class__(step.target, tuple(e.xreplace(cut) for e in step.exprs), step.inputs, of=step.of,
                            time=step.time, terms=step.terms)
    mutated = Derivation(tuple(broken if s.name == "grad_h1" else s for s in derivation.steps), derivation.kind)
    wrong = evaluate(mutated)
    fd = fd_gradients(table)
    off = [(name, idx) for (name, idx), g in fd.items()
           if abs(float(wrong[symbol("grad_" + name, idx)]) - float(g)) > 1e-6 * max(1.0, abs(float(g)))]
    assert any(name == "W_hh" for name, _ in off), off


# ----------------------------------------------------------------------------- PyTorch

def _t(torch, v):
    return torch.tensor([[float(x) for x in r] for r in v] if isinstance(v[0], list) else [float(x) for x in v],
                        dtype=torch.float64)


def _torch_loss(torch, table, ys):
    F = torch.nn.functional
    every = table["loss_at"] == "every"
    targets = [_t(torch, t) for t in table["targets"]]
    total = 0
    for k, y in enumerate(ys):
        t = targets[k] if every else targets[0]
        total = total + {"half_sse": lambda: 0.5 * F.mse_loss(y, t, reduction="sum"), "mse": lambda: F.mse_loss(y, t),
                         "mae": lambda: F.l1_loss(y, t), "bce": lambda: F.binary_cross_entropy(y, t),
                         "cross_entropy": lambda: -(t * torch.log(y)).sum(),
                         "softmax_cross_entropy": lambda: F.cross_entropy(y[None], t[None])}[table["loss"]]()
    return total


def _torch_outputs(torch, table, hs, head):
    """y_t for the loss: through the output layer (a torch.nn.Linear) when there is one."""
    T = len(table["inputs"])
    hs = hs if table["loss_at"] == "every" else [hs[T - 1]]
    if head is None:
        return hs
    g2 = table.get("g2", "identity")
    act = {"identity": lambda s: s, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
           "softmax": lambda s: torch.softmax(s, 0)}[g2]
    return [act(head(h)) for h in hs]


def _head(torch, table):
    if "W_hy" not in table["params"]:
        return None
    p, n = len(table["params"]["W_hy"]), table["hidden_size"]
    head = torch.nn.Linear(n, p, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(_t(torch, table["params"]["W_hy"]))
        head.bias.copy_(_t(torch, table["params"]["b_y"]))
    return head


def _compare(values, name, tensor, label):
    flat = tensor.detach().reshape(-1).tolist()
    shape = tuple(tensor.shape)
    idxs = [(i, j) for i in range(shape[0]) for j in range(shape[1])] if len(shape) == 2 else [(i,) for i in range(shape[0])]
    assert len(flat) == len(idxs)
    for idx, g in zip(idxs, flat):
        engine = float(values[symbol(name, idx)])
        assert abs(engine - g) <= 1e-10 * max(1.0, abs(g)), (label, name, idx, engine, g)


def _elman_torch(torch, table, builtin: bool):
    """nn.RNN (tanh or relu) with W_xh, W_hh, b_h copied in, or the same recurrence as a loop."""
    n, m = table["hidden_size"], len(table["inputs"][0])
    W_hh, W_xh, b_h = (_t(torch, table["params"][k]) for k in ("W_hh", "W_xh", "b_h"))
    h0 = _t(torch, table["h0"]).requires_grad_()
    xs = _t(torch, table["inputs"])
    if builtin:
        rnn = torch.nn.RNN(m, n, nonlinearity=table["g1"], dtype=torch.float64)
        with torch.no_grad():
            rnn.weight_ih_l0.copy_(W_xh)
            rnn.weight_hh_l0.copy_(W_hh)
            rnn.bias_ih_l0.copy_(b_h)
            rnn.bias_hh_l0.zero_()
        out, _ = rnn(xs[:, None, :], h0[None, None, :])
        hs = [out[t, 0] for t in range(len(xs))]
        params = {"W_xh": rnn.weight_ih_l0, "W_hh": rnn.weight_hh_l0, "b_h": rnn.bias_ih_l0}
    else:
        for p in (W_hh, W_xh, b_h):
            p.requires_grad_()
        F = torch.nn.functional
        act = table["g1"]
        name = act if isinstance(act, str) else act["name"]
        alpha = 0.2 if not isinstance(act, str) else None
        g = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda z: z,
             "leaky_relu": lambda z: F.leaky_relu(z, alpha), "elu": lambda z: F.elu(z, alpha),
             "softplus": F.softplus, "swish": lambda z: z * torch.sigmoid(z),
             "bipolar_sigmoid": lambda z: torch.tanh(z / 2)}[name]
        h, hs = h0, []
        for x in xs:
            h = g(W_hh @ h + W_xh @ x + b_h)
            hs.append(h)
        params = {"W_xh": W_xh, "W_hh": W_hh, "b_h": b_h}
    head = _head(torch, table)
    loss = _torch_loss(torch, table, _torch_outputs(torch, table, hs, head))
    loss.backward()
    if head is not None:
        params.update({"W_hy": head.weight, "b_y": head.bias})
    params["h0"] = h0
    return loss, params


def _stack(torch, table, which: str):
    """PyTorch's gate order i, f, g, o; our W_g acts on [h_{t−1}; x_t], so its columns split h | x."""
    n = table["hidden_size"]
    order = ("i", "f", "c", "o")
    W = torch.cat([_t(torch, table["params"][f"W_{g}"]) for g in order])
    b = torch.cat([_t(torch, table["params"][f"b_{g}"]) for g in order])
    return {"hh": W[:, :n], "ih": W[:, n:], "b": b}[which]


def _unstack(values_of_torch, n):
    """Gradients of PyTorch's stacked (i, f, g, o) weights back into W_f, W_i, W_c, W_o and their biases."""
    w_ih, w_hh, b = values_of_torch
    out = {}
    for k, g in enumerate(("i", "f", "c", "o")):
        rows = slice(k * n, (k + 1) * n)
        import torch
        out[f"W_{g}"] = torch.cat([w_hh[rows], w_ih[rows]], dim=1)
        out[f"b_{g}"] = b[rows]
    return out


def _lstm_torch(torch, table, module: str):
    n, m = table["hidden_size"], len(table["inputs"][0])
    xs = _t(torch, table["inputs"])
    h0 = _t(torch, table["h0"]).requires_grad_()
    c0 = _t(torch, table["c0"]).requires_grad_()
    if module == "LSTM":
        lstm = torch.nn.LSTM(m, n, dtype=torch.float64)
        w_ih, w_hh, b_ih, b_hh = lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0
    else:
        lstm = torch.nn.LSTMCell(m, n, dtype=torch.float64)
        w_ih, w_hh, b_ih, b_hh = lstm.weight_ih, lstm.weight_hh, lstm.bias_ih, lstm.bias_hh
    with torch.no_grad():
        w_ih.copy_(_stack(torch, table, "ih"))
        w_hh.copy_(_stack(torch, table, "hh"))
        b_ih.copy_(_stack(torch, table, "b"))
        b_hh.zero_()
    if module == "LSTM":
        out, _ = lstm(xs[:, None, :], (h0[None, None, :], c0[None, None, :]))
        hs = [out[t, 0] for t in range(len(xs))]
    else:
        h, c, hs = h0[None], c0[None], []
        for x in xs:
            h, c = lstm(x[None], (h, c))
            hs.append(h[0])
    head = _head(torch, table)
    loss = _torch_loss(torch, table, _torch_outputs(torch, table, hs, head))
    loss.backward()
    params = _unstack((w_ih.grad, w_hh.grad, b_ih.grad), n)
    params = {k: _Grad(v) for k, v in params.items()}
    if head is not None:
        params.update({"W_hy": head.weight, "b_y": head.bias})
    params["h0"], params["c0"] = h0, c0
    return loss, params


class _Grad:
    """A gradient standing where a parameter with ``.grad`` is expected."""

    def __init__(self, grad):
        self.grad = grad


def _check_torch(values, loss, params, label):
    assert abs(float(values[sp.Symbol("loss", real=True)]) - loss.item()) <= 1e-10 * max(1, abs(loss.item()))
    for name, p in params.items():
        _compare(values, "grad_" + name, p.grad, label)


ELMAN_SEEDS = [s for s in SEEDS if random_recurrent(s)["cell"] == "elman"]
LSTM_SEEDS = [s for s in SEEDS if random_recurrent(s)["cell"] == "lstm"]


@pytest.mark.parametrize("seed", [s for s in ELMAN_SEEDS if random_recurrent(s)["g1"] in ("tanh", "relu")] +
                         [3, 9])
def test_elman_matches_torch_nn_rnn(seed):
    torch = pytest.importorskip("torch")
    table = random_recurrent(seed)
    table["g1"] = table["g1"] if table["g1"] in ("tanh", "relu") else "tanh"
    _, values = _engine(table)
    _check_torch(values, *_elman_torch(torch, table, builtin=True), f"nn.RNN seed {seed}")


@pytest.mark.parametrize("seed", ELMAN_SEEDS)
def test_elman_matches_torch_autograd_for_every_hidden_activation(seed):
    torch = pytest.importorskip("torch")
    table = random_recurrent(seed)
    _, values = _engine(table)
    _check_torch(values, *_elman_torch(torch, table, builtin=False), f"autograd seed {seed}")


@pytest.mark.parametrize("module", ["LSTM", "LSTMCell"])
@pytest.mark.parametrize("seed", LSTM_SEEDS)
def test_lstm_matches_torch(seed, module):
    torch = pytest.importorskip("torch")
    table = random_recurrent(seed)
    _, values = _engine(table)
    _check_torch(values, *_lstm_torch(torch, table, module), f"nn.{module} seed {seed}")


# ----------------------------------------------------------------------------- SymPy's derivative of the unrolled loss

def _claims(table: dict, claims):
    from derive.verify.claims import check_claims
    from derive.core.spec import Claim
    spec = from_mapping({"recurrent": table})
    spec = spec.__class__(**{**spec.__dict__, "claims": tuple(
        Claim(label, lhs, rhs, (), f"claim[{i}]") for i, (label, lhs, rhs) in enumerate(claims))})
    return check_claims(spec, derive_recurrent(spec.problem))


def test_bptt_equals_sympys_derivative_of_the_unrolled_loss_symbolically():
    """On a symbolic tanh Elman network over two steps, ∂L/∂h_1, ∂L/∂h_0 and weight gradients from the
    chain-rule steps simplify to SymPy's derivative of the whole unrolled loss (claims' jacobian)."""
    table = {"cell": "elman", "hidden_size": 2, "input_size": 1, "steps": 2, "output_size": 1, "g1": "tanh",
             "loss": "half_sse"}
    results = _claims(table, [("h1", "grad_h1", "jacobian(loss, h1).T"),
                              ("h0", "grad_h0", "jacobian(loss, h0).T"),
                              ("W", "[grad_W_hh[0,1], grad_W_xh[1,0], grad_b_y[0]]",
                               "jacobian(loss, [W_hh[0,1], W_xh[1,0], b_y[0]]).T"),
                              ("a path missing", "grad_h1", "W_hh.T @ grad_a2")])
    assert [r.verdict for r in results] == ["proved", "proved", "proved", "differs"]


def test_lstm_gradients_equal_sympys_derivative_of_the_unrolled_loss_at_the_numbers():
    """The LSTM cell's gradients against sympy.diff of the unrolled loss (not the chain-rule steps),
    both evaluated with certified enclosures: they agree to 1e-30."""
    from derive.core.algebra import Unfolder
    from derive.verify.claims import _definitions
    from derive.core.evaluate import precision, value_of
    from derive.core.steps import Given
    table = random_recurrent(LSTM_SEEDS[0])
    derivation, values = _engine(table)
    loss = Unfolder(_definitions([derivation], keep_affine=False))(sp.Symbol("loss", real=True))
    params = [sym for s in derivation.steps if isinstance(s, Given) and s.role in ("param", "state")
              for sym in s.target.symbols()]
    assert len(params) > 10
    for p in params:
        name, index = p.name[:-1].split("[")
        with precision(160):
            d = value_of(sp.diff(loss, p), values)
            engine = values[symbol("grad_" + name, tuple(int(i) for i in index.split(",")))]
            assert abs(d.enclosure - engine.enclosure).b < 1e-30, p


# ----------------------------------------------------------------------------- the terms read off the Jacobians

def _term_value(step, term, derivation):
    """What a term's matrix form says, element by element, rebuilt from the term alone."""
    of = derivation.quantity(step.of)
    consumer = derivation.quantity(term.consumer)
    g = [symbol("grad_" + term.consumer, idx) for idx in consumer.indices()]
    if term.kind == "transpose":
        M = derivation.quantity(term.operand)
        return [sp.Add(*[M.symbol((k, i)) * g[k] for k in range(consumer.shape[0])]) for (i,) in of.indices()]
    if term.kind == "outer":
        v = derivation.quantity(term.operand)
        return [g[i] * v.symbol((j,)) for i, j in of.indices()]
    if term.kind == "identity":
        return [symbol("grad_" + term.consumer, idx) for idx in of.indices()]
    if term.kind == "hadamard":
        P = derivation.quantity(term.operand)
        return [symbol("grad_" + term.consumer, (i,)) * P.symbol((i,)) for (i,) in of.indices()]
    if term.kind in ("derivative", "diag"):
        return [symbol("grad_" + term.consumer, (i,)) * f for (i,), f in zip(of.indices(), term.factors)]
    if term.kind == "select":
        return [symbol("grad_" + term.consumer, (term.offset + i,)) for (i,) in of.indices()]
    cexprs = derivation.step(term.consumer).exprs
    gsyms = [symbol("grad_" + term.consumer, idx) for idx in consumer.indices()]
    return [sp.Add(*[gk * sp.diff(e, of.symbol(idx)) for gk, e in zip(gsyms, cexprs)]) for idx in of.indices()]


@pytest.mark.parametrize("seed", SEEDS[::3])
def test_the_printed_matrix_form_is_what_the_chain_rule_computed(seed):
    """Each gradient step's terms, rebuilt as expressions, sum to the step's own (chain-rule) expressions;
    a 'derivative' term's factor is the activation's derivative (checked at the numbers)."""
    from derive.core.evaluate import precision, value_of
    derivation, values = _engine(random_recurrent(seed))
    kinds = set()
    for step in derivation.steps:
        if not isinstance(step, ThroughTime):
            continue
        built = [sp.Add(*parts) for parts in zip(*[_term_value(step, t, derivation) for t in step.terms])]
        for b, e in zip(built, step.exprs):
            if any(t.kind in ("derivative", "chain") for t in step.terms):   # output forms vs diff: the numbers
                with precision(160):
                    assert abs(value_of(b - e, values).enclosure).b < 1e-40
            else:
                assert sp.expand(b - e) == 0, (step.name, b, e)
        for t in step.terms:
            kinds.add(t.kind)
            if t.kind == "derivative":
                act = derivation.step(t.consumer)
                for (i,), f in zip(step.target.indices(), t.factors):
                    direct = sp.diff(act.exprs[i], symbol(step.of, (i,)))
                    with precision(160):
                        assert abs(value_of(f - direct, values).enclosure).b < 1e-40
    assert {"transpose", "outer", "identity"} <= kinds


def test_every_kind_of_term_occurs_in_the_random_problems():
    kinds = set()
    for seed in SEEDS:
        derivation = derive_recurrent(load_recurrent(random_recurrent(seed)))
        kinds |= {t.kind for s in derivation.steps if isinstance(s, ThroughTime) for t in s.terms}
    assert kinds == {"transpose", "outer", "identity", "hadamard", "derivative", "select", "chain"}, kinds


# ----------------------------------------------------------------------------- the spec table

BASE = {"cell": "elman", "hidden_size": 2, "inputs": [["1"], ["0.5"]], "targets": [["0", "1"], ["1", "0"]],
        "loss": "half_sse"}


@pytest.mark.parametrize("change, path, message", [
    ({"cell": "gru"}, "recurrent.cell", "expected one of elman, lstm"),
    ({"hidden_size": None}, "recurrent.hidden_size", "missing"),
    ({"hidden_size": 33}, "recurrent.hidden_size", "from 1 to 32"),
    ({"inputs": [["1"]] * 51, "targets": None}, "recurrent.inputs", "at most 50 time steps"),
    ({"inputs": [["1"], ["1", "2"]]}, "recurrent.inputs[1]", "expected 1 numbers"),
    ({"inputs": None}, "recurrent.input_size", "missing"),
    ({"targets": [["0", "1"]]}, "recurrent.targets", "expected 2 vectors"),
    ({"targets": [["0"], ["1"]]}, "recurrent.targets[0]", "expected 2 numbers"),
    ({"output_size": 1}, "recurrent.targets[0]", "expected 1 numbers"),
    ({"params": {"W_hh": [["1", "2"]]}}, "recurrent.params.W_hh", "2x2 matrix"),
    ({"params": {"W_f": [["1"]]}}, "recurrent.params.W_f", "unknown key"),
    ({"params": {"W_hh": [["1", "nan"], ["0", "0"]]}}, "recurrent.params.W_hh[0][1]", "finite"),
    ({"params": {"b_y": ["0"]}}, "recurrent.output_size", "output layer"),
    ({"g1": "softmax"}, "recurrent.g1", "element-wise"),
    ({"g1": "nonesuch"}, "recurrent.g1", "unknown activation"),
    ({"g2": "sigmoid"}, "recurrent.g2", "output_size"),
    ({"cell": "lstm", "g1": "tanh"}, "recurrent.g1", "fixed"),
    ({"c0": ["0", "0"]}, "recurrent.c0", "only an LSTM"),
    ({"loss_at": "first"}, "recurrent.loss_at", "'every'"),
    ({"loss": "nonesuch"}, "recurrent.loss", "unknown loss"),
    ({"output_size": 1, "g2": "sigmoid", "loss": "softmax_cross_entropy"}, "recurrent.loss", "logits"),
    ({"h0": ["0"]}, "recurrent.h0", "expected 2 numbers"),
    ({"surprise": 1}, "recurrent.surprise", "unknown key"),
    ({"hidden_size": 32, "cell": "lstm", "inputs": [["1"] * 32] * 20, "targets": None}, "recurrent", "too large"),
])
def test_spec_errors_name_the_key(change, path, message):
    table = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(SpecError) as err:
        from_mapping({"recurrent": table})
    assert err.value.path == path and message in err.value.message, (err.value.path, err.value.message)


def test_one_problem_table_only():
    with pytest.raises(SpecError, match="one problem table"):
        from_mapping({"recurrent": BASE, "graph": {"nodes": ["L = 1"]}})


def test_defaults_and_symbols():
    """h_0 = 0 by default; without numbers every given is a symbol and the derivation is symbolic."""
    r = load_recurrent({**BASE, "params": {"W_hh": "symbol"}})
    assert r.params[0] == ("W_hh", None)
    assert r.h0 == (0, 0) and r.loss_at == "every" and r.g1.name == "tanh" and r.output_size is None
    symbolic = derive_recurrent(load_recurrent({"cell": "lstm", "hidden_size": 1, "input_size": 2, "steps": 2,
                                                "loss": "half_sse", "h0": "symbol"}))
    w = symbolic.step("W_f")
    assert w.exprs == tuple(w.target.symbols()) and symbolic.step("h0").exprs == (symbol("h0", (0,)),)
    assert symbolic.step("c0").exprs == (0,)
    assert "y2" in symbolic and symbolic.resolve("y2") == "h2"     # no output layer: the loss reads h_t


def test_deck_004_names_are_aliases():
    table = {**BASE, "output_size": 1, "targets": [["0"], ["1"]]}
    d = derive_recurrent(load_recurrent(table))
    assert [d.resolve(a) for a in ("U", "W", "V", "b_a", "o2")] == ["W_xh", "W_hh", "W_hy", "b_h", "y2"]


def test_last_step_loss_reads_only_the_last_output():
    table = {**BASE, "output_size": 1, "loss_at": "last", "targets": [["1"]]}
    d = derive_recurrent(load_recurrent(table))
    assert "y2" in d and "y1" not in d and "loss1" not in d
    assert {t.consumer for t in d.step("grad_h1").terms} == {"a2"}


# ----------------------------------------------------------------------------- handouts and the checker

def test_the_handouts_show_the_recursions_read_off_the_steps():
    import worked_examples
    from derive.handout.assemble import build
    from derive.kinds import load
    tex = build(load(worked_examples.path("000_4_elman_rnn"))).tex()
    assert (r"\frac{\partial \mathcal{L}}{\partial \mathbf{h}_{t}}$ & $=$ & $\mathbf{W}_{hy}^{\top} "
            r"\boldsymbol{\delta}^{y}_{t} + \mathbf{W}_{hh}^{\top} \boldsymbol{\delta}_{t+1}$") in tex
    assert r"\sum_{t} \boldsymbol{\delta}_{t} \mathbf{h}_{t-1}^{\top}" in tex
    lstm = build(load(worked_examples.path("000_4_lstm_cell"))).tex()
    assert (r"\frac{\partial \mathcal{L}}{\tanh(\mathbf{C}_{t})}" not in lstm and
            r"\odot \tanh'\left(\mathbf{C}_{t}\right) + \frac{\partial \mathcal{L}}{\partial \mathbf{C}_{t+1}} "
            r"\odot \mathbf{f}_{t+1}" in lstm)
    deck004 = build(load(worked_examples.path("004_11_rnn_forward"))).tex()
    assert r"\mathbf{z}_{1} & = \mathbf{U} \mathbf{x}_{1} + \mathbf{W} \mathbf{h}_{0} + \mathbf{b}_{a}" in deck004


def test_the_number_check_catches_a_wrong_number_in_a_recurrent_handout():
    import worked_examples
    from derive.handout.assemble import build
    from derive.kinds import names
    from derive.kinds import load
    from numbers_check import NumberCheck
    spec = load(worked_examples.path("000_4_elman_rnn"))
    d = derive_recurrent(spec.problem)
    tex = build(spec).tex()
    mutations = [(r"\approx \begin{bmatrix} 0.0524 & 0.0315", r"\approx \begin{bmatrix} 0.0525 & 0.0315"),
                 (r"= 0.5 \cdot 0.0784 + 0.2", r"= 0.5 \cdot 0.0785 + 0.2")]
    for old, new in [(None, None)] + mutations:
        check = NumberCheck(names([d], "xjtu"), [d], evaluate(d))
        if old is not None:
            assert old in tex, old
        check.document(tex if old is None else tex.replace(old, new, 1), "elman")
        assert bool(check.problems) == (old is not None), (old, check.problems[:3])
        assert check.checked > 100


def test_the_checker_grades_recurrent_answers(tmp_path, monkeypatch, capsys):
    """Numbers from the finite-difference oracle (rounded) are correct, a changed digit is wrong; a
    formula with the recursion is proved, one without the transpose is not."""
    import json
    from derive.cli import main
    monkeypatch.setenv("NNDERIVE_NO_SANDBOX", "1")
    import tomllib
    import worked_examples
    table = tomllib.loads(worked_examples.path("000_4_elman_rnn").read_text(encoding="utf-8"))["recurrent"]
    fd = fd_gradients({**table, "h0": ["0", "0"]})
    g = float(fd[("W_hh", (0, 1))])
    answers = tmp_path / "a.toml"
    answers.write_text("\n".join([
        'problem = "000_4_elman_rnn"', "[answers]",
        f'"grad_W_hh[0,1]" = "{g:.4f}"', f'"grad_W_hh[1,0]" = "{float(fd[("W_hh", (1, 0))]) + 0.01:.4f}"',
        "grad_h1 = '$W_{hy}^T \\frac{\\partial L}{\\partial s_1} + W_{hh}^T \\frac{\\partial L}{\\partial a_2}$'",
        "grad_h0 = '$W_{hh} \\frac{\\partial L}{\\partial a_1}$'"]) + "\n", encoding="utf-8")
    code = main(["check", "000_4_elman_rnn", str(answers), "--json", "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    verdicts = {r["quantity"] + ("" if r["index"] is None else str(r["index"])): r["verdict"]
                for r in out["submissions"][0]["records"]}
    assert code == 1 and verdicts == {"grad_W_hh[0, 1]": "correct", "grad_W_hh[1, 0]": "wrong",
                                      "grad_h1": "correct", "grad_h0": "wrong"}, verdicts


def test_a_recurrent_derivation_renders_in_jupyter():
    import worked_examples
    from derive.kinds import derive
    from derive.kinds import load
    from derive.handout.assemble import derivation_latex, derivation_markdown
    d = derive(load(worked_examples.path("000_4_lstm_cell")))
    latex, markdown = derivation_latex(d), derivation_markdown(d)
    assert latex.startswith("$$") and r"\mathbf{C}_{1} & = \mathbf{f}_{1} \odot \mathbf{C}_{0}" in latex
    assert "The backward pass starts at the loss." in markdown and r"\boldsymbol{\delta}^{f}_{2}" in markdown
    assert "rule:" not in markdown


def test_notation_overrides_rename_quantities_and_their_gradients():
    from derive.handout.assemble import build
    from derive.kinds import loads
    text = """[recurrent]
hidden_size = 1
inputs = [["1"], ["2"]]
targets = [["0"], ["1"]]
loss = "half_sse"
[notation]
h1 = "\\\\mathbf{m}_{1}"
U = "\\\\mathbf{A}"
"""
    tex = build(loads(text)).tex()
    assert r"\mathbf{m}_{1} & = \tanh\left(\mathbf{a}_{1}\right)" in tex
    assert r"\frac{\partial \mathcal{L}}{\partial \mathbf{m}_{1}}" in tex and r"\mathbf{A} \mathbf{x}_{1}" in tex
    with pytest.raises(SpecError, match="notation.nosuch"):
        build(loads(text + 'nosuch = "a"\n'))
