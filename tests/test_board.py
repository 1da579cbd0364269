"""Leaderboard exports: long CSV, JSON, Markdown with intervals; suite intervals from replicates;
declared columns; --out by extension; pipe-friendly and JSON output of list/show."""

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vlbench.results import schema as result_schema
from vlbench.results.tables import format_for, load_board, render_board
from vlbench.spec.catalog import Catalog
from vlbench.cli import app
from vlbench.errors import VLBenchError
from vlbench.results.selection import Entry, suite_ci, suite_replicates
from vlbench.results.io import write_json


def result(folder, model, task, value, n, replicates=None, ci=None):
    """A minimal valid result (``result_schema``) with main metric ``acc``, bootstrap at level 0.9."""
    payload = result_schema.Result(
        schema_version=result_schema.SCHEMA_VERSION,
        model=result_schema.ModelInfo(model),
        task=result_schema.TaskInfo(task, "classification", config_hash="0123456789abcdef", dataset={"n": n}, run_settings={"limit": None}),
        metrics={"acc": value},
        main_metric="acc",
    )
    if replicates is not None:
        payload.bootstrap = result_schema.Bootstrap("items", len(replicates), 0, 0.9, list(replicates))
    if ci is not None:
        payload.ci = {"acc": ci}
    write_json(result_schema.result_path(folder, model.replace(":", "__").replace("<", "_").replace(">", "_"), task, "0123456789abcdef"), payload.to_json())


@pytest.fixture
def catalog(tmp_path):
    registry = tmp_path / "reg.yaml"
    registry.write_text(
        "suites:\n  two: {tasks: [shapes_cls, shapes_retrieval]}\n  pooled: {tasks: [shapes_cls, shapes_retrieval], aggregate: micro}\n"
        "leaderboard:\n  columns: [pooled, imagenet1k, two]\n"
    )
    return Catalog.load(extra_registry_files=[registry])


def test_suite_intervals_combine_member_replicates(tmp_path, catalog):
    a = [0.1, 0.5, 0.3, 0.9, 0.7]
    b = [0.2, 0.2, 0.6, 0.4, 1.0]
    result(tmp_path, "m:x", "shapes_cls", 0.5, 100, replicates=a, ci=[0.2, 0.8])
    result(tmp_path, "m:x", "shapes_retrieval", 0.4, 300, replicates=b, ci=[0.25, 0.55])
    result(tmp_path, "m:y", "shapes_cls", 0.6, 100)  # an old result: no interval
    board = load_board(tmp_path, catalog)
    assert board.columns[:3] == ["pooled", "imagenet1k", "two"]  # declared order, imagenet1k kept though empty
    x = board.cells["m:x"]
    # the replicates' element-wise mean: 0.15 0.35 0.45 0.65 0.85
    assert x["two"].value == pytest.approx(0.45)
    # level 0.9 from the results: the 5% and 95% quantiles (numpy's linear interpolation)
    assert x["two"].ci == pytest.approx((0.15 + 0.2 * 0.2, 0.65 + 0.8 * 0.2))
    micro = [(100 * p + 300 * q) / 400 for p, q in zip(a, b)]
    assert x["pooled"].ci == pytest.approx(tuple(np.quantile(micro, [0.05, 0.95])))
    assert x["pooled"].n == 400
    assert x["shapes_cls"].ci == (0.2, 0.8)
    assert board.cells["m:y"]["shapes_cls"].ci is None and board.cells["m:y"]["two"].value is None
    assert board.cells["m:x"]["imagenet1k"].value is None

    rows = list(csv.DictReader(io.StringIO(render_board(board, "long"))))
    assert list(rows[0]) == ["model", "task", "metric", "value", "ci_low", "ci_high", "n", "settings"]
    by_key = {(r["model"], r["task"], r["metric"]): r for r in rows}
    assert by_key[("m:x", "shapes_cls", "acc")]["ci_low"] == "0.200000"
    assert by_key[("m:y", "shapes_cls", "acc")]["ci_low"] == ""
    assert float(by_key[("m:x", "two", "suite")]["value"]) == pytest.approx(0.45)

    payload = json.loads(render_board(board, "json"))
    assert payload["columns"][:3] == ["pooled", "imagenet1k", "two"]
    cells = {row["model"]: row["cells"] for row in payload["rows"]}
    assert cells["m:x"]["two"]["ci"] == pytest.approx([0.19, 0.81])
    assert cells["m:y"]["imagenet1k"] == {"value": None, "ci": None, "n": None, "settings": ""}

    markdown = render_board(board, "md")
    assert "| m:x | 42.5 [19.5, 84.5] |  | 45.0 [19.0, 81.0] |" in markdown  # pooled: 0.25 a + 0.75 b


def test_suite_intervals_need_every_member_with_replicates_of_one_length(catalog):
    full = {"shapes_cls": Entry(0.5, 10, (0.4, 0.6)), "shapes_retrieval": Entry(0.5, 10, (0.3, 0.7))}
    assert suite_replicates(catalog, "two", full) == pytest.approx([0.35, 0.65])
    assert suite_ci(catalog, "two", {**full, "shapes_retrieval": Entry(0.5, 10)}) is None  # a member without replicates
    assert suite_ci(catalog, "two", {**full, "shapes_retrieval": Entry(0.5, 10, (0.3, 0.7, 0.5))}) is None  # other lengths
    spread = {t: Entry(0.5, 10, tuple(np.arange(101) / 100), level=0.9) for t in ("shapes_cls", "shapes_retrieval")}
    assert suite_ci(catalog, "two", spread) == pytest.approx((0.05, 0.95))  # the members' level


def test_out_extension_picks_the_format(tmp_path):
    assert format_for(tmp_path / "a.md", None) == "md"
    assert format_for(tmp_path / "a.HTML", None) == "html"
    assert format_for(tmp_path / "a.csv", "long") == "long"
    with pytest.raises(VLBenchError, match="extension"):
        format_for(tmp_path / "a.csv", "json")
    with pytest.raises(VLBenchError, match="unknown extension"):
        format_for(tmp_path / "a.txt", None)


def test_leaderboard_out_writes_wide_and_long_and_refuses_a_folder(tmp_path):
    results = tmp_path / "res"
    result(results, "m:<x>", "shapes_cls", 0.5, 10, ci=[0.4, 0.6])
    runner = CliRunner()
    folder = tmp_path / "existing"
    folder.mkdir()
    refused = runner.invoke(app, ["leaderboard", str(results), "--out", str(folder)])
    assert refused.exit_code == 2 and "is a folder" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    done = runner.invoke(app, ["leaderboard", str(results), "--out", str(tmp_path / "lb.csv")])
    assert done.exit_code == 0, done.output
    wide = (tmp_path / "lb.csv").read_text().splitlines()
    assert wide[0].startswith("model,shapes,classification,imagenet1k")  # the built-in registry's declared columns
    assert (tmp_path / "lb.long.csv").read_text().splitlines()[1] == "m:<x>,shapes_cls,acc,0.500000,0.400000,0.600000,10,"
    html_out = runner.invoke(app, ["leaderboard", str(results), "--out", str(tmp_path / "lb.html")])
    assert html_out.exit_code == 0
    page = (tmp_path / "lb.html").read_text()
    assert "m:&lt;x&gt;" in page and "m:<x>" not in page
    # a page for people shows the columns with results, not the empty declared ones the CSV keeps
    assert ">shapes_cls<" in page and ">imagenet1k<" not in page


def test_piped_tables_are_tab_separated_and_whole():
    runner = CliRunner()
    listed = runner.invoke(app, ["list", "tasks"])
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["task", "kind", "data"]
    names = [line.split("\t")[0] for line in lines[1:]]
    assert "sugarcrepe_replace_att" in names and "shapes_attribute_swap" in names
    assert "…" not in listed.stdout
    suites = json.loads(runner.invoke(app, ["list", "suites", "--format", "json"]).stdout)
    assert {"name": "shapes_compositional", "aggregate": "mean"}.items() <= next(s for s in suites["suites"] if s["name"] == "shapes_compositional").items()
    shown = json.loads(runner.invoke(app, ["show", "shapes_cls", "--format", "json"]).stdout)
    assert shown["name"] == "shapes_cls" and shown["config"]["main_metric"] == "acc1" and shown["data"]["found"] is True
