import mpmath
import pytest

import worked_examples
from derive.grading.grade import Problem
from derive.kinds import load


@pytest.fixture(scope="session")
def net222():
    return Problem.build(load(worked_examples.path("001_4_net_222")))


@pytest.fixture(scope="session")
def mlp():
    return Problem.build(load(worked_examples.path("000_3_mlp_3333")))


@pytest.fixture(autouse=True)
def _mpmath_precision():
    """Every test starts at 50 digits, whatever another module set globally, and leaves it so."""
    with mpmath.workdps(50):
        yield
