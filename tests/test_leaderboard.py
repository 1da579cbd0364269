"""Result files -> leaderboard: columns, suite means (macro and micro), partial runs, formats."""

import json
import math

import numpy as np
import pytest

from vlbench.spec.catalog import Catalog
from vlbench.results import schema as result_schema
from vlbench.results.tables import load_board, render_board
from vlbench.results.io import write_json


def result(tmp_path, model, task, value, n, limit=None, metric="acc1", settings=None, overrides=None, replicates=None, created="2026-01-01"):
    """Write a minimal valid result in the results layout; returns its path."""
    run_settings = {"limit": limit, **(settings or {})}
    config_hash = f"{abs(hash((task, json.dumps(run_settings, sort_keys=True), json.dumps(overrides or {}, sort_keys=True)))):016x}"[:16]
    payload = result_schema.Result(
        schema_version=result_schema.SCHEMA_VERSION,
        created=created,
        model=result_schema.ModelInfo(model),
        task=result_schema.TaskInfo(task, "classification", config_hash=config_hash, dataset={"n": n}, run_settings=run_settings,
                                    overrides=overrides or {}),
        metrics={metric: value},
        main_metric=metric,
    )
    if replicates is not None:
        payload.bootstrap = result_schema.Bootstrap("images", len(replicates), 0, 0.95, list(replicates))
        payload.ci = {metric: [min(replicates), max(replicates)]}
    path = result_schema.result_path(tmp_path, model.replace(":", "__"), task, config_hash)
    write_json(path, payload.to_json())
    return path


def build(results, catalog, include_partial=False, settings=None, warn=None):
    """The wide table and the number of partial-only cells."""
    board = load_board(results, catalog, include_partial, settings, warn)
    return board.frame, board.partial


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
    board = load_board(results, catalog)
    csv_text = render_board(board, "csv")
    assert csv_text.splitlines()[0] == ",".join(columns)
    markdown = render_board(board, "md")
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


def test_the_default_run_is_shown_and_other_settings_only_when_asked(tmp_path, catalog):
    results = tmp_path / "results"
    result(results, "m:a", "shapes_cls", 0.5, 10, created="2026-01-01")
    result(results, "m:a", "shapes_cls", 0.6, 10, settings={"precision": "bf16"}, overrides={"protocol.window": 0}, created="2026-02-01")
    result(results, "m:a", "shapes_cls", 0.7, 5, limit=5, created="2026-03-01")
    result(results, "m:b", "shapes_cls", 0.4, 10, settings={"precision": "bf16"})
    board = load_board(results, catalog)
    assert list(board.frame["model"]) == ["m:a"] and list(board.frame["shapes_cls"]) == [0.5]  # newer runs do not displace it
    assert "settings" not in board.frame.columns and board.other == 1  # m:b has only a bf16 run
    frame, _ = build(results, catalog, settings={"precision": "bf16", "protocol.window": "0"})
    assert list(frame["model"]) == ["m:a"] and list(frame["shapes_cls"]) == [0.6]
    assert list(frame["settings"]) == ["shapes_cls: precision=bf16 protocol.window=0"]
    frame, _ = build(results, catalog, settings={"precision": "bf16"})  # exactly these settings: not m:a's window override
    assert list(frame["model"]) == ["m:b"] and list(frame["settings"]) == ["shapes_cls: precision=bf16"]
    frame, _ = build(results, catalog, settings={"precision": "bf16", "dense_variant": "naclip"})  # not a classification setting
    assert list(frame["model"]) == ["m:b"]


def test_partial_run_fills_a_cell_only_without_a_full_run_and_is_marked(tmp_path, catalog):
    results = tmp_path / "results"
    result(results, "m:a", "shapes_cls", 0.5, 10)
    result(results, "m:a", "shapes_cls", 0.9, 2, limit=2, created="2027-01-01")
    result(results, "m:a", "shapes_retrieval", 0.3, 2, limit=2)
    frame, partial = build(results, catalog, include_partial=True)
    assert frame.loc[0, "shapes_cls"] == 0.5 and frame.loc[0, "shapes_retrieval"] == 0.3
    assert frame.loc[0, "settings"] == "shapes_retrieval: limit=2"
    board = load_board(results, catalog, include_partial=True)
    assert board.cells["m:a"]["shapes_retrieval"].settings == "limit=2" and board.cells["m:a"]["shapes_cls"].settings == ""
    assert "| m:a | 40.0† | 46.7† | 30.0† | 50.0 | shapes_retrieval: limit=2 |" in render_board(board, "md")  # marked; pooled (5 + 0.6) / 12
    assert "m:a,shapes_retrieval,acc1,0.300000,,,2,limit=2" in render_board(board, "long")
    frame, _ = build(results, catalog, settings={"limit": "2"})  # only the smoke runs of that size
    assert frame.loc[0, "shapes_cls"] == 0.9 and frame.loc[0, "settings"] == "shapes_cls: limit=2; shapes_retrieval: limit=2"


def test_invalid_result_files_are_skipped_with_a_warning(tmp_path, catalog):
    results = tmp_path / "results"
    good = result(results, "m:a", "shapes_cls", 0.5, 10)
    retrieval = result(results, "m:a", "shapes_retrieval", 0.5, 10)
    retrieval.write_text(retrieval.read_text()[:100])  # truncated by hand
    bad = {"null_metrics": {"metrics": None}, "string_metric": {"metrics": {"acc1": "0.9"}}, "no_model": {"model": None}}
    for name, change in bad.items():
        payload = {**json.loads(good.read_text()), **change}
        (results / f"{name}.json").write_text(json.dumps(payload))
    warnings = []
    frame, _ = build(results, catalog, warn=warnings.append)
    assert list(frame.columns) == ["model", "two", "pooled", "shapes_retrieval", "shapes_cls"]  # declared columns always
    assert list(frame["shapes_cls"]) == [0.5] and math.isnan(frame.loc[0, "shapes_retrieval"])
    assert len(warnings) == 4 and all(w.startswith("skipped ") for w in warnings)
    assert any(str(retrieval) in w and "not valid JSON" in w for w in warnings)
    assert any("null_metrics.json" in w and "metrics" in w for w in warnings)
    assert any("string_metric.json" in w and "'acc1' is '0.9', not a number in [0, 1]" in w for w in warnings)


def test_results_of_the_previous_layout_are_read(tmp_path, catalog):
    results = tmp_path / "results"
    old = {"schema_version": 1, "model": {"id": "m:old"}, "task": {"name": "shapes_cls", "kind": "classification", "dataset": {"n": 10},
           "run_settings": {"limit": None}, "overrides": {}}, "metrics": {"acc1": 0.25}, "main_metric": "acc1", "samples": "x.samples.jsonl.gz"}
    write_json(results / "m__old" / "shapes_cls.json", old)
    frame, _ = build(results, catalog)
    assert list(frame["shapes_cls"]) == [0.25]


def test_suite_confidence_intervals_combine_the_tasks_replicates(tmp_path, catalog):
    results = tmp_path / "results"
    result(results, "m:a", "shapes_cls", 0.5, 100, replicates=[0.4, 0.5, 0.6, 0.5])
    result(results, "m:a", "shapes_retrieval", 0.9, 300, replicates=[0.8, 1.0, 0.9, 0.9])
    board = load_board(results, catalog)
    cells = board.cells["m:a"]
    assert cells["shapes_retrieval"].ci == (0.8, 1.0)
    mean = np.array([0.6, 0.75, 0.75, 0.7])  # replicate-wise mean of the two tasks
    assert cells["two"].ci == pytest.approx(tuple(np.percentile(mean, [2.5, 97.5])))
    micro = (np.array([0.4, 0.5, 0.6, 0.5]) * 100 + np.array([0.8, 1.0, 0.9, 0.9]) * 300) / 400
    assert cells["pooled"].ci == pytest.approx(tuple(np.percentile(micro, [2.5, 97.5])))
    assert "| m:a | 70.0 [60.8, 75.0] |" in render_board(board, "md")


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
