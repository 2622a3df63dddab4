"""A corpus of realistic wrong answers, each labelled with the slip it contains (issue 12).

Every item is a student's answer (a number printed to 4 decimals, or a LaTeX formula) to one
quantity of a bundled example or of a spec in tests/data, and the slip(s) it was made with.  The
label is checked here without the engine: the *mistaken* computation is written out in NumPy
(networks) or mpmath (the 2-2-2 graph) from the spec's given numbers, as a student would do it,

* a number is that mistaken value rounded to 4 decimals (and the right value differs there);
* a formula comes with its meaning written in NumPy over the right values (``value``), and that
  must equal the mistaken computation's value of the quantity (and differ from the right one).

``kinds`` name the slips; tests/test_slips_corpus.py asks whether the grader's feedback names
them (``PHRASES``; a layer slip by the two quantities in the course's notation).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any, Callable

import mpmath as mpm
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "worked_examples" / "000_3_mlp_3333.toml"      # xjtu: ReLU, sigmoid, sigmoid; square layers
TANH = ROOT / "tests" / "data" / "slips_232_tanh.toml"        # standard: tanh, sigmoid; 2-3-2
UIBE = ROOT / "tests" / "data" / "slips_342_uibe.toml"        # uibe: sigmoid, sigmoid; 3-4-2
HW = ROOT / "docs" / "examples" / "hw_222.toml"               # graph, standard, η = 0.5
NANKAI = ROOT / "worked_examples" / "001_4_net_222.toml"      # graph, nankai, η = 1

# what the feedback must say for each kind of slip (a regular expression)
PHRASES = {
    "sign": r"sign flipped",
    "half_missing": r"missing ½",
    "half_extra": r"extra ½",
    "sigma_1plus": r"σ′ written as σ\(1 \+ σ\)",
    "one_plus_sigma": r"σ′ written as 1 \+ σ",
    "one_minus_sigma": r"σ′ written as 1 − σ",
    "tanh_1minus": r"tanh′ written as 1 − tanh",
    "sigma_for_tanh": r"used σ′.* for a tanh layer",
    "tanh_for_sigma": r"used tanh′.* for a σ layer",
    "missing_bias": r"missing bias",
    "hadamard": r"element-wise product ⊙ is needed",
    "transpose": r"where \S+ᵀ is needed",
    "missing_gprime": r"missing (g′|σ′)",
    "update_sign": r"update sign flipped",
    "no_lr": r"learning rate missing",
    "missing_path": r"missing the path",
    "not_applied": r"not applied",
    "rounded": r"rounded to \d decimal",
    "truncated": r"truncated instead of rounded",
    "coarse": r"printed to \d decimal",
    # slips the library was not written for (kept in the corpus so that the share is not a tautology)
    "W_transposed_forward": r"used W\S*ᵀ where W\S* is needed",
    "no_square": r"square",
    "half_eta": r"learning rate",
}


@dataclass
class Item:
    spec: Path
    key: str                      # the answered quantity, as in an answer file ("grad_W2[0,1]", "delta2")
    answer: str                   # "0.1234" or "$…$"
    kinds: tuple[str, ...]        # the slips; "layer:used=delta3,needed=delta2" names the two quantities
    mistaken: Any                 # the mistaken computation's value of the quantity (NumPy / mpmath)
    right: Any                    # the right value
    value: Any = None             # a formula's value, from its NumPy meaning (None for a number)
    others: dict = field(default_factory=dict)   # earlier answers in the same file (right values)
    literal: Any = None           # a formula whose product does not fit, as written (NumPy raises)

    @property
    def quantity(self) -> str:
        return self.key.split("[")[0]

    @property
    def index(self) -> tuple[int, ...] | None:
        if "[" not in self.key:
            return None
        return tuple(int(i) for i in self.key[self.key.index("[") + 1:-1].split(","))


def fmt(x: Any, decimals: int = 4, rounding=ROUND_HALF_UP) -> str:
    if isinstance(x, np.ndarray):
        x = float(x)
    d = Decimal(mpm.nstr(mpm.mpf(x), 40, min_fixed=-100, max_fixed=100)) if not isinstance(x, (float, np.floating)) \
        else Decimal(repr(float(x)))
    return str(d.quantize(Decimal(1).scaleb(-decimals), rounding=rounding))


# ----------------------------------------------------------------------------- layered networks, NumPy

def _sig(z):
    return 1 / (1 + np.exp(-z))


ACT = {"sigmoid": (_sig, lambda z, h: h * (1 - h)),
       "tanh": (np.tanh, lambda z, h: 1 - h ** 2),
       "relu": (lambda z: np.maximum(z, 0), lambda z, h: (z > 0).astype(float))}


def network(path: Path, slips: dict[str, Callable] | None = None) -> dict[str, np.ndarray]:
    """Forward, backward and update of a layered half-SSE network; ``slips`` replaces the formula
    of a quantity (name -> lambda of the values so far) and everything after it follows."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))["network"]
    slips = slips or {}
    v: dict[str, Any] = {}

    def put(name, f):
        v[name] = np.asarray(slips[name](v) if name in slips else f(v), dtype=float)

    arr = lambda a: np.array([[float(c) for c in r] for r in a]) if isinstance(a[0], list) else np.array([float(c) for c in a])
    v["x"], v["t"] = arr(data["input"]), arr(data["target"])
    layers = data["layer"]
    L = len(layers)
    acts = [layer["activation"] for layer in layers]
    for l, layer in enumerate(layers, start=1):
        v[f"W{l}"], v[f"b{l}"] = arr(layer["weights"]), arr(layer["bias"])
    prev = "x"
    for l in range(1, L + 1):
        put(f"z{l}", lambda v, l=l, prev=prev: v[f"W{l}"] @ v[prev] + v[f"b{l}"])
        put(f"h{l}", lambda v, l=l: ACT[acts[l - 1]][0](v[f"z{l}"]))
        prev = f"h{l}"
    y = f"h{L}"
    put("loss", lambda v: 0.5 * np.sum((v[y] - v["t"]) ** 2))
    put("grad_y", lambda v: v[y] - v["t"])
    for l in range(L, 0, -1):
        put(f"gprime{l}", lambda v, l=l: ACT[acts[l - 1]][1](v[f"z{l}"], v[f"h{l}"]))
        up = "grad_y" if l == L else f"grad_h{l}"
        put(f"delta{l}", lambda v, l=l, up=up: v[up] * v[f"gprime{l}"])
        before = "x" if l == 1 else f"h{l - 1}"
        put(f"grad_W{l}", lambda v, l=l, before=before: np.outer(v[f"delta{l}"], v[before]))
        put(f"grad_b{l}", lambda v, l=l: v[f"delta{l}"])
        if l > 1:
            put(f"grad_h{l - 1}", lambda v, l=l: v[f"W{l}"].T @ v[f"delta{l}"])
    eta = float(data["learning_rate"])
    for l in range(1, L + 1):
        put(f"W{l}_new", lambda v, l=l: v[f"W{l}"] - eta * v[f"grad_W{l}"])
        put(f"b{l}_new", lambda v, l=l: v[f"b{l}"] - eta * v[f"grad_b{l}"])
    return v


def _at(value, index):
    return value if index is None else value[index]


def net_number(path, key, kinds, slips, others=()) -> Item:
    right, wrong = network(path), network(path, slips)
    q = key.split("[")[0]
    idx = tuple(int(i) for i in key[key.index("[") + 1:-1].split(",")) if "[" in key else None
    m, r = _at(wrong[q], idx), _at(right[q], idx)
    ans = {k: fmt(_at(right[k.split("[")[0]], tuple(int(i) for i in k[k.index("[") + 1:-1].split(",")))
               if "[" in k else right[k]) for k in others}
    return Item(path, key, fmt(m), tuple(kinds), m, r, None, ans)


def net_formula(path, key, latex, kinds, slips, meaning, literal=None) -> Item:
    """``literal``: the formula as written, in NumPy with column vectors, when its shapes do not fit
    (it must raise); ``meaning`` is then the reading with the product fixed."""
    right, wrong = network(path), network(path, slips)
    q = key.split("[")[0]
    return Item(path, key, "$" + latex + "$", tuple(kinds), wrong[q], right[q], np.asarray(meaning(right), float),
                literal=literal)


def col(a):
    return np.asarray(a, float).reshape(-1, 1)


# ----------------------------------------------------------------------------- the 2-2-2 graph, mpmath

def graph(path: Path, slips: dict[str, Callable] | None = None) -> dict[str, Any]:
    """The 2-2-2 sigmoid graph of hw_222 / 001_4_net_222 by hand, 50 digits; ``slips`` as above."""
    mpm.mp.dps = 50
    data = tomllib.loads(path.read_text(encoding="utf-8"))["graph"]
    slips = slips or {}
    v = {k: mpm.mpf(s) for k, s in data["values"].items()}
    eta = mpm.mpf(data["learning_rate"])
    sig = lambda z: 1 / (1 + mpm.e ** (-z))

    def put(name, f):
        v[name] = slips[name](v) if name in slips else f(v)

    put("In_h1", lambda v: v["w1"] * v["x1"] + v["w3"] * v["x2"])
    put("In_h2", lambda v: v["w2"] * v["x1"] + v["w4"] * v["x2"])
    put("h1", lambda v: sig(v["In_h1"]))
    put("h2", lambda v: sig(v["In_h2"]))
    put("In_o1", lambda v: v["w5"] * v["h1"] + v["w7"] * v["h2"])
    put("In_o2", lambda v: v["w6"] * v["h1"] + v["w8"] * v["h2"])
    put("o1", lambda v: sig(v["In_o1"]))
    put("o2", lambda v: sig(v["In_o2"]))
    put("Error", lambda v: (v["o1"] - v["y1"]) ** 2 / 2 + (v["o2"] - v["y2"]) ** 2 / 2)
    put("grad_o1", lambda v: v["o1"] - v["y1"])
    put("grad_o2", lambda v: v["o2"] - v["y2"])
    put("grad_In_o1", lambda v: v["grad_o1"] * v["o1"] * (1 - v["o1"]))
    put("grad_In_o2", lambda v: v["grad_o2"] * v["o2"] * (1 - v["o2"]))
    put("grad_h1", lambda v: v["grad_In_o1"] * v["w5"] + v["grad_In_o2"] * v["w6"])
    put("grad_h2", lambda v: v["grad_In_o1"] * v["w7"] + v["grad_In_o2"] * v["w8"])
    put("grad_In_h1", lambda v: v["grad_h1"] * v["h1"] * (1 - v["h1"]))
    put("grad_In_h2", lambda v: v["grad_h2"] * v["h2"] * (1 - v["h2"]))
    for w, node, inp in (("w1", "In_h1", "x1"), ("w2", "In_h2", "x1"), ("w3", "In_h1", "x2"), ("w4", "In_h2", "x2"),
                         ("w5", "In_o1", "h1"), ("w6", "In_o2", "h1"), ("w7", "In_o1", "h2"), ("w8", "In_o2", "h2")):
        put("grad_" + w, lambda v, node=node, inp=inp: v["grad_" + node] * v[inp])
    for i in range(1, 9):
        put(f"w{i}_new", lambda v, i=i: v[f"w{i}"] - eta * v[f"grad_w{i}"])
    return v


def graph_number(path, key, kinds, slips, others=()) -> Item:
    right, wrong = graph(path), graph(path, slips)
    return Item(path, key, fmt(wrong[key]), tuple(kinds), wrong[key], right[key], None,
                {k: fmt(right[k]) for k in others})


def graph_formula(path, key, latex, kinds, slips, meaning) -> Item:
    right, wrong = graph(path), graph(path, slips)
    return Item(path, key, "$" + latex + "$", tuple(kinds), wrong[key], right[key], meaning(right))


# ----------------------------------------------------------------------------- the slips, as computations

sig = _sig
S = {   # name -> (quantity it changes, how); l is the layer
    "sign_out": lambda: {"grad_y": lambda v: v["t"] - v[_y(v)]},
    "half_missing_out": lambda: {"grad_y": lambda v: 2 * (v[_y(v)] - v["t"])},
    "half_extra_out": lambda: {"grad_y": lambda v: (v[_y(v)] - v["t"]) / 2},
    "half_missing_loss": lambda: {"loss": lambda v: np.sum((v[_y(v)] - v["t"]) ** 2)},
    "half_extra_loss": lambda: {"loss": lambda v: 0.25 * np.sum((v[_y(v)] - v["t"]) ** 2)},
}


def _y(v):
    return max((k for k in v if k[0] == "h" and k[1:].isdigit()), key=lambda k: int(k[1:]))


def g(l, f):                      # the local derivative of layer l computed as f(z, h)
    return {f"gprime{l}": lambda v: f(v[f"z{l}"], v[f"h{l}"])}


def bias(l):
    return {f"z{l}": lambda v: v[f"W{l}"] @ v["x" if l == 1 else f"h{l - 1}"]}


def combine(*ds):
    out = {}
    for d in ds:
        out.update(d)
    return out


def items() -> list[Item]:
    out: list[Item] = []
    N, F = net_number, net_formula

    # --- 3-3-3-3 (xjtu): ReLU, sigmoid, sigmoid, square layers --------------------------------
    P = MLP
    for key in ("delta3[0]", "delta3[1]", "grad_W3[1,2]"):
        out.append(N(P, key, ["sign"], S["sign_out"]()))
    out += [N(P, "grad_y[1]", ["half_missing"], S["half_missing_out"]()),
            N(P, "delta3[2]", ["half_extra"], S["half_extra_out"]()),
            N(P, "loss", ["half_missing"], S["half_missing_loss"]()),
            N(P, "loss", ["half_extra"], S["half_extra_loss"]()),
            N(P, "z1[0]", ["missing_bias"], bias(1)),
            N(P, "z2[1]", ["missing_bias"], bias(2), others=("h1[0]", "h1[1]", "h1[2]")),
            N(P, "gprime3[0]", ["sigma_1plus"], g(3, lambda z, h: h * (1 + h))),
            N(P, "gprime2[2]", ["one_plus_sigma"], g(2, lambda z, h: 1 + h)),
            N(P, "delta3[1]", ["sigma_1plus"], g(3, lambda z, h: h * (1 + h))),
            N(P, "delta3[0]", ["one_plus_sigma"], g(3, lambda z, h: 1 + h)),
            N(P, "gprime3[1]", ["tanh_for_sigma"], g(3, lambda z, h: 1 - h ** 2)),
            N(P, "delta2[0]", ["missing_gprime"], {"delta2": lambda v: v["grad_h2"]}, others=("delta3[0]", "delta3[1]", "delta3[2]")),
            N(P, "grad_h2[1]", ["transpose"], {"grad_h2": lambda v: v["W3"] @ v["delta3"]}),
            N(P, "grad_h2[2]", ["transpose"], {"grad_h2": lambda v: v["W3"] @ v["delta3"]},
              others=("delta3[0]", "delta3[1]", "delta3[2]")),
            N(P, "grad_W2[0,1]", ["layer:used=delta3,needed=delta2"],
              {"grad_W2": lambda v: np.outer(v["delta3"], v["h1"])}),
            N(P, "grad_W3[2,0]", ["layer:used=h3,needed=h2"], {"grad_W3": lambda v: np.outer(v["delta3"], v["h3"])}),
            N(P, "grad_W2[1,1]", ["layer:used=h2,needed=h1"], {"grad_W2": lambda v: np.outer(v["delta2"], v["h2"])}),
            N(P, "grad_h1[0]", ["layer:used=W1,needed=W2"], {"grad_h1": lambda v: v["W1"].T @ v["delta2"]}),
            N(P, "delta2[1]", ["layer:used=gprime3,needed=gprime2"],
              {"delta2": lambda v: v["grad_h2"] * v["gprime3"]}),
            N(P, "grad_b2[0]", ["layer:used=delta3,needed=delta2"], {"grad_b2": lambda v: v["delta3"]}),
            N(P, "W3_new[0,1]", ["update_sign"], {"W3_new": lambda v: v["W3"] + 0.5 * v["grad_W3"]}),
            N(P, "W2_new[2,2]", ["no_lr"], {"W2_new": lambda v: v["W2"] - v["grad_W2"]}),
            N(P, "h2[0]", ["not_applied"], {"h2": lambda v: v["z2"]}),
            N(P, "delta3[2]", ["sign", "sigma_1plus"], combine(S["sign_out"](), g(3, lambda z, h: h * (1 + h)))),
            N(P, "delta2[0]", ["transpose", "missing_gprime"],
              {"grad_h2": lambda v: v["W3"] @ v["delta3"], "delta2": lambda v: v["grad_h2"]}),
            ]
    out += [F(P, "delta3", r"(t - h^{(3)}) \odot h^{(3)} \odot (1 - h^{(3)})", ["sign"], S["sign_out"](),
              lambda v: (v["t"] - v["h3"]) * v["h3"] * (1 - v["h3"])),
            F(P, "delta3", r"2 (\hat{y} - t) \odot \hat{y} \odot (1 - \hat{y})", ["half_missing"], S["half_missing_out"](),
              lambda v: 2 * (v["h3"] - v["t"]) * v["h3"] * (1 - v["h3"])),
            F(P, "delta3", r"\frac{1}{2} (\hat{y} - t) \odot \sigma'(z^{(3)})", ["half_extra"], S["half_extra_out"](),
              lambda v: 0.5 * (v["h3"] - v["t"]) * sig(v["z3"]) * (1 - sig(v["z3"]))),
            F(P, "delta3", r"(h^{(3)} - t) \odot h^{(3)} \odot (1 + h^{(3)})", ["sigma_1plus"],
              g(3, lambda z, h: h * (1 + h)), lambda v: (v["h3"] - v["t"]) * v["h3"] * (1 + v["h3"])),
            F(P, "delta3", r"(h^{(3)} - t) \odot (1 + h^{(3)})", ["one_plus_sigma"],
              g(3, lambda z, h: 1 + h), lambda v: (v["h3"] - v["t"]) * (1 + v["h3"])),
            F(P, "delta2", r"W^{(3)} \delta^{(3)} \odot \sigma'(z^{(2)})", ["transpose"],
              {"grad_h2": lambda v: v["W3"] @ v["delta3"]}, lambda v: (v["W3"] @ v["delta3"]) * sig(v["z2"]) * (1 - sig(v["z2"]))),
            F(P, "delta2", r"W^{(3)T} \delta^{(3)} \cdot h^{(2)} \odot (1 - h^{(2)})", ["hadamard"], {},
              lambda v: (v["W3"].T @ v["delta3"]) * v["h2"] * (1 - v["h2"]),
              literal=lambda v: v["W3"].T @ col(v["delta3"]) @ col(v["h2"])),
            F(P, "delta2", r"W^{(3)\top} \delta^{(3)}", ["missing_gprime"], {"delta2": lambda v: v["grad_h2"]},
              lambda v: v["W3"].T @ v["delta3"]),
            F(P, "delta2", r"W^{(3)T} \delta^{(3)} \odot \sigma'(z^{(3)})", ["layer:used=gprime3,needed=gprime2"],
              {"delta2": lambda v: v["grad_h2"] * v["gprime3"]}, lambda v: (v["W3"].T @ v["delta3"]) * sig(v["z3"]) * (1 - sig(v["z3"]))),
            F(P, "grad_W2", r"\delta^{(3)} {h^{(1)}}^T", ["layer:used=delta3,needed=delta2"],
              {"grad_W2": lambda v: np.outer(v["delta3"], v["h1"])}, lambda v: np.outer(v["delta3"], v["h1"])),
            F(P, "grad_W2", r"\delta^{(2)} (h^{(2)})^{\mathsf T}", ["layer:used=h2,needed=h1"],
              {"grad_W2": lambda v: np.outer(v["delta2"], v["h2"])}, lambda v: np.outer(v["delta2"], v["h2"])),
            F(P, "grad_h1", r"W^{(1)T} \delta^{(2)}", ["layer:used=W1,needed=W2"],
              {"grad_h1": lambda v: v["W1"].T @ v["delta2"]}, lambda v: v["W1"].T @ v["delta2"]),
            F(P, "z2", r"W^{(2)} h^{(1)}", ["missing_bias"], bias(2), lambda v: v["W2"] @ v["h1"]),
            F(P, "delta3", r"(t - h^{(3)}) \odot h^{(3)} \odot (1 + h^{(3)})", ["sign", "sigma_1plus"],
              combine(S["sign_out"](), g(3, lambda z, h: h * (1 + h))), lambda v: (v["t"] - v["h3"]) * v["h3"] * (1 + v["h3"])),
            F(P, "delta2", r"W^{(3)} \delta^{(3)}", ["transpose", "missing_gprime"],
              {"grad_h2": lambda v: v["W3"] @ v["delta3"], "delta2": lambda v: v["grad_h2"]}, lambda v: v["W3"] @ v["delta3"]),
            F(P, "W3_new", r"W^{(3)} + \eta \delta^{(3)} {h^{(2)}}^T", ["update_sign"],
              {"W3_new": lambda v: v["W3"] + 0.5 * v["grad_W3"]}, lambda v: v["W3"] + 0.5 * np.outer(v["delta3"], v["h2"])),
            ]

    R = network(P)      # a quantity in its own formula (δ² in δ²'s) takes its right value here
    out += [F(P, "delta2", r"W^{(3)T} \delta^{(2)} \odot \sigma'(z^{(2)})", ["layer:used=delta2,needed=delta3"],
              {"grad_h2": lambda v: v["W3"].T @ R["delta2"]}, lambda v: (v["W3"].T @ v["delta2"]) * sig(v["z2"]) * (1 - sig(v["z2"]))),
            F(P, "grad_h2", r"W^{(3)T} \delta^{(2)}", ["layer:used=delta2,needed=delta3"],
              {"grad_h2": lambda v: v["W3"].T @ R["delta2"]}, lambda v: v["W3"].T @ v["delta2"]),
            F(P, "z2", r"W^{(2)} h^{(2)} + b^{(2)}", ["layer:used=h2,needed=h1"],
              {"z2": lambda v: v["W2"] @ R["h2"] + v["b2"]}, lambda v: v["W2"] @ v["h2"] + v["b2"])]
    out += [N(P, "z1[1]", ["W_transposed_forward"], {"z1": lambda v: v["W1"].T @ v["x"] + v["b1"]}),
            N(P, "loss", ["no_square"], {"loss": lambda v: 0.5 * np.sum(v["h3"] - v["t"])}),
            N(P, "W3_new[1,1]", ["half_eta"], {"W3_new": lambda v: v["W3"] - 0.25 * v["grad_W3"]})]

    # --- 2-3-2 (standard): tanh hidden layer, sigmoid output ----------------------------------
    P = TANH
    tanh_slips = {"tanh_1minus": lambda z, h: 1 - h, "sigma_for_tanh": lambda z, h: sig(z) * (1 - sig(z))}
    for kind, f in tanh_slips.items():
        out += [N(P, "gprime1[0]", [kind], g(1, f)), N(P, "gprime1[2]", [kind], g(1, f)),
                N(P, "delta1[1]", [kind], g(1, f), others=("delta2[0]", "delta2[1]")),
                N(P, "grad_W1[2,0]", [kind], g(1, f), others=("delta2[0]", "delta2[1]")),
                N(P, "grad_b1[0]", [kind], g(1, f))]
    out += [N(P, "delta1[2]", ["sigma_for_tanh"], g(1, lambda z, h: h * (1 - h)), others=("delta2[0]", "delta2[1]")),
            N(P, "delta2[0]", ["sign"], S["sign_out"]()),
            N(P, "grad_W2[1,2]", ["sign"], S["sign_out"]()),
            N(P, "grad_y[0]", ["half_missing"], S["half_missing_out"]()),
            N(P, "loss", ["half_missing"], S["half_missing_loss"]()),
            N(P, "delta2[1]", ["half_extra"], S["half_extra_out"]()),
            N(P, "z1[1]", ["missing_bias"], bias(1)),
            N(P, "z2[0]", ["missing_bias"], bias(2), others=("h1[0]", "h1[1]", "h1[2]")),
            N(P, "h1[2]", ["not_applied"], {"h1": lambda v: v["z1"]}),
            N(P, "gprime2[0]", ["sigma_1plus"], g(2, lambda z, h: h * (1 + h))),
            N(P, "gprime2[1]", ["one_plus_sigma"], g(2, lambda z, h: 1 + h)),
            N(P, "delta2[0]", ["one_minus_sigma"], g(2, lambda z, h: 1 - h)),
            N(P, "delta1[0]", ["missing_gprime"], {"delta1": lambda v: v["grad_h1"]}, others=("delta2[0]", "delta2[1]")),
            N(P, "W2_new[1,0]", ["update_sign"], {"W2_new": lambda v: v["W2"] + 0.5 * v["grad_W2"]}),
            N(P, "b1_new[2]", ["no_lr"], {"b1_new": lambda v: v["b1"] - v["grad_b1"]}),
            N(P, "delta1[1]", ["tanh_1minus", "sign"], combine(g(1, lambda z, h: 1 - h), S["sign_out"]())),
            N(P, "delta2[1]", ["sign", "sigma_1plus"], combine(S["sign_out"](), g(2, lambda z, h: h * (1 + h)))),
            ]
    dW = lambda v: v["W2"].T @ v["delta2"]
    out += [F(P, "delta1", r"W^{(2)T} \delta^{(2)} \odot (1 - h^{(1)})", ["tanh_1minus"], g(1, tanh_slips["tanh_1minus"]),
              lambda v: dW(v) * (1 - v["h1"])),
            F(P, "delta1", r"W^{(2)T} \delta^{(2)} \odot (1 - \tanh(z^{(1)}))", ["tanh_1minus"], g(1, tanh_slips["tanh_1minus"]),
              lambda v: dW(v) * (1 - np.tanh(v["z1"]))),
            F(P, "delta1", r"W^{(2)T} \delta^{(2)} \odot \sigma'(z^{(1)})", ["sigma_for_tanh"],
              g(1, tanh_slips["sigma_for_tanh"]), lambda v: dW(v) * sig(v["z1"]) * (1 - sig(v["z1"]))),
            F(P, "delta1", r"W^{(2)T} \delta^{(2)} \odot h^{(1)} \odot (1 - h^{(1)})", ["sigma_for_tanh"],
              g(1, lambda z, h: h * (1 - h)), lambda v: dW(v) * v["h1"] * (1 - v["h1"])),
            F(P, "delta1", r"W^{(2)} \delta^{(2)} \odot (1 - \tanh^2(z^{(1)}))", ["transpose"], {},
              lambda v: dW(v) * (1 - np.tanh(v["z1"]) ** 2),
              literal=lambda v: v["W2"] @ col(v["delta2"])),
            F(P, "grad_h1", r"W^{(2)} \delta^{(2)}", ["transpose"], {}, dW,
              literal=lambda v: v["W2"] @ col(v["delta2"])),
            F(P, "delta1", r"W^{(2)T} \delta^{(2)} (1 - h^{(1)} \odot h^{(1)})", ["hadamard"], {},
              lambda v: dW(v) * (1 - v["h1"] ** 2),
              literal=lambda v: v["W2"].T @ col(v["delta2"]) @ col(1 - v["h1"] ** 2)),
            F(P, "delta1", r"W^{(2)T} \delta^{(2)} \cdot \operatorname{sech}^2(z^{(1)})", ["hadamard"], {},
              lambda v: dW(v) / np.cosh(v["z1"]) ** 2,
              literal=lambda v: v["W2"].T @ col(v["delta2"]) @ col(1 / np.cosh(v["z1"]) ** 2)),
            F(P, "delta1", r"W^{(2)} \delta^{(2)} \odot (1 - h^{(1)})", ["transpose", "tanh_1minus"],
              g(1, tanh_slips["tanh_1minus"]), lambda v: dW(v) * (1 - v["h1"]),
              literal=lambda v: v["W2"] @ col(v["delta2"])),
            F(P, "delta2", r"(t - \hat{y}) \odot \hat{y} \odot (1 - \hat{y})", ["sign"], S["sign_out"](),
              lambda v: (v["t"] - v["h2"]) * v["h2"] * (1 - v["h2"])),
            F(P, "delta2", r"(\hat{y} - t) \odot \hat{y} \odot (1 + \hat{y})", ["sigma_1plus"],
              g(2, lambda z, h: h * (1 + h)), lambda v: (v["h2"] - v["t"]) * v["h2"] * (1 + v["h2"])),
            F(P, "delta2", r"(\hat{y} - t) \odot (1 + \sigma(z^{(2)}))", ["one_plus_sigma"],
              g(2, lambda z, h: 1 + h), lambda v: (v["h2"] - v["t"]) * (1 + sig(v["z2"]))),
            F(P, "delta2", r"(\hat{y} - t) \odot (1 - \hat{y} \odot \hat{y})", ["tanh_for_sigma"],
              g(2, lambda z, h: 1 - h ** 2), lambda v: (v["h2"] - v["t"]) * (1 - v["h2"] ** 2)),
            F(P, "z1", r"W^{(1)} x", ["missing_bias"], bias(1), lambda v: v["W1"] @ v["x"]),
            F(P, "grad_W2", r"\delta^{(2)} {z^{(1)}}^T", ["layer:used=z1,needed=h1"],
              {"grad_W2": lambda v: np.outer(v["delta2"], v["z1"])}, lambda v: np.outer(v["delta2"], v["z1"])),
            F(P, "grad_W1", r"\delta^{(1)} x", ["transpose"], {}, lambda v: np.outer(v["delta1"], v["x"]),
              literal=lambda v: col(v["delta1"]) @ col(v["x"])),
            F(P, "loss", r"(\hat{y}_1 - t_1)^2 + (\hat{y}_2 - t_2)^2", ["half_missing"], S["half_missing_loss"](),
              lambda v: np.sum((v["h2"] - v["t"]) ** 2)),
            ]

    # --- 3-4-2 (uibe): sigmoid, sigmoid; non-square ------------------------------------------
    P = UIBE
    out += [N(P, "delta2[0]", ["sign"], S["sign_out"]()),
            N(P, "grad_W2[1,3]", ["sign"], S["sign_out"]()),
            N(P, "grad_W1[2,1]", ["sign"], S["sign_out"]()),
            N(P, "grad_y[1]", ["half_missing"], S["half_missing_out"]()),
            N(P, "loss", ["half_extra"], S["half_extra_loss"]()),
            N(P, "z1[3]", ["missing_bias"], bias(1)),
            N(P, "z2[1]", ["missing_bias"], bias(2), others=("h1[0]", "h1[1]", "h1[2]", "h1[3]")),
            N(P, "gprime2[0]", ["sigma_1plus"], g(2, lambda z, h: h * (1 + h))),
            N(P, "gprime1[3]", ["one_plus_sigma"], g(1, lambda z, h: 1 + h)),
            N(P, "delta1[2]", ["tanh_for_sigma"], g(1, lambda z, h: 1 - h ** 2), others=("delta2[0]", "delta2[1]")),
            N(P, "delta1[0]", ["missing_gprime"], {"delta1": lambda v: v["grad_h1"]}, others=("delta2[0]", "delta2[1]")),
            N(P, "grad_W2[0,2]", ["layer:used=z1,needed=h1"], {"grad_W2": lambda v: np.outer(v["delta2"], v["z1"])}),
            N(P, "W1_new[3,2]", ["update_sign"], {"W1_new": lambda v: v["W1"] + 0.8 * v["grad_W1"]}),
            N(P, "W2_new[1,1]", ["no_lr"], {"W2_new": lambda v: v["W2"] - v["grad_W2"]}),
            N(P, "delta2[1]", ["sign", "one_plus_sigma"], combine(S["sign_out"](), g(2, lambda z, h: 1 + h))),
            ]
    dW = lambda v: v["W2"].T @ v["delta2"]
    out += [F(P, "delta1", r"W^{(2)} \delta^{(2)} \odot h^{(1)} \odot (1 - h^{(1)})", ["transpose"], {},
              lambda v: dW(v) * v["h1"] * (1 - v["h1"]),
              literal=lambda v: v["W2"] @ col(v["delta2"])),
            F(P, "grad_h1", r"W^{(2)} \delta^{(2)}", ["transpose"], {}, dW,
              literal=lambda v: v["W2"] @ col(v["delta2"])),
            F(P, "delta1", r"W^{(2)T} \delta^{(2)} \sigma'(z^{(1)})", ["hadamard"], {},
              lambda v: dW(v) * sig(v["z1"]) * (1 - sig(v["z1"])),
              literal=lambda v: v["W2"].T @ col(v["delta2"]) @ col(sig(v["z1"]))),
            F(P, "delta1", r"W^{(2)} \delta^{(2)}", ["transpose", "missing_gprime"], {"delta1": lambda v: v["grad_h1"]}, dW,
              literal=lambda v: v["W2"] @ col(v["delta2"])),
            F(P, "delta2", r"(t - h^{(2)}) \odot h^{(2)} \odot (1 - h^{(2)})", ["sign"], S["sign_out"](),
              lambda v: (v["t"] - v["h2"]) * v["h2"] * (1 - v["h2"])),
            F(P, "delta2", r"(h^{(2)} - t) \odot h^{(2)} \odot (1 + h^{(2)})", ["sigma_1plus"],
              g(2, lambda z, h: h * (1 + h)), lambda v: (v["h2"] - v["t"]) * v["h2"] * (1 + v["h2"])),
            F(P, "delta1", r"W^{(2)T} \delta^{(2)} \odot (1 - h^{(1)} \odot h^{(1)})", ["tanh_for_sigma"],
              g(1, lambda z, h: 1 - h ** 2), lambda v: dW(v) * (1 - v["h1"] ** 2)),
            F(P, "grad_W2", r"\delta^{(2)} {z^{(1)}}^T", ["layer:used=z1,needed=h1"],
              {"grad_W2": lambda v: np.outer(v["delta2"], v["z1"])}, lambda v: np.outer(v["delta2"], v["z1"])),
            F(P, "z2", r"W^{(2)} h^{(1)}", ["missing_bias"], bias(2), lambda v: v["W2"] @ v["h1"]),
            ]

    # --- the 2-2-2 graph: hw_222 (standard) and 001_4_net_222 (nankai) ------------------------
    for P in (HW, NANKAI):
        eta = mpm.mpf(tomllib.loads(P.read_text(encoding="utf-8"))["graph"]["learning_rate"])
        G, GF = graph_number, graph_formula
        sign_o1 = {"grad_o1": lambda v: v["y1"] - v["o1"]}
        s1p = {"grad_In_o1": lambda v: v["grad_o1"] * v["o1"] * (1 + v["o1"])}
        out += [G(P, "grad_o1", ["sign"], sign_o1),
                G(P, "grad_w5", ["sign"], sign_o1),
                G(P, "grad_In_o1", ["sign"], sign_o1, others=("o1",)),
                G(P, "grad_o1", ["half_missing"], {"grad_o1": lambda v: 2 * (v["o1"] - v["y1"])}),
                G(P, "grad_w5", ["half_extra"], {"grad_o1": lambda v: (v["o1"] - v["y1"]) / 2}),
                G(P, "Error", ["half_missing"], {"Error": lambda v: (v["o1"] - v["y1"]) ** 2 + (v["o2"] - v["y2"]) ** 2}),
                G(P, "grad_In_o1", ["sigma_1plus"], s1p),
                G(P, "grad_w7", ["sigma_1plus"], s1p, others=("grad_o1",)),
                G(P, "grad_In_h2", ["one_plus_sigma"], {"grad_In_h2": lambda v: v["grad_h2"] * (1 + v["h2"])},
                  others=("grad_h2",)),
                G(P, "grad_In_o2", ["tanh_for_sigma"], {"grad_In_o2": lambda v: v["grad_o2"] * (1 - v["o2"] ** 2)}),
                G(P, "grad_w5", ["missing_gprime"], {"grad_In_o1": lambda v: v["grad_o1"]}),
                G(P, "grad_h1", ["missing_path"], {"grad_h1": lambda v: v["grad_In_o1"] * v["w5"]}),
                G(P, "grad_w1", ["missing_path"], {"grad_h1": lambda v: v["grad_In_o1"] * v["w5"]}, others=("grad_In_o1",)),
                G(P, "grad_w5", ["layer:used=h2,needed=h1"], {"grad_w5": lambda v: v["grad_In_o1"] * v["h2"]}),
                G(P, "grad_w6", ["layer:used=grad_In_o1,needed=grad_In_o2"],
                  {"grad_w6": lambda v: v["grad_In_o1"] * v["h1"]}, others=("grad_In_o1", "grad_In_o2")),
                G(P, "w5_new", ["update_sign"], {"w5_new": lambda v: v["w5"] + eta * v["grad_w5"]}, others=("grad_w5",)),
                G(P, "h1", ["not_applied"], {"h1": lambda v: v["In_h1"]}),
                G(P, "grad_In_o1", ["sign", "sigma_1plus"], combine(sign_o1, s1p)),
                G(P, "grad_w1", ["layer:used=h1,needed=x1"], {"grad_w1": lambda v: v["grad_In_h1"] * v["h1"]},
                  others=("grad_In_h1",)),
                ]
        out += [GF(P, "grad_w5", r"(y_1 - o_1)\,o_1(1 - o_1)\,h_1", ["sign"], sign_o1,
                   lambda v: (v["y1"] - v["o1"]) * v["o1"] * (1 - v["o1"]) * v["h1"]),
                GF(P, "grad_In_o1", r"(o_1 - y_1)\,o_1 (1 + o_1)", ["sigma_1plus"], s1p,
                   lambda v: (v["o1"] - v["y1"]) * v["o1"] * (1 + v["o1"])),
                GF(P, "grad_In_o1", r"(o_1 - y_1)(1 + o_1)", ["one_plus_sigma"],
                   {"grad_In_o1": lambda v: v["grad_o1"] * (1 + v["o1"])}, lambda v: (v["o1"] - v["y1"]) * (1 + v["o1"])),
                GF(P, "grad_In_o1", r"(o_1 - y_1)(1 - o_1^2)", ["tanh_for_sigma"],
                   {"grad_In_o1": lambda v: v["grad_o1"] * (1 - v["o1"] ** 2)}, lambda v: (v["o1"] - v["y1"]) * (1 - v["o1"] ** 2)),
                GF(P, "grad_o1", r"2(o_1 - y_1)", ["half_missing"], {"grad_o1": lambda v: 2 * (v["o1"] - v["y1"])},
                   lambda v: 2 * (v["o1"] - v["y1"])),
                GF(P, "grad_w5", r"(o_1 - y_1)\,h_1", ["missing_gprime"], {"grad_In_o1": lambda v: v["grad_o1"]},
                   lambda v: (v["o1"] - v["y1"]) * v["h1"]),
                GF(P, "grad_w5", r"(o_1 - y_1)\,o_1(1 - o_1)\,h_2", ["layer:used=h2,needed=h1"],
                   {"grad_w5": lambda v: v["grad_In_o1"] * v["h2"]}, lambda v: (v["o1"] - v["y1"]) * v["o1"] * (1 - v["o1"]) * v["h2"]),
                GF(P, "grad_h1", r"(o_1 - y_1)\,o_1(1 - o_1)\,w_5", ["missing_path"],
                   {"grad_h1": lambda v: v["grad_In_o1"] * v["w5"]}, lambda v: (v["o1"] - v["y1"]) * v["o1"] * (1 - v["o1"]) * v["w5"]),
                GF(P, "w5_new", r"w_5 + \eta (o_1 - y_1)\,o_1(1 - o_1)\,h_1", ["update_sign"],
                   {"w5_new": lambda v: v["w5"] + eta * v["grad_w5"]},
                   lambda v: v["w5"] + eta * (v["o1"] - v["y1"]) * v["o1"] * (1 - v["o1"]) * v["h1"]),
                GF(P, "grad_w5", r"(y_1 - o_1)\,o_1(1 + o_1)\,h_1", ["sign", "sigma_1plus"], combine(sign_o1, s1p),
                   lambda v: (v["y1"] - v["o1"]) * v["o1"] * (1 + v["o1"]) * v["h1"]),
                ]
    return out


def precision_items() -> list[Item]:
    """Right values rounded too far or truncated: the feedback says so, and blames no slip."""
    out = []

    def add(P, key, x):
        exact = Decimal(fmt(x, 12))
        for d, kind in ((2, "rounded"), (3, "rounded"), (1, "coarse")):
            if Decimal(fmt(x, d)) not in (exact, Decimal(fmt(x, 4))):
                out.append(Item(P, key, fmt(x, d), (kind,), x, x))
        if fmt(x, 4, ROUND_DOWN) != fmt(x, 4):
            out.append(Item(P, key, fmt(x, 4, ROUND_DOWN), ("truncated",), x, x))

    for P in (MLP, TANH, UIBE):
        v = network(P)
        for key, q, idx in (("z1[0]", "z1", 0), ("z2[1]", "z2", 1), ("h1[1]", "h1", 1), ("delta2[1]", "delta2", 1)):
            add(P, key, v[q][idx])
    for P in (HW, NANKAI):
        v = graph(P)
        for key in ("h1", "In_o1", "grad_w5", "o2", "grad_In_h1", "Error"):
            add(P, key, v[key])
    return out
