"""Grading on a Dask LocalCluster of two worker processes gives exactly the local pool's records,
and the sandbox limits hold inside the Dask workers."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the 'cluster' extra (dask[distributed]) is not installed")

from derive.serve.cluster import DaskExecutor, local_cluster  # noqa: E402
from derive.serve.course import Course, grade_answers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETS = [
    {"h1": "0.5", "h2": "0.4950", "o1": "0.48", "grad_o1": "$o_1 - y_1$"},
    {"grad_In_o1": r"$(o_1 - y_1)\,o_1(1 - o_1)$", "grad_w5": r"$\frac{1}{2}$", "grad_w1": "0.0008"},
    {"h1": "NaN", "Error": r"$\frac{", "w5_new": "1e400"},
    {"h1": "0.1111", "h2": "0.6", "o1": "0.45", "o2": "0.5", "Error": "0.2"},
]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    d = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "docs/examples/hw_222.toml", d / "hw_222.toml")
    (d / "course.toml").write_text("variants = 2\nseed = 5\n", encoding="utf-8")
    return Course(d, tmp_path_factory.mktemp("state"), jobs=2)


@pytest.fixture(scope="module")
def executor():
    cluster = local_cluster(2)
    ex = DaskExecutor(cluster.get_client())
    yield ex
    ex.close()
    cluster.close()


def test_a_local_cluster_grades_exactly_as_the_local_pool(course, executor):
    assert len(executor.client.scheduler_info()["workers"]) == 2
    for key in course.problems["hw_222"].versions:
        local = [grade_answers(key, s) for s in SETS]
        remote = executor.grade_many(course.sources[key], SETS, (60.0, 10.0, 1024))
        assert json.dumps(remote, sort_keys=True) == json.dumps(local, sort_keys=True)
        assert {r["verdict"] for res in local for r in res["records"]} >= {"correct", "wrong", "invalid"}


def test_sandbox_limits_hold_inside_the_dask_workers(course, executor):
    key = course.problems["hw_222"].versions[0]
    (res,) = executor.grade_many(course.sources[key], [SETS[0]], (60.0, 1e-6, 1024))
    latex = [r for r in res["records"] if r["answer"] == "$o_1 - y_1$"]
    assert latex and latex[0]["verdict"] == "invalid" and latex[0]["feedback"].startswith("stopped: took longer")


def test_the_course_sends_grading_to_the_cluster_when_given_one(course, executor):
    key = course.problems["hw_222"].versions[1]
    local = course.grade(key, SETS[3])
    course.executor = executor
    try:
        remote = course.grade(key, SETS[3])
    finally:
        course.executor = None
    assert remote == local
