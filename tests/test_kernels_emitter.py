"""The one emitter's output, over every bundled example (and the shapes of a wide network): no
line longer than 120 characters, no copy ``a = b``, no constant assigned in a pass, the engine's
quantity names in the code and no ``q0``-style names, helpers named after the registry entry they
compute, a legend at the top of a graph kernel; and no import cycle in ``kernels/``.

Generation only (no Numba compile): the values are checked against the engine by
tests/test_kernels_engine.py and the other kernel tests.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import worked_examples
from derive import kinds
from derive.core import primitives
from derive.core.steps import LR
from derive.kinds.graph.spec import Graph
from derive.kinds.network.spec import Network
from derive.kinds import from_mapping, load
from kernels import api, codegen
from kernels.cache import render
from kernels.source import identifier
from kernels.text import WIDTH, fit

KERNELS = Path(__file__).resolve().parents[1] / "kernels"


def _problems():
    out = []
    for name in worked_examples.names():
        spec = load(worked_examples.path(name))
        if kinds.derive(spec) is not None:
            out.append(name)
    return out


EXAMPLES = _problems()


def _generate(name):
    problem = api._spec_of(name)
    if isinstance(problem, Network):
        return codegen.generate_network(problem, "unrolled"), problem
    if isinstance(problem, Graph):
        return codegen.generate_graph(problem), problem
    from derive.kinds import of
    return codegen.generate_derivation(of(problem).derive(problem), name), problem


def _tokens(text: str) -> set[str]:
    return {t.string for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.NAME}


def _helper_names() -> set[str]:
    names = {"log1pexp"}
    for a in primitives.ACTIVATIONS:
        names |= {a, a + "_prime"}
    return names


def test_the_examples_cover_every_kind():
    found = {kinds.derive(load(worked_examples.path(n))).kind for n in EXAMPLES}
    assert {"network", "graph", "cnn", "recurrent", "perceptron"} <= found


@pytest.mark.parametrize("name", EXAMPLES)
def test_emitted_module_properties(name):
    source, problem = _generate(name)
    text = render(source)
    lines = text.splitlines()
    assert max(map(len, lines)) <= WIDTH, [l for l in lines if len(l) > WIDTH][:3]
    # no copies: no statement whose right side is a bare identifier
    copies = [l for l in lines if re.fullmatch(r"\s*[A-Za-z_]\w* = [A-Za-z_]\w*", l)]
    assert not copies, copies
    # in the passes, no constant is assigned (constants are folded into their uses)
    for f in source.functions:
        if f.name.endswith("_pass"):
            consts = [l for l in f.text.splitlines() if re.fullmatch(r"\s*\w+ = -?[\d.]+(e-?\d+)?", l)]
            assert not consts, (f.name, consts)
    tokens = _tokens(text)
    assert not {t for t in tokens if re.fullmatch(r"q\d+(_\d+)*", t)}, "opaque q-names"
    assert not {t for t in tokens if re.fullmatch(r"g\d+(_v)?", t)}, "opaque helper names"
    # the engine's quantity names, element by element, are the code's names
    derivation = kinds.derive(load(worked_examples.path(name)))
    for step in derivation.steps:
        if step.rule == "given":
            continue                   # a given value appears where it is read (some are read by none)
        for idx in step.target.indices():
            ident = identifier(step.name + "".join(f"_{i}" for i in idx)) if step.name != LR else "lr"
            assert ident in tokens, (step.name, idx)
    helpers = {h.split("(")[0][4:].removesuffix("_f32") for h in source.helpers}     # and their float32 twins
    rules = {step.rule for step in derivation.steps}
    assert helpers <= _helper_names() | rules | {f"{h}_{k}" for h in rules for k in range(2, 9)}, helpers
    if isinstance(problem, Graph):
        legend = text.split('"""', 2)[2].lstrip("\n").splitlines()
        assert legend[0].startswith("# The values v")
        for k, (value, _) in enumerate(problem.values):
            assert any(l.startswith(f"#   v[{k}] = {value} (") for l in legend), value


def test_a_network_pass_is_printed_once():
    """The 3-3-3-3 module: each pass defined once (and once as the float32 twin the float32
    many-problems loop calls), the entry points call it; smaller than the 1 232 (later 1 582) lines
    of the five repeated copies (1 321 lines since sgd_step sums the gradient over the rows itself)."""
    source, _ = _generate("000_3_mlp_3333")
    text = render(source)
    for name in ["forward_pass", "backward_pass", "update_pass"]:
        assert text.count(f"def {name}(") == 1 and text.count(f"def {name}_f32(") == 1
        assert text.count(f"{name}((") + text.count(f"{name}_inline((") >= 2
        assert text.count(f"{name}_f32_inline((") == 1
    assert text.count("delta3_0 = ") == 2 and len(text.splitlines()) < 1400


@pytest.mark.parametrize("acts", [("relu", "sigmoid"), ("leaky_relu", "softmax"), ("elu", "identity"),
                                  ("swish", "softplus"), ("tanh", "sigmoid")])
def test_helpers_named_after_the_registry(acts):
    loss = "cross_entropy" if acts[1] == "softmax" else "half_sse"
    spec = from_mapping({"network": {"input_size": 2, "loss": loss,
                                     "layer": [{"size": 2, "activation": acts[0]}, {"size": 2, "activation": acts[1]}]}})
    source = codegen.generate_network(spec.problem, "unrolled")
    helpers = {h.split("(")[0][4:] for h in source.helpers}
    assert {h + "_f32" for h in helpers if not h.endswith("_f32")} <= helpers    # each with its float32 twin
    helpers = {h for h in helpers if not h.endswith("_f32")}
    for a in acts:
        if a not in ("identity", "softmax"):
            assert a in helpers or a + "_prime" in helpers, (a, helpers)
    assert helpers <= _helper_names(), helpers


_TEXT = st.text(alphabet="ab_ +*(),0123456789", min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True), min_size=1, max_size=60),
       st.sampled_from(["    ", "        "]))
def test_fit_keeps_the_statement(names, indent):
    """A long assignment or unpacking is broken inside brackets only: joined again it is the same
    Python (same AST), and no line is longer than the width when it can be broken."""
    for line in [f"{indent}x = {' + '.join(names)}", f"{indent}({', '.join(names)},) = f(({', '.join(names)},))",
                 f"{indent}return ({', '.join(names)})"]:
        parts = fit(line)
        body = "\n".join(p[len(indent):] if i == 0 else p for i, p in enumerate(parts))
        wrap = (lambda s: "def f():\n    " + s.replace("\n", "\n    ")) if "return" in line else (lambda s: s)
        assert ast.dump(ast.parse(wrap(body))) == ast.dump(ast.parse(wrap(line[len(indent):])))
        assert all(len(p) <= WIDTH for p in parts) or max(map(len, names)) + 20 > WIDTH


def _imports(path: Path) -> set[str]:
    """The kernels modules ``path`` imports, anywhere in it (a function body counts too)."""
    out = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    out.add(node.module.split(".")[0])
                else:
                    out |= {a.name for a in node.names}
            elif node.module and node.module.startswith("kernels"):
                parts = node.module.split(".")
                out.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "kernels":
                    out.add("__init__")
                elif a.name.startswith("kernels."):
                    out.add(a.name.split(".")[1])
    return out


def test_no_import_cycle_in_kernels():
    modules = {p.stem: p for p in KERNELS.glob("*.py")}
    graph = {m: {d for d in _imports(p) if d in modules and d != m} for m, p in modules.items()}
    assert graph["codegen"] >= {"unrolled", "blas", "source"}
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError("import cycle: " + " -> ".join(path + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for d in sorted(graph[m]):
            visit(d, path + [m])
        state[m] = 2
    for m in sorted(graph):
        visit(m, [])


def test_the_cache_module_is_not_named_compile():
    assert not (KERNELS / "compile.py").exists() and (KERNELS / "cache.py").exists()
    import kernels
    assert callable(kernels.compile)


_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True) | st.sampled_from(
    ["math", "np", "theta", "lr", "c0", "c0_", "eval", "sigmoid", "given", "x_", "x", "None", "for", "sum"])


@settings(max_examples=100, deadline=None)
@given(st.sets(_NAMES, min_size=1, max_size=30))
def test_identifiers_never_shadow_and_never_collide(names):
    """A spec's names as identifiers: one-to-one, valid Python, never a keyword, a builtin, a name of
    the module (``taken``: its helpers) or a common subexpression ``c<k>``."""
    import builtins
    import keyword

    from kernels.source import RESERVED
    taken = frozenset({"sigmoid", "relu_prime"})
    idents = {n: identifier(n, taken) for n in names}
    assert len(set(idents.values())) == len(idents)
    for name, ident in idents.items():
        assert ident.isidentifier() and not keyword.iskeyword(ident) and not hasattr(builtins, ident)
        assert ident not in RESERVED and ident not in taken and not re.fullmatch(r"c\d+", ident)
        assert ident in (name, name + "_")
