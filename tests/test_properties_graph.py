"""Property tests over random scalar graphs written as spec files (tests/strategies_graph.py).

For every generated ``[graph]`` spec, each command (``verify``, ``solve --json``, ``handout`` in
tex and md, ``check`` of a generated answer file) either succeeds or exits 2 with one line naming
the key path, never a traceback, and exits 1 only when a stated number or an answer really is
wrong.  Oracles: an mpmath forward-mode evaluation of the generated straight-line code at 50
digits (values and every gradient, tests/strategies_graph.py); PyTorch autograd away from kinks;
the handout's numbers are read back and compared with the engine's values (tests/numbers_check.py,
whose engine values equal the mpmath oracle by the first property); the kernels equal ``solve``.
"""
from __future__ import annotations

import json
import math
import tempfile
from fractions import Fraction
from pathlib import Path

import mpmath
import pytest
from hypothesis import assume, given, note

from cli_props import in_process, refused, run, solve  # noqa: F401  (in_process: autouse fixture)
from strategies import fuzz_profile as profile
from strategies_graph import GraphCase, Undefined, graphs, kink_distance, oracle

REL = mpmath.mpf(10) ** -25


def _close_exact(text: str, true) -> bool:
    """``solve``'s exact string ("p/q" or "[lo, hi]" at 30 digits) holds the oracle's value."""
    with mpmath.workdps(50):
        if text.startswith("["):
            lo, hi = (mpmath.mpf(t) for t in text[1:-1].split(","))
            slack = REL * max(1, abs(true))
            return lo - slack <= true <= hi + slack
        f = Fraction(text)
        return abs(mpmath.mpf(f.numerator) / f.denominator - true) <= REL * max(1, abs(true))


def _oracle(case: GraphCase):
    try:
        return oracle(case)
    except Undefined as why:
        note(f"oracle: undefined ({why})")
        return None


def _write(tmp: str, case: GraphCase) -> Path:
    path = Path(tmp) / "graph.toml"
    path.write_text(case.toml, encoding="utf-8")
    return path


@profile(scale=0.8)
@given(case=graphs())
def test_graph_commands_succeed_or_name_the_key(case: GraphCase, capsys):
    note(case.toml)
    truth = _oracle(case)
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, case)
        # solve: the oracle's values, exactly (the exact strings hold them at 25 digits)
        solved = solve(capsys, path)
        if truth is None:
            assume(solved is None)   # (the oracle refuses what the engine might define by a limit)
        else:
            assert solved is not None, "a graph with finite values and gradients was refused"
            values, grads = truth
            exact = solved["exact"]
            for name, v in values.items():
                assert _close_exact(exact[name], v), (name, exact[name], v)
            for name, g in grads.items():
                assert _close_exact(exact[f"grad_{name}"], g), (name, exact[f"grad_{name}"], g)

        # verify: right numbers are exact, wrong ones are not; exit 1 exactly when one is wrong
        code, out, err = run(capsys, "verify", path, "--json", "--jobs", "1")
        if solved is None:
            assert code in (0, 1) or refused(code, err), (code, err)
        else:
            assert code in (0, 1), (code, err)
            records = json.loads(out)["examples"][0]["records"]
            verdicts = {r["quantity"]: r["verdict"] for r in records}
            for key, shown, right in case.stated:
                assert (verdicts[key] == "exact") == right, (key, shown, right, verdicts[key])
            assert code == (1 if "wrong" in verdicts.values() else 0), (code, verdicts)

        # handout, tex and md: written whenever solve works, its numbers the engine's
        for fmt in ("tex", "md"):
            target = Path(tmp) / "out" / f"graph.{fmt}"
            code, _, err = run(capsys, "handout", path, "-o", target)
            if solved is None:
                assert code == 0 or refused(code, err), (code, err)
                continue
            assert code == 0, (code, err)
            _numbers_are_the_engines(case, path, target.read_text(encoding="utf-8"), fmt)

        # check: an answer file of the oracle's numbers, some rounded right and some wrong
        if truth is not None:
            _check_answers(capsys, tmp, path, case, truth)


def _numbers_are_the_engines(case, path, doc: str, fmt: str) -> None:
    from derive.kinds import derive
    from derive.core.evaluate import evaluate
    from derive.kinds import of_spec  # the names the handout prints (its profile)
    from derive.kinds import load
    from derive.verify.stated import verify_spec
    from numbers_check import NumberCheck
    spec = load(path)
    d = derive(spec)
    check = NumberCheck(of_spec(spec, d),
                        [d], evaluate(d), report=verify_spec(spec))
    check.document(doc, f"graph.{fmt}")
    # NumberCheck reads a form of named quantities; a path product of local derivatives
    # (∂x″/∂x′ · ∂x′/∂a = 1 · 1) has no names it knows, so only wrong numbers count here
    wrong = [p for p in check.problems if " shown as " in p]
    assert check.checked and not wrong, wrong[:5]


def _check_answers(capsys, tmp: str, path: Path, case: GraphCase, truth) -> None:
    values, grads = truth
    true = {**{n: values[n] for n, _ in case.nodes}, **{f"grad_{n}": g for n, g in grads.items()}}
    keys = sorted(k for k, v in true.items() if abs(v) < 1e6)
    lines, wrong = ["[answers]"], 0
    for i, key in enumerate(keys):
        v = true[key]
        if i % 3 == 2:      # every third answer is wrong by 3 units of the 4th decimal
            v, wrong = v + mpmath.mpf("0.0003") * (1 if i % 2 else -1), wrong + 1
        with mpmath.workdps(50):
            lines.append(f'{key} = "{mpmath.nstr(mpmath.nint(v * 10**4) / 10**4, 20, strip_zeros=False, min_fixed=-99, max_fixed=99)}"')
    answers = Path(tmp) / "answers.toml"
    answers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run(capsys, "check", path, answers, "--json", "--jobs", "1")
    assert code in (0, 1), (code, err)
    sub = json.loads(out)["submissions"][0]
    assert sub["score"] <= sub["max_score"] + 1e-9
    verdicts = {r["quantity"]: r["verdict"] for r in sub["records"]}
    note(f"answers: {lines}\nverdicts: {verdicts}")
    assert code == (1 if wrong else 0), (code, verdicts)


# ----------------------------------------------------------------------------- PyTorch autograd

def _torch_eval(tree, env, torch):
    op = tree[0]
    if op == "num":
        return torch.tensor(float(tree[1]), dtype=torch.float64)
    if op == "ref":
        return env[tree[1]]
    if op == "neg":
        return -_torch_eval(tree[1], env, torch)
    if op == "pow":
        return _torch_eval(tree[1], env, torch) ** tree[2]
    if op == "call":
        args = [_torch_eval(a, env, torch) for a in tree[2]]
        kw = {k: float(v) for k, v in tree[3]}
        x = args[0]
        a = kw.get("alpha", 0.01 if tree[1] == "leaky_relu" else 1.0)
        b = kw.get("beta", 1.0)
        one = torch.ones((), dtype=torch.float64)
        return {
            "exp": lambda: torch.exp(x), "log": lambda: torch.log(x), "sqrt": lambda: torch.sqrt(x),
            "abs": lambda: torch.abs(x), "sech": lambda: 1 / torch.cosh(x),
            "max": lambda: torch.maximum(x, args[-1]), "min": lambda: torch.minimum(x, args[-1]),
            "identity": lambda: x, "sigmoid": lambda: torch.sigmoid(x), "tanh": lambda: torch.tanh(x),
            "relu": lambda: torch.relu(x), "leaky_relu": lambda: torch.where(x > 0, x, a * x),
            "elu": lambda: torch.where(x > 0, x, a * torch.expm1(x)),
            "softplus": lambda: torch.nn.functional.softplus(x), "swish": lambda: x * torch.sigmoid(b * x),
            "bipolar_sigmoid": lambda: torch.tanh(x / 2),
            "sign": lambda: torch.where(x >= 0, one, -one), "step": lambda: torch.where(x >= 0, one, 0 * one),
        }[tree[1]]()
    l, r = _torch_eval(tree[1], env, torch), _torch_eval(tree[2], env, torch)
    return {"add": l + r, "sub": l - r, "mul": l * r, "div": l / r}[op]


@profile(scale=2.0)
@given(case=graphs(stated=False))
def test_graph_solve_equals_pytorch(case: GraphCase, capsys):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the autograd reference is skipped")
    note(case.toml)
    truth = _oracle(case)
    assume(truth is not None and kink_distance() > 1e-9)   # at a kink PyTorch's choice may differ
    env = {n: torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for n, v in case.values}
    leaves = dict(env)
    for name, tree in case.nodes:
        env[name] = _torch_eval(tree, env, torch)
    loss = env[case.loss]
    assume(bool(torch.isfinite(loss)))
    if loss.requires_grad:
        loss.backward()
    with tempfile.TemporaryDirectory() as tmp:
        solved = solve(capsys, _write(tmp, case))
    assert solved is not None
    q = solved["quantities"]
    close = lambda a, b: abs(a - b) <= 1e-9 * max(1.0, abs(b))
    assert close(float(q[case.loss]), loss.item())
    for n, t in leaves.items():
        ref = 0.0 if t.grad is None else t.grad.item()
        assume(math.isfinite(ref))
        assert close(float(q[f"grad_{n}"]), ref), (n, q[f"grad_{n}"], ref)


# ----------------------------------------------------------------------------- kernels

_CACHE = tempfile.TemporaryDirectory(prefix="nnderive-props-graph-kernels-")


@profile(scale=0.5)
@given(case=graphs(stated=False))
def test_graph_kernel_equals_the_engine(case: GraphCase, capsys):
    import kernels
    from derive.kinds import loads
    note(case.toml)
    assume(_oracle(case) is not None)
    with tempfile.TemporaryDirectory() as tmp:
        solved = solve(capsys, _write(tmp, case))
    assert solved is not None
    k = kernels.compile(loads(case.toml), cache_dir=_CACHE.name)
    v = k.values_from_spec()
    try:
        loss, grad = k.loss_and_grad(v)
    except kernels.NonFiniteError:
        pytest.fail("the kernel is not finite where the engine is")
    q = solved["quantities"]
    close = lambda a, b: abs(a - b) <= 1e-9 * max(1.0, abs(b))
    assert close(loss, float(q[case.loss]))
    for name, g in zip(k.names, grad):
        assert close(float(g), float(q[f"grad_{name}"])), (name, float(g), q[f"grad_{name}"])
    trace = k.trace(v)      # every node and gradient (and, at lr = 0, the *_new of the update step)
    assert {n for n, _ in case.nodes} <= set(trace)
    for name, value in trace.items():
        if name in q:
            assert close(float(value), float(q[name])), (name, float(value), q[name])
