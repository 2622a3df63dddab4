"""Independent arithmetic for the tests: the 2-2-2 network and the 3-3-3-3 MLP written out by hand.

Nothing here uses the engine (no SymPy, no derivation steps): mpmath at 50 digits for the graph,
NumPy float64 for the MLP.  Tests build answer files from these numbers, including deliberate
mistakes, and expect the checker's verdicts to follow from the arithmetic.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import mpmath as mpm
import numpy as np

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
    mpm.mp.dps = 50
    v = {k: mpm.mpf(s) for k, s in GIVEN_222.items()}
    override = {k: mpm.mpf(x) for k, x in (override or {}).items()}
    lr = mpm.mpf(eta)
    sig = lambda z: 1 / (1 + mpm.e ** (-z))

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
    d = Decimal(mpm.nstr(x, 40, min_fixed=-100, max_fixed=100)) if not isinstance(x, (float, np.floating)) \
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
