import pytest

import worked_examples
from derive.grading import Problem
from derive.spec import load


@pytest.fixture(scope="session")
def net222():
    return Problem.build(load(worked_examples.path("001_4_net_222")))


@pytest.fixture(scope="session")
def mlp():
    return Problem.build(load(worked_examples.path("000_3_mlp_3333")))
