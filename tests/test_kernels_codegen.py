"""The generated source: safe identifiers, readable and registered, cached across processes.

Also the index form of the affine layer, the printer and the import hygiene (``derive`` never
imports Numba; ``kernels`` imports neither Numba nor SymPy until used).
"""
from __future__ import annotations

import re
import io
import json
import linecache
import math
import os
import subprocess
import sys
import tokenize

import numpy as np
import pytest
import sympy as sp

import kernels
from derive import kinds
from derive.core import evaluate
from derive.kinds import from_mapping
from kernels import codegen, indexform
from kernels.printer import KernelPrinter
from kernel_fixtures import CACHE

HOSTILE = ["system", "eval", "getattr", "globals", "exit", "theta", "lr", "math", "np", "c0", "q0", "g0"]


def _names_in(source: str) -> set[str]:
    return {tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.NAME}


def test_graph_names_never_shadow_the_code():
    """Node and value names that collide with builtins, our identifiers and modules are renamed
    (``_`` appended); the others are the code's names, and the kernel computes the engine's numbers."""
    values = {"system": "1.5", "eval": "-0.5", "theta": "0.25", "lr": "2"}
    nodes = ["getattr = system*eval + theta", "globals = sigmoid(getattr)", "math = globals*lr",
             "np = exp(math) + c0x", "c0 = np - 1", "q0 = c0*c0", "exit = q0/2", "g0 = exit + log(lr)"]
    spec = from_mapping({"graph": {"values": {**values, "c0x": "0.1"}, "params": ["eval", "theta", "lr"],
                                   "nodes": nodes, "loss": "g0", "learning_rate": "0.1"}})
    k = kernels.compile(spec, cache_dir=CACHE)
    generated = codegen.generate_graph(spec.problem)
    names = _names_in(generated.body())
    assert not names & {"eval", "getattr", "globals", "exit", "theta"}   # builtins, ours
    assert {"eval_", "getattr_", "globals_", "exit_", "theta_", "c0_", "math_", "np_", "system", "c0x", "q0",
            "g0", "grad_eval"} <= names
    assert "lr" in names                                       # lr is our argument, not the spec's value
    assert all(re.fullmatch(r"math\.\w+|np\.\w+", use) for use in re.findall(r"\b(?:math|np)\b\.?\w*",
                                                                                generated.body()))
    # the kernel still computes the engine's numbers, under names it chose itself
    d = kinds.derive(spec)
    vals = evaluate.evaluate(d)
    trace = k.trace(k.values_from_spec(), 0.1)
    for name in ["getattr", "globals", "math", "np", "c0", "q0", "exit", "g0", "grad_eval", "lr_new"]:
        assert math.isclose(float(trace[name]), float(vals[d.quantity(name).symbol()]), rel_tol=1e-12)


def test_network_identifiers_come_from_the_engine():
    spec = from_mapping({"network": {"input_size": 2, "loss": "mse",
                                     "layer": [{"size": 2, "activation": "tanh"}, {"size": 1, "activation": "identity"}]}})
    src = codegen.generate_network(spec.problem).body()
    assert {"z1_0", "h1_1", "delta2_0", "grad_W1_1_0", "W2_new_0_1"} <= _names_in(src)


def test_source_is_readable_registered_and_kept():
    k = kernels.compile("000_3_mlp_3333", cache_dir=CACHE)
    assert k.source.startswith('"""nnderive kernel: 3-3-3-3 network')
    assert "@njit(cache=True" in k.source
    # no fastmath flag that assumes no NaN or inf (the finiteness checks depend on them); contract is fine
    for flags in re.findall(r"fastmath=([^)]*?)(?:,\s*inline|\))", k.source):
        assert flags.strip() in ('{"contract"}', "{'contract'}"), flags
    assert linecache.getlines(str(k.path)) == k.source.splitlines(True)
    assert k.path.read_text() == k.source
    backward = {f.name: f.text for f in codegen.generate_network(kernels.api._spec_of("000_3_mlp_3333")).functions}[
        "backward_pass"]
    assert "delta3_0 = gprime3_0*grad_y_0" in backward       # the derivation's own steps, by name
    assert "grad_y_0 = h3_0 - t_0" in backward               # shared with the loss (no c0 = ..., grad_y_0 = c0)
    assert "(grad_y_0*grad_y_0)" in backward


def test_no_overflowing_derivative_form():
    """σ' is never printed as e^{−z}/(1 + e^{−z})² on the branch where e^{−z} can overflow."""
    spec = from_mapping({"network": {"input_size": 2, "loss": "half_sse",
                                     "layer": [{"size": 2, "activation": "swish"}, {"size": 1, "activation": "softplus"}]}})
    src = codegen.generate_network(spec.problem)
    for helper in src.helpers:
        lines = helper.splitlines()
        for i, line in enumerate(lines):
            if "exp(-a0)" in line:                           # only inside the a0 ≥ 0 (or > 0) branch
                assert any(l.strip().startswith(("if (a0 >= 0)", "if (a0 > 0)")) for l in lines[:i]), helper
                assert not any(l.strip().startswith("return") for l in lines[1:i] if "if" not in l), helper


def test_a_second_process_loads_without_compiling(tmp_path):
    script = ("import json, kernels\n"
              "k = kernels.compile('004_5_linear_regression')\n"
              "v = k.values_from_spec(); k.sgd_step(v, 0.1)\n"
              "s = k.raw.sgd_step.stats\n"
              "print(json.dumps({'hits': sum(s.cache_hits.values()), 'misses': sum(s.cache_misses.values())}))\n")
    env = {**os.environ, "NNDERIVE_CACHE": str(tmp_path)}
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True,
                                      text=True).stdout) for _ in range(2)]
    assert runs[0] == {"hits": 0, "misses": 1}
    assert runs[1] == {"hits": 1, "misses": 0}
    (folder,) = [p for p in tmp_path.iterdir() if (p / "meta.json").exists()]
    meta = json.loads((folder / "meta.json").read_text())
    assert len(meta["derivation"]) == 64 and (folder / "kernel.py").exists()


def test_a_damaged_cache_entry_is_regenerated(tmp_path):
    k = kernels.compile("003_3_graph_xyz", cache_dir=tmp_path)
    k.path.write_text(k.source.replace("return", "return 0 *"))      # the module no longer matches meta.json
    sys.modules.pop(f"kernels._generated_{k.path.parent.name}")
    again = kernels.compile("003_3_graph_xyz", cache_dir=tmp_path)
    assert again.source == k.source


def test_imports_stay_light():
    code = ("import sys, derive, derive.cli, derive.kinds.network.derivation, derive.core.evaluate, derive.verify.stated\n"
            "derive.cli.build_parser()\n"
            "assert 'numba' not in sys.modules, 'derive imported numba'\n"
            "import kernels, kernels.cli\n"
            "assert 'numba' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, kernels, kernels.cli; assert not {'numba', 'sympy'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- index form, printer

def test_index_form_products_are_matrix_products():
    f = indexform.affine_forms()
    W, H, D = (indexform.MATRICES[k] for k in "WHD")
    assert f.forward == H * W.T and f.weight == D.T * H and f.back == D * W
    rng = np.random.default_rng(0)
    sizes = {indexform.B: 3, indexform.N: 4, indexform.M: 2}
    Wv, Hv, Dv = rng.normal(size=(4, 2)), rng.normal(size=(3, 2)), rng.normal(size=(3, 4))
    el = {"W": lambda i: Wv[i], "H": lambda i: Hv[i], "D": lambda i: Dv[i], "b": lambda i: 0.0}
    idx = {str(a): a for e in (f.grad_W, f.grad_h) for a in e.atoms(sp.Idx)}
    gW = [[float(indexform.instantiate(f.grad_W, sizes, {idx["k"]: k, idx["l"]: l}, el)) for l in range(2)]
          for k in range(4)]
    np.testing.assert_allclose(gW, Dv.T @ Hv)                       # Σ_n δ[n,k] h[n,l] = (δᵀ h)[k,l]
    gH = [[float(indexform.instantiate(f.grad_h, sizes, {idx["m"]: m, idx["l"]: l}, el)) for l in range(2)]
          for m in range(3)]
    np.testing.assert_allclose(gH, Dv @ Wv)


X, Y = sp.symbols("x y", real=True)


@pytest.mark.parametrize("expr", [X**2 / Y**3, 1 / (1 + sp.exp(-X))**2, sp.exp(2 * X) / (sp.exp(X) + 1)**2 - X**-2,
                                  (X - Y)**2 / 2 + X**4 * Y, -X**2 + 1 / Y], ids=str)
def test_printed_expressions_evaluate_to_sympys_value(expr):
    code = KernelPrinter({X: "x", Y: "y"}).doprint(expr)
    value = eval(code, {"math": math, "x": 0.7, "y": -1.3})  # safe: printed by our printer from the constants above
    assert math.isclose(value, float(expr.subs({X: 0.7, Y: -1.3})), rel_tol=1e-14)


def test_a_spec_file_seen_before_loads_without_sympy(tmp_path):
    spec = tmp_path / "net.toml"
    spec.write_text('[network]\ninput = ["0.5", "-1"]\ntarget = ["1"]\nlearning_rate = "0.1"\nloss = "half_sse"\n'
                    '[[network.layer]]\nweights = [["0.3", "0.2"]]\nbias = ["0.1"]\nactivation = "sigmoid"\n')
    script = ("import json, sys, kernels\n"
              f"k = kernels.compile({str(spec)!r})\n"
              "theta = k.params_from_spec(); x, t, lr = k.spec_sample()\n"
              "print(json.dumps({'loss': k.sgd_step(theta, x, t, lr), 'sympy': 'sympy' in sys.modules}))\n")
    env = {**os.environ, "NNDERIVE_CACHE": str(tmp_path / "cache")}
    first, second = (json.loads(subprocess.run([sys.executable, "-c", script], env=env, check=True,
                                               capture_output=True, text=True).stdout) for _ in range(2))
    assert first["sympy"] and not second["sympy"] and first["loss"] == second["loss"]
    spec.write_text(spec.read_text().replace('"0.3"', '"0.4"'))           # other bytes: a fresh look
    third = json.loads(subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True,
                                      text=True).stdout)
    assert third["sympy"] and third["loss"] != first["loss"]


def test_an_engine_edit_that_changes_nothing_reuses_the_module(tmp_path, monkeypatch):
    import importlib
    kcompile = importlib.import_module("kernels.cache")
    first = kernels.compile(from_mapping({"graph": {"values": {"a": "2", "b": "3"}, "params": ["a"],
                                                    "nodes": ["p = a*b", "L = p*p"]}}), cache_dir=tmp_path)
    monkeypatch.setattr(kcompile, "_fingerprint", "an edited comment somewhere in the engine")
    second = kernels.compile(from_mapping({"graph": {"values": {"a": "2", "b": "3"}, "params": ["a"],
                                                     "nodes": ["p = a*b", "L = p*p"]}}), cache_dir=tmp_path)
    assert len(list((tmp_path / "structures").iterdir())) == 2          # two structure keys ...
    assert second.path == first.path                                    # ... one module, compiled once
    assert [p for p in tmp_path.iterdir() if (p / "meta.json").exists()] == [first.path.parent]
