"""Grounding: IoU rule, proposal views, RefCOCO readers (pickle, rows, detections), end to end."""

import json
import pickle

import numpy as np
import pytest
from conftest import REPO, TINY, read_result
from PIL import Image
from spatial_fixtures import write_coco_grounding

from data_fixtures import source_options

from vlbench import metrics
from vlbench.spec.catalog import Catalog
from vlbench.datasets.grounding import (
    ProposalView,
    ReferReader,
    ReferRowsReader,
    load_detections,
)
from vlbench.datasets.images import FileImage
from vlbench.errors import UnsafePickleError
from vlbench.kinds.base import RunContext
from vlbench.kinds.grounding import GroundingKind
from vlbench.spec.taskfile import TaskSpec


def test_box_iou_by_hand():
    assert metrics.box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert metrics.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert metrics.box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert metrics.box_iou((0, 0, 10, 10), (0, 0, 10, 5)) == 0.5


def grounding_spec(**protocol):
    return TaskSpec("g", "grounding", None, {"metrics": ["accuracy"], "main_metric": "accuracy", "protocol": protocol})  # type: ignore[arg-type]


def test_accuracy_needs_iou_strictly_above_the_threshold_and_ties_take_the_first_box():
    records = [
        {"scores": [0.2, 0.9], "proposals": [[0, 0, 10, 10], [0, 0, 10, 5]], "target": [0, 0, 10, 10]},  # IoU exactly 0.5: miss
        {"scores": [0.5, 0.5], "proposals": [[0, 0, 10, 10], [50, 50, 60, 60]], "target": [0, 0, 10, 10]},  # tie -> first: hit
        {"scores": [0.1, 0.3], "proposals": [[0, 0, 10, 10], [1, 0, 10, 10]], "target": [0, 0, 10, 10]},  # IoU 0.9: hit
    ]
    assert GroundingKind().score(records, grounding_spec()) == {"accuracy": pytest.approx(2 / 3)}


def test_proposal_views_crop_blur_and_square(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    source = FileImage(str(tmp_path / "a.png"))
    crop = ProposalView(source, (10, 5, 30, 25), "crop").load()
    assert np.array_equal(np.asarray(crop), pixels[5:25, 10:30])
    clipped = ProposalView(source, (50, 30, 80, 70), "crop").load()
    assert clipped.size == (10, 10)  # clipped to the image
    assert ProposalView(source, (10, 5, 30, 25), "crop", square=32).load().size == (32, 32)
    blurred = np.asarray(ProposalView(source, (10, 5, 30, 25), "blur", blur_std=5).load()).astype(int)
    assert np.array_equal(blurred[5:25, 10:30], pixels[5:25, 10:30])  # the box stays sharp
    assert np.abs(blurred[30:, 40:] - pixels[30:, 40:]).mean() > 20  # the rest is blurred


def test_refer_reader_on_the_toolkit_files(tmp_path):
    fixture = write_coco_grounding(tmp_path)
    spec = Catalog.load().load_task("refcoco_val")
    source = {"refs": "refs(unc).p", "instances": "instances.json", "images": "coco/train2014", "split": "val"}
    data = ReferReader().read(str(tmp_path / "refcoco"), source_options(ReferReader, source), spec, RunContext(tmp_path, None))  # type: ignore[arg-type]
    assert [s.expression for s in data.samples] == ["The RED box", "the blue box"]  # the 'raw' text, as ReCLIP
    assert data.samples[0].target == (5.0, 10.0, 30.0, 40.0)  # x, y, w, h -> x0, y0, x1, y1
    assert data.samples[0].proposals == [(5.0, 10.0, 30.0, 40.0), (50.0, 15.0, 80.0, 50.0)]
    test_a = ReferReader().read(str(tmp_path / "refcoco"), source_options(ReferReader, {**source, "split": "testA"}), spec, RunContext(tmp_path, None))  # type: ignore[arg-type]
    assert len(test_a.samples) == 2 and test_a.samples[0].image_id == "2"
    assert len(fixture["refs"]) == 6


def test_refs_pickle_with_code_is_refused(tmp_path):
    write_coco_grounding(tmp_path)

    class Payload:
        def __reduce__(self):
            return (print, ("owned",))

    (tmp_path / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps([{"ref_id": 1, "x": Payload()}], protocol=2))
    with pytest.raises(UnsafePickleError, match=r"refusing to load .*print"):
        ReferReader().read(str(tmp_path / "refcoco"), source_options(ReferReader, {"refs": "refs(unc).p", "images": "coco/train2014", "split": "val"}), Catalog.load().load_task("refcoco_val"), RunContext(tmp_path, None))  # type: ignore[arg-type]


def test_rows_conversion_with_xyxy_boxes(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_coco_grounding(tmp_path)
    rows = [{"ref_id": 7, "image_id": 1, "bbox": [5.0, 10.0, 30.0, 40.0], "captions": ["the red box", "red one"], "split": "val"},
            {"ref_id": 8, "image_id": 2, "bbox": [50.0, 15.0, 80.0, 50.0], "captions": ["blue"], "split": "testB"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "refcoco" / "conv.parquet")
    source = {"rows": "conv.parquet", "images": "coco/train2014", "split": "val", "bbox_format": "xyxy", "columns": {"expressions": "captions"}}
    data = ReferRowsReader().read(str(tmp_path / "refcoco"), source_options(ReferRowsReader, source), grounding_spec(), RunContext(tmp_path, None))  # type: ignore[arg-type]
    assert [s.expression for s in data.samples] == ["the red box", "red one"]
    assert data.samples[0].target == (5.0, 10.0, 30.0, 40.0) and len(data.samples[0].proposals) == 2  # other objects from instances


def test_detections_replace_ground_truth_proposals(tmp_path):
    write_coco_grounding(tmp_path)
    detections = tmp_path / "dets.json"
    detections.write_text(json.dumps([{"image_id": 1, "bbox": [4, 9, 30, 30], "score": 0.9, "category_id": 1}]))
    assert load_detections(detections) == {"1": [(4.0, 9.0, 34.0, 39.0)]}
    base = Catalog.load().load_task("refcoco_val")
    spec = TaskSpec(base.name, base.kind, base.source_file, {**base.config, "files": {"detections": str(detections)}})
    data, _ = GroundingKind().load(spec, RunContext(tmp_path, None))  # type: ignore[arg-type]
    assert all(s.proposals == [(4.0, 9.0, 34.0, 39.0)] for s in data.samples)


def test_grounding_end_to_end(cli, tmp_path):
    write_coco_grounding(tmp_path / "data")
    registry = tmp_path / "reg.yaml"
    registry.write_text("models:\n  adapters:\n    color: color_adapter:ColorAdapter\n")
    env = {"PYTHONPATH": str(REPO / "tests" / "plugins"), "VLBENCH_REGISTRY": str(registry)}
    # a model that sees colours finds 'the red box' and 'the blue box' every time
    result = cli("run", "--model", "color:x", "--tasks", "refcoco_val,refcoco_testA", "--output", "res", env=env)
    assert result.returncode == 0, result.stderr
    for task in ("refcoco_val", "refcoco_testA"):
        payload = read_result(tmp_path / "res" / "color__x", task)
        assert payload["metrics"]["accuracy"] == 1.0 and payload["task"]["dataset"]["n"] == 2
    tiny = cli("run", "--model", TINY, "--tasks", "grounding", "--skip-missing", "--output", "res")
    assert tiny.returncode == 0, tiny.stderr
    assert "refcoco_testB" in tiny.stdout and "no data" in tiny.stdout  # refcoco+ / refcocog are not in the fixture
    shapes = read_result(tmp_path / "res" / "openclip__vlbench-tiny@random", "shapes_ground")
    assert shapes["task"]["dataset"]["n"] > 200 and shapes["task"]["protocol_used"]["square_size"] == 64
