"""The vectorised many-problems kernel (issue 13) and its exp and log: correctness only.

* ``vexp`` and ``vlog`` (kernels/vecmath.py, printed into the generated module) within 2 ulp of
  ``math.exp`` and ``math.log`` on a million points over the whole float64 range, and the same
  special values (NaN, ±inf, 0, subnormals, overflow);
* ``many_sgd_step`` on every bundled network example against the engine's exact values (1e-12),
  with a block size that leaves a partial last block;
* on random networks of every activation and loss, each problem's step against PyTorch autograd
  (θ − lr·∇, and the loss), and in float32 against the float64 engine within float32's precision;
* non-finite problems, in a full block and in the partial one: untouched, named, the others stepped;
* the blocked layout: the same steps as rows = problems.
"""
from __future__ import annotations

import importlib.util
import math
import platform
import re

import numpy as np
import pytest

import kernels
import worked_examples
from derive.core import evaluate
from derive.kinds.network.spec import Network
from derive.kinds import load
from kernel_fixtures import CACHE
from kernel_nets import NETS, data, spec, torch_loss
from kernels.vecmath import VECMATH


@pytest.fixture(scope="module")
def vecmath(tmp_path_factory):
    """VECMATH compiled as a module of its own, with a loop over an array for each function."""
    folder = tmp_path_factory.mktemp("vecmath")
    text = ("import math\nimport numpy as np\nfrom numba import njit\n" + VECMATH + """

@njit(error_model="numpy")
def exp_all(a, out):
    for i in range(a.shape[0]):
        out[i] = vexp(a[i])


@njit(error_model="numpy")
def expf_all(a, out):
    for i in range(a.shape[0]):
        out[i] = vexpf(a[i])


@njit(error_model="numpy")
def log_all(a, out):
    for i in range(a.shape[0]):
        out[i] = vlog(a[i])
""")
    (folder / "vm_under_test.py").write_text(text)
    spec_ = importlib.util.spec_from_file_location("vm_under_test", folder / "vm_under_test.py")
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


def _ulps(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(got - ref) / np.spacing(np.abs(ref))


def test_vexp_is_within_2_ulp_of_math_exp_everywhere(vecmath):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-745.2, 709.78, 1_000_000), rng.uniform(-1, 1, 100_000),
                        rng.normal(0, 1e-8, 10_000), [0.0, -0.0, 1e-300, 709.78, -708.4, -744.4, -745.0]])
    got = np.empty_like(x)
    vecmath.exp_all(x, got)
    ref = np.array([math.exp(v) for v in x])
    normal = ref > 0
    assert _ulps(got[normal], ref[normal]).max() <= 2
    np.testing.assert_array_equal(got[~normal], ref[~normal])


def test_vexp_special_values_match_math_exp(vecmath):
    x = np.array([np.nan, np.inf, -np.inf, 709.8, 710.0, 1e308, -745.2, -746.0, -1e308])
    got = np.empty_like(x)
    vecmath.exp_all(x, got)
    with np.errstate(over="ignore"):
        ref = np.array([math.nan if v != v else (math.exp(v) if v < 709.79 else math.inf) for v in x])
    np.testing.assert_array_equal(got, ref)


def test_vexpf_is_within_2_ulp_of_math_exp_in_float32(vecmath):
    """The float32 exp of the float32 many-problems loop, against math.exp rounded to float32, over
    every float32 argument whose e^x is neither 0 nor inf (subnormal results within 1 of their
    spacing), and the special values."""
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-104.0, 88.72, 1_000_000), rng.uniform(-1, 1, 100_000),
                        rng.normal(0, 1e-4, 10_000), [0.0, -0.0, 1e-30, 88.72, -87.3, -100.0, -103.2]]).astype(np.float32)
    got = np.empty_like(x)
    vecmath.expf_all(x, got)
    assert got.dtype == np.float32
    ref = np.array([math.exp(float(v)) for v in x]).astype(np.float32)
    normal = ref >= np.finfo(np.float32).tiny
    assert _ulps(got[normal], ref[normal]).max() <= 2
    assert (np.abs(got[~normal] - ref[~normal]) <= np.spacing(np.float32(0))).all()
    special = np.array([np.nan, np.inf, -np.inf, 88.75, 89.0, 3e38, -104.0, -105.0, -3e38], dtype=np.float32)
    got = np.empty_like(special)
    vecmath.expf_all(special, got)
    np.testing.assert_array_equal(got, np.array([np.nan, np.inf, 0, np.inf, np.inf, np.inf, 0, 0, 0], np.float32))


def test_vlog_is_within_2_ulp_of_math_log_everywhere(vecmath):
    rng = np.random.default_rng(1)
    x = np.concatenate([np.exp(rng.uniform(-744, 709, 1_000_000)), rng.uniform(0.5, 2.0, 100_000),
                        1 + rng.normal(0, 1e-9, 10_000), [5e-324, 1e-310, 2.0 ** -1022, 1.0, 2.0, 1.7976931348623157e308]])
    got = np.empty_like(x)
    vecmath.log_all(x, got)
    ref = np.array([math.log(v) for v in x])
    nonzero = ref != 0
    assert _ulps(got[nonzero], ref[nonzero]).max() <= 2
    np.testing.assert_array_equal(got[~nonzero], ref[~nonzero])


def test_vlog_special_values_follow_ieee(vecmath):
    x = np.array([0.0, -0.0, -1.0, -np.inf, np.inf, np.nan])
    got = np.empty_like(x)
    vecmath.log_all(x, got)
    np.testing.assert_array_equal(got, [-np.inf, -np.inf, np.nan, np.nan, np.inf, np.nan])


# ----------------------------------------------------------------------------- the kernel

TOL = 1e-12


def close(got, ref, tol=TOL):
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    assert np.all(np.abs(got - ref) <= tol * np.maximum(1, np.abs(ref))), np.abs(got - ref).max()


NETWORK_EXAMPLES = [n for n in worked_examples.names()
                    if isinstance(load(worked_examples.path(n)).problem, Network)]


SYMBOLIC_EXAMPLES = {"000_4_backprop_formulas", "002_2_net_232_softmax", "003_4_bp_formulas"}


@pytest.mark.parametrize("name", NETWORK_EXAMPLES)
def test_many_step_of_every_bundled_network_equals_the_engine(name):
    """Every problem the spec's own: 2 full blocks and a partial one, all equal to the engine."""
    problem = load(worked_examples.path(name)).problem
    from derive.kinds import of
    d = of(problem).derive(problem)
    if not evaluate.is_numeric(d):      # nothing numeric to compare: the random networks below cover its kind
        assert name in SYMBOLIC_EXAMPLES, f"{name} leaves its numbers symbolic"
        return
    assert name not in SYMBOLIC_EXAMPLES
    values = evaluate.evaluate(d)
    k = kernels.compile(problem, cache_dir=CACHE)
    assert k.shape == "unrolled"
    theta = k.params_from_spec()
    x, t, lr = k.spec_sample()
    rows = 2 * k.many_block + 5
    Theta = np.tile(theta, (rows, 1))
    losses = k.many_sgd_step(Theta, np.tile(x, (rows, 1)), np.tile(t, (rows, 1)), lr)
    close(losses, [float(values[d.quantity("loss").symbol()])] * rows)
    new = np.concatenate([[float(values[s]) for s in d.quantity(p + "_new").symbols()] for p in k.layout.names])
    for row in Theta:
        close(row, new)


@pytest.fixture(scope="module")
def compiled():
    return {name: kernels.compile(spec(name), shape="unrolled", cache_dir=CACHE) for name in NETS}


def _problems(k, seed, rows):
    """``rows`` independent problems: parameters, one input and one target each."""
    thetas, xs, ts = zip(*(data(k, seed=seed + r, rows=1) for r in range(rows)))
    return np.array(thetas), np.concatenate(xs), np.concatenate(ts)


@pytest.mark.parametrize("name", list(NETS))
def test_each_problem_steps_as_pytorch_autograd_says(name, compiled):
    pytest.importorskip("torch", reason="PyTorch is the optional 'torch' extra")
    k = compiled[name]
    rows, lr = k.many_block + 3, 0.3
    Theta, X, T = _problems(k, 100, rows)
    start = Theta.copy()
    losses = k.many_sgd_step(Theta, X, T, lr)
    for p in range(rows):
        ref_loss, ref_grad = torch_loss(NETS[name], k, start[p], X[p:p + 1], T[p:p + 1])
        close(losses[p], ref_loss)
        close(Theta[p], start[p] - lr * ref_grad)


@pytest.mark.parametrize("name", ["elu-softplus-swish-softmax/cross_entropy", "sigmoid-sigmoid/bce",
                                  "bipolar-identity/softmax_cross_entropy"])
def test_float32_many_step_within_float32_precision(name, compiled):
    k = compiled[name]
    k32 = kernels.compile(spec(name), dtype="float32", shape="unrolled", cache_dir=CACHE)
    Theta, X, T = _problems(k, 200, k.many_block + 7)
    ref = Theta.copy()
    ref_losses = np.array([k.sgd_step(ref[p], X[p], T[p], 0.3) for p in range(len(ref))])   # float64, per problem
    Theta32 = Theta.astype(np.float32)
    losses32 = k32.many_sgd_step(Theta32, X.astype(np.float32), T.astype(np.float32), 0.3)
    assert Theta32.dtype == np.float32
    tol = 1000 * np.finfo(np.float32).eps
    np.testing.assert_allclose(losses32, ref_losses, rtol=tol, atol=tol)
    np.testing.assert_allclose(Theta32, ref, rtol=tol, atol=tol * np.abs(ref).max())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_problems_are_untouched_and_named_the_others_stepped(bad, compiled):
    k = compiled["tanh-relu-leaky-sigmoid/half_sse"]
    rows = 2 * k.many_block + 3
    Theta, X, T = _problems(k, 300, rows)
    poisoned = [3, 2 * k.many_block + 1]                   # one in a full block, one in the partial block
    Theta[poisoned[0], 5] = bad
    X[poisoned[1], 0] = bad
    start = Theta.copy()
    ThetaB, XB, TB = k.to_blocked(Theta), k.to_blocked(X), k.to_blocked(T)
    with pytest.raises(kernels.NonFiniteError) as err:
        k.many_sgd_step(Theta, X, T, 0.3)
    assert err.value.rows == poisoned
    np.testing.assert_array_equal(Theta[poisoned], start[poisoned])
    for p in set(range(rows)) - set(poisoned):
        ref = start[p].copy()
        k.sgd_step(ref, X[p], T[p], 0.3)
        close(Theta[p], ref)
    # the blocked layout writes a block's new values into ThetaB and restores a bad problem's old ones
    with pytest.raises(kernels.NonFiniteError) as err:
        k.many_sgd_step_blocked(ThetaB, XB, TB, 0.3)
    assert err.value.rows == poisoned
    np.testing.assert_array_equal(k.from_blocked(ThetaB, rows), Theta)


def test_the_blocked_layout_steps_as_rows_do(compiled):
    k = compiled["elu-softplus-swish-softmax/cross_entropy"]
    rows = 3 * k.many_block - 4
    Theta, X, T = _problems(k, 400, rows)
    ThetaB, XB, TB = k.to_blocked(Theta), k.to_blocked(X), k.to_blocked(T)
    assert ThetaB.shape == (3, k.n_params, k.many_block)
    np.testing.assert_array_equal(k.from_blocked(ThetaB, rows), Theta)
    lossesB = k.many_sgd_step_blocked(ThetaB, XB, TB, 0.2)
    losses = k.many_sgd_step(Theta, X, T, 0.2)
    np.testing.assert_array_equal(lossesB[:rows], losses)
    np.testing.assert_array_equal(k.from_blocked(ThetaB, rows), Theta)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 assembly")
def test_the_kernel_loop_is_vectorised(compiled, tmp_path):
    """The generated assembly has packed double-precision arithmetic, and no call to libm's exp."""
    k = kernels.compile("000_3_mlp_3333", cache_dir=tmp_path)       # compiled here: its assembly exists
    Theta = np.tile(k.params_from_spec(), (4, 1))
    k.raw.many_sgd_step(Theta, np.ones((4, 3)), np.ones((4, 3)), 0.1, np.empty(4))
    asm = k.raw.many_sgd_step.inspect_asm(k.raw.many_sgd_step.signatures[0])
    assert "Inspection disabled" not in asm and len(asm) > 100
    packed = set(re.findall(r"\b(v?(?:mul|add|sub|div|fmadd\d+|max|blendm|round|rndscale)pd)\b", asm))
    assert {"vmulpd", "vdivpd"} <= packed or {"mulpd", "divpd"} <= packed, packed
    assert not re.search(r"call\w*\s+.*\bexp\b", asm)
    from numba.core import config
    import llvmlite.binding as ll
    features = config.CPU_FEATURES or ll.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):       # prefer_wide_vectors: 512-bit vectors where the CPU has them
        assert "zmm" in asm


def test_the_generated_sigmoid_is_within_2_ulp_over_the_range_it_is_used(tmp_path):
    """The sigmoid helper printed into the vectorised module (one vexp of −|x|, then 1/(1 + e) or
    e/(1 + e)) against σ(x) at 40 digits (mpmath), rounded once, from −750 to 750: the whole range
    where σ is neither exactly 0 nor 1 in float64, and beyond it."""
    import mpmath
    k = kernels.compile("000_3_mlp_3333", cache_dir=CACHE)
    sigmoid = k.raw.sigmoid
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-750, 750, 4000), rng.uniform(-40, 40, 4000), rng.normal(0, 1e-6, 500),
                        [0.0, -0.0, 1e-300, -1e-300, -708.4, -709.8, -744.5, -745.2, 36.8, 37.5, 750.0, -750.0]])
    got = np.array([sigmoid(v) for v in x])
    with mpmath.workdps(40):
        ref = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(float(v))))) for v in x])
    assert (np.abs(got - ref) <= 2 * np.spacing(ref)).all(), np.max(np.abs(got - ref) / np.spacing(ref))
    assert math.isnan(sigmoid(math.nan)) and sigmoid(math.inf) == 1.0 and sigmoid(-math.inf) == 0.0


def test_float32_problems_that_are_not_finite_are_untouched_and_named(tmp_path):
    """The float32 twin (many_sgd_step_f32, float32 arithmetic) checks its blocks as the float64
    kernel does; its loop computes in float32 (packed single precision), in both layouts."""
    k = kernels.compile("000_3_mlp_3333", dtype="float32", cache_dir=tmp_path)
    rows = 2 * k.many_block + 3
    rng = np.random.default_rng(8)
    Theta = (k.params_from_spec() + 0.1 * rng.standard_normal((rows, k.n_params))).astype(np.float32)
    X, T = rng.uniform(0, 1, (rows, 3)).astype(np.float32), rng.uniform(0, 1, (rows, 3)).astype(np.float32)
    poisoned = [4, 2 * k.many_block + 2]
    Theta[poisoned[0], 7] = np.inf
    T[poisoned[1], 1] = np.nan
    start = Theta.copy()
    ThetaB, XB, TB = k.to_blocked(Theta), k.to_blocked(X), k.to_blocked(T)
    with pytest.raises(kernels.NonFiniteError) as err:
        k.many_sgd_step(Theta, X, T, 0.3)
    assert err.value.rows == poisoned
    np.testing.assert_array_equal(Theta[poisoned], start[poisoned])
    with pytest.raises(kernels.NonFiniteError) as err:
        k.many_sgd_step_blocked(ThetaB, XB, TB, 0.3)
    assert err.value.rows == poisoned
    np.testing.assert_array_equal(k.from_blocked(ThetaB, rows), Theta)
    k64 = kernels.compile("000_3_mlp_3333", cache_dir=tmp_path)
    for p in set(range(rows)) - set(poisoned):
        ref = start[p].astype(np.float64)
        k64.sgd_step(ref, X[p].astype(np.float64), T[p].astype(np.float64), 0.3)
        np.testing.assert_allclose(Theta[p], ref, rtol=1e-5, atol=1e-6)
    if platform.machine() in ("x86_64", "AMD64"):
        fn = k.raw.many_sgd_step_f32
        asm = fn.inspect_asm(fn.signatures[0])
        assert re.search(r"\bv(?:fmadd\d+|mul|div)ps\b", asm), "no packed float32 arithmetic"
