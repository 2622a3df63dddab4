"""The command: formats (text, JSON, Gradescope), exit codes, directories, variants."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from derive.cli import main
from oracles import ORDER_222, net222, rnd

V = net222()
EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def answers_file(path: Path, answers: dict, student="Ada") -> Path:
    lines = ['problem = "001_4_net_222"', f'student = "{student}"', "[answers]"]
    lines += [f"{k} = '{v}'" for k, v in answers.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_json_format(tmp_path, capsys):
    f = answers_file(tmp_path / "ada.toml", {"h1": rnd(V["h1"], 4), "o1": "0.9", "grad_w5": r"$(o_1 - y_1) h_1$"})
    assert main(["check", "001_4_net_222", str(f), "--json"]) == 1   # some answers are wrong
    out = json.loads(capsys.readouterr().out)
    (sub,) = out["submissions"]
    assert set(sub) >= {"file", "score", "max_score", "records"}
    for r in sub["records"]:
        assert set(r) >= {"quantity", "index", "answer", "verdict", "score", "expected", "feedback"}
        assert r["verdict"] in ("correct", "carried", "precision", "wrong", "undetermined", "invalid")
    assert sub["score"] == sum(r["score"] for r in sub["records"]) == 1
    assert sub["max_score"] == 3


def test_text_report_and_summary(tmp_path, capsys):
    answers_file(tmp_path / "a.toml", {q: rnd(V[q], 4) for q in ORDER_222}, "Ada")
    answers_file(tmp_path / "b.toml", {q: rnd(V[q], 2) for q in ORDER_222}, "Bob")
    assert main(["check", "001_4_net_222", str(tmp_path), "--no-progress"]) == 1   # some answers are wrong
    out = capsys.readouterr().out
    assert "a.toml (Ada): 33 / 33" in out and "summary" in out and "by quantity" in out
    assert "Bob" in out and "precision" in out


def test_gradescope_results(tmp_path, capsys):
    f = answers_file(tmp_path / "ada.toml", {"h1": rnd(V["h1"], 4), "o1": "0.9"})
    target = tmp_path / "results.json"
    assert main(["check", "001_4_net_222", str(f), "--gradescope", str(target)]) == 1   # some answers are wrong
    capsys.readouterr()
    res = json.loads(target.read_text())
    graded = [t for t in res["tests"] if t["max_score"] > 0]   # the others show expected values later
    assert res["score"] == 1 and len(graded) == 2
    assert all({"name", "score", "max_score", "output"} <= set(t) for t in res["tests"])
    assert any("expected" in t["output"] for t in res["tests"])


def test_gradescope_directory_for_several(tmp_path, capsys):
    answers_file(tmp_path / "s" / "a.toml" if (tmp_path / "s").mkdir() is None else None, {"h1": "0.5622"})
    answers_file(tmp_path / "s" / "b.toml", {"h1": "0.5"})
    assert main(["check", "001_4_net_222", str(tmp_path / "s"), "--gradescope", str(tmp_path / "gs")]) == 1   # some answers are wrong
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "gs").iterdir()) == ["a.results.json", "b.results.json", "run.json"]


@pytest.mark.parametrize("args", [["check", "no_such_example", "x.toml"], ["check", "001_4_net_222", "/no/such/file"],
                                  ["check", "001_4_net_222"]])
def test_unusable_arguments_exit_2(args, capsys):
    with pytest.raises(SystemExit) if len(args) == 2 else _nothing():
        code = main(args)
        assert code == 2


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_homework_example_and_its_answer_file(capsys):
    """docs/examples: the homework spec with [grading], and a student's answers (numbers and LaTeX)."""
    code = main(["check", str(EXAMPLES / "hw_222.toml"), str(EXAMPLES / "answers"), "--json"])
    assert code == 1    # Ada's answers hold a wrong one
    out = json.loads(capsys.readouterr().out)
    verdicts = {r["verdict"] for s in out["submissions"] for r in s["records"]}
    assert {"correct", "carried", "wrong"} <= verdicts


def test_variants_keys_grade_full_and_cross_keys_do_not(tmp_path, capsys):
    out_dir = tmp_path / "v"
    assert main(["variants", str(EXAMPLES / "hw_222.toml"), "--count", "3", "--seed", "5", "-o", str(out_dir)]) == 0
    capsys.readouterr()
    manifest = json.loads((out_dir / "variants.json").read_text())
    assert [v["name"] for v in manifest["variants"]] == ["variant_001", "variant_002", "variant_003"]
    specs = [json.loads((out_dir / v["spec"]).read_text()) for v in manifest["variants"]]
    assert specs[0]["graph"]["values"] != specs[1]["graph"]["values"]
    for v in manifest["variants"]:  # drawn on the 2-decimal grid within the bounds
        for k, x in v["drawn"].items():
            assert -0.9 <= float(x) <= 1 and len(x.split(".")[-1]) <= 2
    keys = [str(p) for p in sorted(out_dir.glob("key_*.json"))]
    assert main(["check", str(out_dir), *keys, "--json"]) == 0  # the keys are answer files
    subs = json.loads(capsys.readouterr().out)["submissions"]
    assert len(subs) == 3 and all(s["score"] == s["max_score"] > 0 for s in subs)
    # variant 1's key handed in as variant 2: graded against variant 2's numbers
    key1 = json.loads((out_dir / "key_001.json").read_text())
    key1["problem"] = "variant_002"
    (tmp_path / "cheat.json").write_text(json.dumps(key1))
    assert main(["check", str(out_dir), str(tmp_path / "cheat.json"), "--json"]) == 1
    (sub,) = json.loads(capsys.readouterr().out)["submissions"]
    assert sub["score"] < sub["max_score"] / 2


def test_variants_same_seed_same_numbers(tmp_path, capsys):
    for d in ("a", "b"):
        assert main(["variants", str(EXAMPLES / "hw_222.toml"), "--count", "2", "--seed", "9", "-o", str(tmp_path / d)]) == 0
    capsys.readouterr()
    assert (tmp_path / "a" / "variant_002.json").read_text() == (tmp_path / "b" / "variant_002.json").read_text()


def test_variants_without_a_draw_table_is_an_input_error(tmp_path, capsys):
    assert main(["variants", "001_4_net_222", "--count", "2", "-o", str(tmp_path / "x")]) == 2
    assert "variants.draw" in capsys.readouterr().err
