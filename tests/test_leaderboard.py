"""Result files -> leaderboard: columns, suite means (macro and micro), partial runs, formats."""

import json
import math

import pytest

from vlbench.catalog import Catalog
from vlbench.leaderboard import build, render
from vlbench.results import SCHEMA_VERSION, write_json


def result(tmp_path, model, task, value, n, limit=None, metric="acc1"):
    payload = {
        "schema_version": SCHEMA_VERSION,
        "model": {"id": model},
        "task": {"name": task, "dataset": {"n": n}, "run_settings": {"limit": limit}},
        "metrics": {metric: value},
        "main_metric": metric,
    }
    write_json(tmp_path / model.replace(":", "__") / f"{task}.json", payload)


@pytest.fixture
def catalog(tmp_path):
    registry = tmp_path / "reg.yaml"
    registry.write_text(
        "suites:\n  two: {tasks: [shapes_cls, shapes_retrieval]}\n  pooled: {tasks: [shapes_cls, shapes_retrieval], aggregate: micro}\n"
        "leaderboard:\n  columns: [two, pooled, shapes_retrieval]\n"
    )
    return Catalog.load(extra_registry_files=[registry])


def test_wide_table_with_suite_means(tmp_path, catalog):
    results = tmp_path / "results"
    result(results, "m:b", "shapes_cls", 0.5, 100)
    result(results, "m:b", "shapes_retrieval", 0.9, 300)
    result(results, "m:a", "shapes_cls", 0.2, 100)  # no shapes_retrieval: suites stay empty
    result(results, "m:a", "cifar10", 0.7, 10000)
    frame, partial = build(results, catalog)
    assert partial == 0
    assert list(frame["model"]) == ["m:a", "m:b"]  # stable order
    columns = list(frame.columns)
    assert columns[:4] == ["model", "two", "pooled", "shapes_retrieval"]
    assert set(columns[4:]) == {"cifar10", "shapes_cls"}
    row_b = frame.set_index("model").loc["m:b"]
    assert row_b["two"] == pytest.approx((0.5 + 0.9) / 2)
    assert row_b["pooled"] == pytest.approx((0.5 * 100 + 0.9 * 300) / 400)
    row_a = frame.set_index("model").loc["m:a"]
    assert math.isnan(row_a["two"]) and row_a["cifar10"] == 0.7
    csv_text = render(frame, "csv")
    assert csv_text.splitlines()[0] == ",".join(columns)
    markdown = render(frame, "md")
    assert "| m:b | 70.0 | 80.0 | 90.0 |" in markdown


def test_a_suite_of_suites_averages_its_member_suites(tmp_path):
    registry = tmp_path / "reg.yaml"
    registry.write_text("suites:\n  one: [shapes_cls]\n  three: [shapes_retrieval, shapes_seg, shapes_ground]\n  both: [one, three]\n"
                        "leaderboard:\n  columns: [both]\n")
    catalog = Catalog.load(extra_registry_files=[registry])
    results = tmp_path / "results"
    for task, value in (("shapes_cls", 1.0), ("shapes_retrieval", 0.0), ("shapes_seg", 0.0), ("shapes_ground", 0.0)):
        result(results, "m:a", task, value, 10)
    frame, _ = build(results, catalog)
    assert frame.loc[0, "both"] == pytest.approx((1.0 + 0.0) / 2)  # not 1/4: each member suite counts once


def test_results_with_non_default_settings_say_so(tmp_path, catalog):
    results = tmp_path / "results"
    result(results, "m:a", "shapes_cls", 0.5, 10)
    frame, _ = build(results, catalog)
    assert "settings" not in frame.columns
    payload = json.loads((results / "m__a" / "shapes_cls.json").read_text())
    payload["task"]["run_settings"]["precision"] = "bf16"
    payload["task"]["overrides"] = {"protocol.window": 0}
    write_json(results / "m__a" / "shapes_cls.json", payload)
    frame, _ = build(results, catalog)
    assert frame.loc[0, "settings"] == "precision=bf16; shapes_cls:protocol.window"


def test_partial_runs_are_left_out_unless_asked(tmp_path, catalog):
    results = tmp_path / "results"
    result(results, "m:a", "shapes_cls", 0.2, 10, limit=10)
    frame, partial = build(results, catalog)
    assert frame.empty and partial == 1
    frame, _ = build(results, catalog, include_partial=True)
    assert list(frame["shapes_cls"]) == [0.2]


def test_unrelated_json_files_are_ignored(tmp_path, catalog):
    results = tmp_path / "results"
    result(results, "m:a", "shapes_cls", 0.2, 10)
    (results / "notes.json").write_text('{"hello": 1}')
    (results / "broken.json").write_text("{not json")
    frame, _ = build(results, catalog)
    assert list(frame["model"]) == ["m:a"]
