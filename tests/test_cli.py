"""The command line: output formats, exit codes, and one clear line for every kind of bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import worked_examples

ROOT = Path(__file__).resolve().parent.parent


def run(*args, cwd=ROOT, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "derive.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_verify_json_has_the_documented_shape():
    done = run("verify", "--json", "000_3_mlp_3333", "004_7_activations")
    data = json.loads(done.stdout)
    assert [e["name"] for e in data["examples"]] == ["000_3_mlp_3333", "004_7_activations"]
    rec = data["examples"][0]["records"][0]
    assert {"quantity", "index", "stated", "value", "carried", "verdict"} <= set(rec)
    assert isinstance(rec["index"], list) and isinstance(rec["value"], float)
    verdicts = {r["verdict"] for e in data["examples"] for r in e["records"]}
    assert verdicts <= {"exact", "carried", "wrong"}
    claims = data["examples"][1]["claims"]
    assert claims and {c["verdict"] for c in claims} <= {"proved", "differs", "undetermined"}
    # exit status follows the verdicts: 1 exactly when something is wrong or differs
    failed = any(r["verdict"] == "wrong" for e in data["examples"] for r in e["records"]) or \
        any(c["verdict"] == "differs" for e in data["examples"] for c in e["claims"])
    assert done.returncode == (1 if failed else 0)


def test_verify_exit_code_is_zero_when_nothing_is_wrong():
    done = run("verify", "--json", "004_5_linear_regression")
    data = json.loads(done.stdout)
    assert all(r["verdict"] != "wrong" for r in data["examples"][0]["records"])
    assert done.returncode == 0


def test_solve_json_gives_every_quantity_as_floats():
    done = run("solve", "000_3_mlp_3333", "--json")
    assert done.returncode == 0
    q = json.loads(done.stdout)["quantities"]
    for name in ("z1", "h3", "y", "loss", "grad_y", "gprime2", "delta1", "grad_W1", "grad_b3", "W1_new", "loss_new"):
        assert name in q, name
    assert len(q["W1_new"]) == 3 and all(isinstance(v, float) for v in q["W1_new"][0])
    assert q["loss_new"] < q["loss"]   # one gradient step with a small rate lowers this loss


def test_list_names_every_bundled_example():
    data = json.loads(run("list", "--json").stdout)
    assert [e["name"] for e in data["examples"]] == worked_examples.names()
    assert all(e["source"] for e in data["examples"])


BAD = {
    "malformed_toml": ("[network\ninput = [", "not valid TOML"),
    "unknown_activation": ('[network]\ninput=["1"]\ntarget=["1"]\nloss="half_sse"\n[[network.layer]]\n'
                           'weights=[["1"]]\nactivation="sigmod"\n', "network.layer[0].activation"),
    "shape_mismatch": ('[network]\ninput=["1","2"]\ntarget=["1"]\nloss="half_sse"\n[[network.layer]]\n'
                       'weights=[["1","2","3"]]\nactivation="sigmoid"\n', "network.input: expected 3 numbers"),
    # issue 10: a 3-element input to a 2-input layer names the input, not the weights
    "input_too_long": ('[network]\ninput=["1","2","3"]\ntarget=["1"]\nloss="half_sse"\n[[network.layer]]\n'
                       'weights=[["1","2"]]\nactivation="sigmoid"\n', "network.input: expected 2 numbers"),
    "ragged_weights": ('[network]\ninput=["1","2"]\ntarget=["1","2"]\nloss="half_sse"\n[[network.layer]]\n'
                       'weights=[["1","2"],["1"]]\nactivation="sigmoid"\n', "network.layer[0].weights[1]"),
    "short_stated_vector": ('[network]\ninput=["1","2"]\ntarget=["1","2"]\nloss="half_sse"\n[[network.layer]]\n'
                            'weights=[["1","2"],["3","4"]]\nactivation="identity"\n[stated]\nz1=["5"]\n',
                            "stated.z1: z1 has 2 numbers; the stated list has 1"),
    "short_stated_row": ('[network]\ninput=["1","2"]\ntarget=["1","2"]\nloss="half_sse"\n[[network.layer]]\n'
                         'weights=[["1","2"],["3","4"]]\nactivation="identity"\n[stated]\nW1=[["1","2"],["3"]]\n',
                         "stated.W1[1]: W1 is 2 x 2"),
    "non_numeric": ('[network]\ninput=["one","2"]\ntarget=["1"]\nloss="half_sse"\n[[network.layer]]\n'
                    'weights=[["1","2"]]\nactivation="sigmoid"\n', "network.input[0]"),
    "nan": ('[network]\ninput=["nan","2"]\ntarget=["1"]\nloss="half_sse"\n[[network.layer]]\n'
            'weights=[["1","2"]]\nactivation="sigmoid"\n', "network.input[0]"),
    "inf_in_stated": ('[graph]\nvalues={x="1"}\nnodes=["f = 2*x"]\n[stated]\nf="inf"\n', "stated.f"),
    "huge_exponent": ('[graph]\nvalues={x="1e999"}\nnodes=["f = 2*x"]\n', "graph.values.x"),
    "absurd_size": ('[network]\ninput_size=100000\nloss="half_sse"\n[[network.layer]]\nsize=100000\n'
                    'activation="sigmoid"\n[stated]\n"z1[0]"="1"\n', "network"),
    "code_injection": ('[graph]\nvalues={x="1"}\nnodes=["f = __import__(\'os\').system(\'touch MARKER\')"]\n',
                       "graph.nodes[0]"),
    "dunder_attribute": ('[graph]\nvalues={x="1"}\nnodes=["f = x.__class__"]\n', "graph.nodes[0]"),
    "unknown_quantity": ('[graph]\nvalues={x="1"}\nnodes=["f = 2*x"]\n[stated]\ng="2"\n', "stated.g"),
    "deep_nesting": ('[graph]\nvalues={x="1"}\nnodes=["f = ' + "(x+" * 60 + "x" + ")" * 60 + '"]\n', "graph.nodes[0]"),
    "division_by_zero": ('[graph]\nvalues={x="0"}\nnodes=["f = 1/x"]\n[stated]\nf="1"\n', "f"),
    "big_power": ('[graph]\nvalues={x="10"}\nnodes=["f = x**(10**10)"]\n', "graph.nodes[0]"),
    "missing_target": ('[network]\ninput=["1","2"]\nloss="half_sse"\n[[network.layer]]\n'
                       'weights=[["1","2"]]\nactivation="sigmoid"\n', "network.target"),
    "missing_weights": ('[network]\ninput=["1","2"]\ntarget=["1"]\nloss="half_sse"\n[[network.layer]]\n'
                        'size=1\nactivation="sigmoid"\n', "network.layer[0].weights"),
    "missing_input": ('[network]\ninput_size=2\ntarget=["1"]\nloss="half_sse"\n[[network.layer]]\n'
                      'size=1\nactivation="sigmoid"\n', "network.input"),
    "wrong_stated_shape": ('[graph]\nvalues={x="1"}\nnodes=["f = 2*x"]\n[stated]\nf=["1","2"]\n', "stated.f"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_exits_2_with_one_line_naming_the_key(name, tmp_path):
    text, key = BAD[name]
    spec = tmp_path / f"{name}.toml"
    spec.write_text(text)
    done = run("verify", str(spec), cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"nnderive: error: {name}.toml: "), lines[0]
    assert key in lines[0], lines[0]
    assert done.stdout == ""   # never a partial result presented as complete
    assert not (tmp_path / "MARKER").exists()   # the injected code never ran


def test_a_symbolic_network_only_when_asked_for_or_without_any_number(tmp_path):
    """Regression (issue 10): input and weights without a target became a symbolic network silently."""
    layer = '[[network.layer]]\nweights=[["1","2"]]\nactivation="sigmoid"\n'
    asked = tmp_path / "asked.toml"
    asked.write_text('[network]\ninput=["1","2"]\ntarget="symbol"\nloss="half_sse"\n' + layer +
                     '[[claim]]\nlhs="dL_dz1"\nrhs="grad_y * gprime1"\n')
    done = run("verify", str(asked), cwd=tmp_path)
    assert done.returncode == 0 and "1 proved" in done.stdout, done.stdout + done.stderr
    done = run("solve", str(asked), cwd=tmp_path)
    assert done.returncode == 2 and "t given no numbers" in done.stderr, done.stderr
    none = tmp_path / "none.toml"
    none.write_text('[network]\ninput_size=2\nloss="half_sse"\n[[network.layer]]\nsize=1\nactivation="sigmoid"\n'
                    '[[claim]]\nlhs="dL_dz1"\nrhs="grad_y * gprime1"\n')
    done = run("verify", str(none), cwd=tmp_path)
    assert done.returncode == 0 and "1 proved" in done.stdout, done.stdout + done.stderr


def test_json_specs_are_read_too(tmp_path):
    spec = tmp_path / "lr.json"
    spec.write_text('{"graph": {"values": {"w": "0.8", "x": "1.5"}, "nodes": ["y = w*x"]}, "stated": {"y": 1.20}}')
    done = run("verify", "--json", str(spec))
    rec = json.loads(done.stdout)["examples"][0]["records"][0]
    assert rec["stated"] == "1.20" and rec["verdict"] == "exact"   # the JSON float kept its digits


def test_a_spec_that_runs_too_long_is_stopped(tmp_path):
    # 400 chained exponentials of a sum: far more than a 0.5 s budget
    nodes = ", ".join(f'"n{i} = exp(n{i - 1}/1000) + n{i - 1}"' for i in range(1, 400))
    spec = tmp_path / "slow.toml"
    spec.write_text(f'[graph]\nvalues={{n0="1"}}\nnodes=[{nodes}]\n[stated]\nn399="1"\n')
    done = run("verify", str(spec), "--timeout", "0.5", timeout=60)
    assert done.returncode == 2 and "longer than 0.5 s" in done.stderr


def test_help_and_unknown_command():
    assert run("--help").returncode == 0
    assert run("verify", "--help").returncode == 0
    assert run("frobnicate").returncode == 2


def test_importing_derive_does_not_import_numba():
    code = "import derive, derive.cli, derive.verify.stated, derive.kinds.network.derivation, derive.handout.assemble, derive.grading.submissions, sys; " \
           "print('numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


BAD_ARGUMENTS = {  # issue 10: each gave a traceback, a late failure, or a misleading message
    "timeout_zero": (["verify", "--timeout", "0", "003_3_graph_xyz"], "argument --timeout"),
    "timeout_negative": (["solve", "003_3_graph_xyz", "--timeout", "-5"], "argument --timeout"),
    "timeout_nan": (["verify", "--timeout", "nan", "003_3_graph_xyz"], "argument --timeout"),
    "jobs_zero": (["verify", "--jobs", "0", "003_3_graph_xyz"], "argument --jobs"),
    "decimals": (["handout", "003_3_graph_xyz", "--decimals", "13"], "argument --decimals"),
    "handout_timeout": (["handout", "003_3_graph_xyz", "--timeout", "0"], "argument --timeout"),
    "seed": (["demo", "xor", "--seed", "-1"], "argument --seed"),
    "pdf_md_output": (["handout", "003_3_graph_xyz", "--pdf", "-o", "x.md"], "-o names a .md file"),
    "pdf_md_format": (["handout", "003_3_graph_xyz", "--pdf", "--format", "md"], "leave out --format md"),
    "example_typo": (["verify", "003_3_graph_xz"], "did you mean 003_3_graph_xyz?"),
    "notation_typo": (["handout", "003_3_graph_xyz", "--notation", "nankia"], "did you mean 'nankai'?"),
    "unknown_option": (["solve", "003_3_graph_xyz", "--frobnicate"], "unrecognized arguments"),
}


@pytest.mark.parametrize("name", sorted(BAD_ARGUMENTS))
def test_bad_arguments_exit_2_with_one_line(name, tmp_path):
    argv, fragment = BAD_ARGUMENTS[name]
    done = run(*argv, cwd=tmp_path, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert fragment in lines[0], lines[0]
    assert done.stdout == "" and list(tmp_path.iterdir()) == []


def test_pdf_output_name_gives_the_format():
    """``--pdf -o x.pdf`` needs no --format: the PDF is made from the tex (no 'needs --format tex')."""
    from argparse import Namespace
    from derive.handout.assemble import _format
    assert _format(Namespace(pdf=True, format=None, output="x.pdf")) == "tex"
    assert _format(Namespace(pdf=False, format=None, output="x.md")) == "md"
    assert _format(Namespace(pdf=False, format=None, output=None)) == "tex"


def test_verify_shows_two_digits_more_than_stated():
    """Regression (issue 10): '138.834' was shown next to a stated '138.8338'.  Oracle: PyTorch."""
    torch = pytest.importorskip("torch")
    a = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    from test_rebinding import _micrograd
    g = _micrograd(a, b, torch.relu)
    g.backward()
    done = run("verify", "docs/examples/micrograd.toml")
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.startswith("  g")}
    assert rows["grad_a"][1:3] == ["138.8338", f"{a.grad.item():.6f}"], rows
    assert rows["grad_b"][1:3] == ["645.5773", f"{b.grad.item():.6f}"], rows
    assert rows["g"][1:3] == ["24.7041", f"{g.item():.6f}"], rows


def test_solve_json_carries_exact_values():
    """A rational value as 'p/q'; an irrational one as a 30-digit interval containing it (mpmath)."""
    import mpmath
    from fractions import Fraction
    from test_rebinding import _micrograd
    data = json.loads(run("solve", "--json", "docs/examples/micrograd.toml").stdout)
    assert Fraction(data["exact"]["g"]) == _micrograd(Fraction(-4), Fraction(2), lambda x: max(x, Fraction(0)))
    assert data["quantities"]["g"] == float(Fraction(data["exact"]["g"]))
    data = json.loads(run("solve", "--json", "000_3_mlp_3333").stdout)
    with mpmath.workdps(60):
        for i, z in enumerate(data["exact"]["z2"]):
            lo, hi = data["exact"]["h2"][i].strip("[]").split(", ")
            assert len(lo.replace(".", "").lstrip("0")) == 30 == len(hi.replace(".", "").lstrip("0"))
            true = 1 / (1 + mpmath.exp(-mpmath.mpf(Fraction(z).numerator) / Fraction(z).denominator))
            assert mpmath.mpf(lo) <= true <= mpmath.mpf(hi)
            assert mpmath.mpf(hi) - mpmath.mpf(lo) <= mpmath.mpf(10) ** -29
