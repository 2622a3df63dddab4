"""The documented demos: XOR of slide 003 below error 0.01; scikit-learn's digits at ≥ 95 %."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import demos
from kernel_fixtures import CACHE


def test_xor_reaches_the_slides_error():
    result = demos.xor(cache_dir=CACHE, log=lambda s: None)
    assert result["converged"] and result["error"] < 0.01
    outputs = np.array(result["outputs"])
    assert np.all((outputs > 0.5) == np.array([False, True, True, False]))     # it computes XOR


def test_xor_reports_a_stuck_start():
    result = demos.xor(seed=0, max_iterations=3000, cache_dir=CACHE, log=lambda s: None)
    assert not result["converged"]                 # no pretending: a plateau is reported as such


def test_digits_test_accuracy():
    pytest.importorskip("sklearn", reason="scikit-learn is the optional 'digits' extra")
    result = demos.digits(cache_dir=CACHE, log=lambda s: None)
    assert result["accuracy"] >= 0.95 and result["test_images"] == 450
