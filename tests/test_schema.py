"""Closed task schemas: unknown and duplicate keys, types, ranges, did-you-mean; shorthands; docs."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlbench.spec.catalog import Catalog
from vlbench.errors import TaskSpecError
from vlbench.run.settings import RunSettings
from vlbench.spec.checking import load_task_file

SEG_BASE = Path(__file__).resolve().parent.parent / "tasks" / "segmentation" / "_sclip.yaml"
GOOD = """task: t
kind: segmentation
include: {base}
version: 1
dataset:
  split: val
  sources:
    - {{format: mmseg, path: voc, img_dir: JPEGImages, ann_dir: SegmentationClass}}
files: {{classnames: classes.txt}}
protocol: {{logit_scale: 50}}
"""


def task_file(tmp_path: Path, text: str = GOOD) -> Path:
    (tmp_path / "classes.txt").write_text("background\ncircle\n")
    path = tmp_path / "t.yaml"
    path.write_text(text.format(base=SEG_BASE))
    return path


def error_of(path: Path) -> TaskSpecError:
    with pytest.raises(TaskSpecError) as info:
        load_task_file(path)
    return info.value


def test_the_good_file_loads(tmp_path):
    spec = load_task_file(task_file(tmp_path))
    assert spec.protocol["logit_scale"] == 50


@pytest.mark.parametrize(
    "old, new, field, hint",
    [
        ("version: 1", "version: 1\nmetric: [mIoU]", "metric", "did you mean: metrics"),  # top level
        ("{logit_scale: 50}", "{logit_scal: 50}", "protocol.logit_scal", "did you mean: logit_scale"),  # protocol
        ("  split: val", "  splt: val", "dataset.splt", "did you mean: split"),  # dataset
        ("img_dir: JPEGImages", "image_dir: JPEGImages", "dataset.sources[0].image_dir", "did you mean: img_dir"),  # a source
        ("{classnames: classes.txt}", "{classnames: classes.txt, templats: classes.txt}", "files.templats", "did you mean: templates"),
    ],
)
def test_unknown_keys_are_refused_with_a_suggestion(tmp_path, old, new, field, hint):
    error = error_of(task_file(tmp_path, GOOD.replace(old, new)))
    assert error.field == field and "unknown key" in error.problem and hint in error.problem
    assert str(tmp_path / "t.yaml") in str(error)


def test_duplicate_keys_are_refused(tmp_path):
    error = error_of(task_file(tmp_path, GOOD.replace("version: 1", "version: 1\nversion: 2")))
    assert "duplicate key 'version'" in error.problem and "line" in error.problem


@pytest.mark.parametrize(
    "protocol, field, problem",
    [
        ("{logit_scale: high}", "protocol.logit_scale", "expected number, got str"),
        ("{pamr_steps: 1.5}", "protocol.pamr_steps", "expected whole number"),
        ("{prob_threshold: 1.5}", "protocol.prob_threshold", "must be <= 1"),
        ("{logit_scale: 0}", "protocol.logit_scale", "must be > 0"),
        ("{pamr_dilations: [8, 0]}", "protocol.pamr_dilations", "must be >= 1"),
        ("{dense_variant: naclp}", "protocol.dense_variant", "did you mean: naclip"),
        ("{window: 40, stride: 300}", "protocol.stride", "0 < stride <= window"),
    ],
)
def test_wrong_types_and_ranges(tmp_path, protocol, field, problem):
    error = error_of(task_file(tmp_path, GOOD.replace("{logit_scale: 50}", protocol)))
    assert error.field == field and problem in error.problem


def test_a_missing_required_source_key_and_a_hub_source(tmp_path):
    error = error_of(task_file(tmp_path, GOOD.replace(", ann_dir: SegmentationClass", "")))
    assert error.field == "dataset.sources[0].ann_dir" and "the mmseg format needs it" in error.problem
    # a hub source needs no local layout keys
    load_task_file(task_file(tmp_path, GOOD.replace("path: voc, img_dir: JPEGImages, ann_dir: SegmentationClass", "hub: org/voc")))


def test_seed_shorthand_changes_only_the_tasks_it_sets():
    catalog, options = Catalog.load(), RunSettings(Path("."), Path("."))
    seeded = RunSettings(Path("."), Path("."), seed=7)

    def hash_of(name, run_options):
        return catalog.load_task(name, {}, run_options.shorthand_fields()).config_hash(run_options.identity())

    for name in ("imagefolder", "shapes_cls", "sugarcrepe_add_att", "voc21"):
        assert hash_of(name, seeded) == hash_of(name, options), name
    assert hash_of("aro_coco_order", seeded) != hash_of("aro_coco_order", options)
    order = catalog.load_task("aro_coco_order", {}, seeded.shorthand_fields())
    assert order.protocol["seed"] == 7 and order.shorthands == {"protocol.seed": 7}
    naclip = RunSettings(Path("."), Path("."), dense_variant="naclip")
    assert hash_of("voc21", naclip) != hash_of("voc21", options) and hash_of("cifar10", naclip) == hash_of("cifar10", options)
    voc = catalog.load_task("voc21", {}, naclip.shorthand_fields())
    assert voc.protocol["dense_variant"] == "naclip" and voc.protocol["logit_scale"] == 65  # the rest of the protocol is kept


def test_cli_refuses_a_bad_task_file_in_one_line_before_loading_a_model(tmp_path, monkeypatch):
    from vlbench.cli import app
    from vlbench.run.loading import ModelLoader

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(ModelLoader, "load", no_model)
    path = task_file(tmp_path, GOOD.replace("{logit_scale: 50}", "{logit_scal: 50}"))
    result = CliRunner().invoke(app, ["run", "--tasks", str(path), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "protocol.logit_scal" in lines[0] and "did you mean: logit_scale" in lines[0]


def test_kind_docs_and_json_schema_come_from_the_schemas(tmp_path):
    from vlbench.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["show", "kind:segmentation"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0
    for text in ("short_side", "prob_threshold", "reduce_zero_label", "mIoU", "background_words"):
        assert text in shown.stdout
    rules = runner.invoke(app, ["show", "kind:selection"], env={"COLUMNS": "250"})
    assert "winoground:" in rules.stdout and "strictly higher" in rules.stdout
    listed = runner.invoke(app, ["list", "kinds"], env={"COLUMNS": "60"})  # piped: whole names, however narrow
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.stdout.splitlines()}
    assert {"classification", "retrieval", "selection", "segmentation", "grounding", "multilabel_classification"} <= set(rows)
    assert "…" not in listed.stdout and "mean_per_class_recall" in rows["classification"][2]
    narrow = runner.invoke(app, ["show", "kind:selection"], env={"COLUMNS": "60"})
    assert "…" not in narrow.stdout and "positives_above_negatives: 1 if, for every anchor" in narrow.stdout
    out = tmp_path / "task.schema.json"
    assert runner.invoke(app, ["schema", "--out", str(out)]).exit_code == 0
    schema = json.loads(out.read_text())
    assert schema["additionalProperties"] is False and "main_metric" in schema["properties"]
    seg = next(b["then"]["properties"] for b in schema["allOf"] if b["if"]["properties"]["kind"]["const"] == "segmentation")
    assert seg["protocol"]["properties"]["prob_threshold"] == {
        "type": "number", "minimum": 0, "maximum": 1, "description": seg["protocol"]["properties"]["prob_threshold"]["description"], "default": 0.0}
    assert seg["protocol"]["additionalProperties"] is False


def test_a_plugin_reader_without_a_schema_keeps_its_required_keys_check(tmp_path, monkeypatch):
    from vlbench.datasets.segmentation import SEGMENTATION_READERS

    class PluginReader:  # an older reader: 'required' only, no 'options' schema
        required = ("masks",)

    monkeypatch.setitem(SEGMENTATION_READERS._items, "plugin", PluginReader)
    source = "{{format: mmseg, path: voc, img_dir: JPEGImages, ann_dir: SegmentationClass}}"
    error = error_of(task_file(tmp_path, GOOD.replace(source, "{{format: plugin, path: p}}")))
    assert error.field == "dataset.sources[0].masks" and "plugin format needs it" in error.problem
    load_task_file(task_file(tmp_path, GOOD.replace(source, "{{format: plugin, masks: m, anything: 1}}")))


def test_set_names_exactly_the_keys_the_schemas_declare(tmp_path):
    from vlbench.errors import VLBenchError

    path = task_file(tmp_path)
    # a protocol field the file leaves out, and a files: entry it does not use, are settable
    spec = load_task_file(path, {"t:protocol.window": 0, "t:files.background_words": str(tmp_path / "classes.txt")})
    assert spec.protocol["window"] == 0 and spec.overrides["protocol.window"] == 0
    assert spec.overridden == frozenset({"protocol.window", "files.background_words"})
    with pytest.raises(VLBenchError) as error:  # scoped to the task: a misspelt key is refused
        load_task_file(path, {"t:protocol.windw": 0})
    assert "has no field 'protocol.windw'" in str(error.value) and "did you mean: protocol.window" in str(error.value)
    # unscoped: applied only where declared (a classification group_metrics is not a segmentation field);
    # language only on tasks with languages
    spec = load_task_file(path, {"protocol.group_metrics": {}, "language": "it", "protocol.pamr_steps": 2})
    assert spec.overrides == {"protocol.pamr_steps": 2} and "language" not in spec.config
