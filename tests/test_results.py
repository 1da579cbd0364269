"""Result files: schema, identity, path safety, model slugs, compare and rescore --check (in-process CLI)."""

import json

import pytest
from result_fixtures import classification_records, write_classification_result
from typer.testing import CliRunner

from vlbench.results import schema as result_schema
from vlbench.cli import app
from vlbench.models import parse_model_spec


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, code=2):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == code and len(lines) == 1, (result.exit_code, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def test_slugs_are_injective_readable_and_stable():
    a = parse_model_spec("openclip:sl/run1/epoch_1.pt").slug
    b = parse_model_spec("openclip:sl/run1_epoch_1.pt").slug
    assert a != b and a.startswith("openclip__sl_run1_epoch_1.pt-") and "/" not in a
    assert a == parse_model_spec("openclip:sl/run1/epoch_1.pt").slug  # stable: a hash of the spec, not of the run
    assert parse_model_spec("openclip:vlbench-tiny@random").slug == "openclip__vlbench-tiny@random"  # plain names unchanged
    assert parse_model_spec("a:b__c").slug != parse_model_spec("a__b:c").slug
    long = parse_model_spec("hf:" + "x" * 100)
    assert len(long.slug) <= 80 and long.slug != parse_model_spec("hf:" + "x" * 101).slug


def test_samples_outside_the_result_folder_are_refused(tmp_path):
    results = tmp_path / "res"
    path = write_classification_result(results, "m:a", classification_records([True, False]))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for hostile in ("../../../victim.txt", str(victim), "..", ""):
        payload = json.loads(path.read_text())
        payload["samples"] = hostile
        path.write_text(json.dumps(payload))
        result = result_schema.read(path)
        with pytest.raises(Exception, match="not a file name inside"):
            result.samples_file(path)
        line = one_line_error(invoke("rescore", results))
        assert "refusing" in line or "not a file name inside" in line
        payload["artifacts"] = {"options": {"file": hostile, "sha256": ""}}
        with pytest.raises(Exception, match="not a file name inside"):
            result_schema.from_json(payload).artifact_file(path, "options")
    assert victim.read_text() == "keep me"


def test_rescore_check_catches_a_tampered_value(tmp_path):
    results = tmp_path / "res"
    path = write_classification_result(results, "m:a", classification_records([True, False, True, True]))
    assert invoke("rescore", results, "--check").exit_code == 0
    payload = json.loads(path.read_text())
    payload["metrics"]["mean_per_class_recall"] += 1e-6
    path.write_text(json.dumps(payload))
    checked = invoke("rescore", results, "--check")
    assert checked.exit_code == 1
    assert str(path) in checked.stderr and "mean_per_class_recall" in checked.stderr
    assert "acc1" not in checked.stderr
    assert invoke("rescore", results).exit_code == 0  # without --check it only reports
    assert invoke("rescore", results, "--write").exit_code == 0
    assert invoke("rescore", results, "--check").exit_code == 0


def test_rescore_on_a_missing_or_empty_folder_is_an_error(tmp_path):
    assert "results folder not found" in one_line_error(invoke("rescore", tmp_path / "nothere"))
    (tmp_path / "empty").mkdir()
    assert "no result files" in one_line_error(invoke("rescore", tmp_path / "empty"))


def test_compare_two_folders_and_two_models_in_one_folder(tmp_path):
    a = [True] * 40 + [False] * 60
    b = [True] * 30 + [False] * 10 + [True] * 20 + [False] * 40  # A only: 10, B only: 20
    write_classification_result(tmp_path / "a", "m:a", classification_records(a))
    write_classification_result(tmp_path / "b", "m:b", classification_records(b))
    shown = invoke("compare", tmp_path / "a", tmp_path / "b")
    assert shown.exit_code == 0, shown.stderr
    from math import comb

    p = 2 * sum(comb(30, k) for k in range(11)) / 2**30  # exact McNemar, 10 vs 20 discordant
    row = next(line for line in shown.stdout.splitlines() if "toy" in line)
    assert "+10.00" in row and "mcnemar" in row and f"{p:.3g}" in row
    write_classification_result(tmp_path / "a", "m:b", classification_records(b))
    both = invoke("compare", tmp_path / "a", "--models", "m:a", "--models", "m:b")
    assert both.exit_code == 0 and f"{p:.3g}" in both.stdout
    assert "holds 2 models" in one_line_error(invoke("compare", tmp_path / "a", tmp_path / "b"))


def test_compare_refuses_runs_on_different_items(tmp_path):
    write_classification_result(tmp_path / "a", "m:a", classification_records([True] * 10))
    write_classification_result(tmp_path / "b", "m:b", classification_records([True] * 9))
    assert "different items" in one_line_error(invoke("compare", tmp_path / "a", tmp_path / "b"))


def test_leaderboard_warns_about_invalid_result_files(tmp_path):
    results = tmp_path / "res"
    write_classification_result(results, "m:a", classification_records([True, False]))
    broken = write_classification_result(results, "m:b", classification_records([True, True]))
    broken.write_text(broken.read_text()[:200])
    shown = invoke("leaderboard", results)
    assert shown.exit_code == 0
    assert f"warning: skipped {broken}: not valid JSON" in " ".join(shown.stderr.split())
    assert "m:a" in shown.stdout and "m:b" not in shown.stdout
