"""``nnderive check --cluster``: a Dask LocalCluster of two worker processes gives exactly the
records of the local pool, file by file (the same sandboxed graders run on each Dask worker)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the 'cluster' extra (dask[distributed]) is not installed")

from derive.grading.submissions import answer_files, grade, grade_on_cluster  # noqa: E402
from derive.cli import main  # noqa: E402
from derive.serve.cluster import local_cluster  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "docs" / "examples" / "hw_222.toml"


@pytest.fixture(scope="module")
def cluster():
    c = local_cluster(2)
    yield c
    c.close()


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    d = tmp_path_factory.mktemp("subs")
    for folder in ("answers", "hostile"):
        for f in (ROOT / "docs" / "examples" / folder).glob("*.toml"):
            shutil.copy(f, d / f"{folder}_{f.name}")
    (d / "broken.toml").write_text('[answers]\nh1 = "0.5', encoding="utf-8")
    return d


def test_cluster_records_equal_the_local_pool(cluster, submissions):
    files = answer_files([str(submissions)])
    local = grade(str(HW), [str(submissions)], jobs=2)
    with cluster.get_client() as client:
        assert len(client.scheduler_info()["workers"]) == 2
        remote = grade_on_cluster(client, str(HW), files)
    assert json.dumps(remote, sort_keys=True) == json.dumps(local, sort_keys=True)
    verdicts = {r["verdict"] for s in local for r in s["records"]}
    assert {"correct", "wrong", "invalid"} <= verdicts


def test_the_command_grades_on_the_cluster(cluster, submissions, capsys):
    code = main(["check", str(HW), str(submissions / "answers_ada.toml"), "--json", "--cluster",
                 cluster.scheduler_address])
    assert code == 1            # Ada's file holds a wrong answer
    (sub,) = json.loads(capsys.readouterr().out)["submissions"]
    assert sub["score"] == 10.5 and sub["max_score"] == 12


def test_an_unreachable_cluster_is_one_line(capsys):
    code = main(["check", str(HW), str(ROOT / "docs" / "examples" / "answers"), "--cluster", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--cluster" in err
