"""Segmentation: dataset-level mIoU, windows, resizing, thresholds, PAMR, readers, end to end."""

import gzip
import json

import numpy as np
import pytest
import torch
from spatial_fixtures import write_voc

from data_fixtures import source_options

from vlbench import metrics
from vlbench.datasets.segmentation import MmsegReader, reduce_zero_label
from vlbench.kinds.segmentation import (
    class_queries,
    predict_classes,
    resize_short_side,
    windows,
)
from vlbench.kinds.pamr import pamr


def test_confusion_and_dataset_level_miou_by_hand():
    label_a = np.array([[0, 0, 1, 1], [255, 255, 1, 1]])
    pred_a = np.array([[0, 1, 1, 1], [2, 2, 1, 0]])
    label_b = np.array([[2, 2], [2, 0]])
    pred_b = np.array([[2, 2], [0, 0]])
    total = metrics.confusion_matrix(pred_a, label_a, 4) + metrics.confusion_matrix(pred_b, label_b, 4)
    # void pixels (255) are left out. class 0: GT 2+1, predicted 2+2, TP 1+1 -> 2 / (3 + 4 - 2) = 2/5
    # class 1: GT 4, predicted 4, TP 3 -> 3/5; class 2: GT 3, predicted 2 (a's 2s sit on void), TP 2 -> 2/3
    # class 3: neither in the labels nor predicted -> NaN, skipped by the mean
    scores = metrics.segmentation_scores(total)
    assert scores["iou"][:3] == pytest.approx([2 / 5, 3 / 5, 2 / 3])
    assert np.isnan(scores["iou"][3])
    assert scores["mIoU"] == pytest.approx((2 / 5 + 3 / 5 + 2 / 3) / 3)
    assert scores["aAcc"] == pytest.approx(7 / 10)
    per_image_mean = np.mean([metrics.segmentation_scores(metrics.confusion_matrix(p, lab, 4))["mIoU"] for p, lab in ((pred_a, label_a), (pred_b, label_b))])
    assert scores["mIoU"] != pytest.approx(per_image_mean)  # dataset level, not a mean of per-image mIoUs


def test_a_class_predicted_but_absent_counts_as_zero():
    scores = metrics.segmentation_scores(metrics.confusion_matrix(np.array([0, 1]), np.array([0, 0]), 2))
    assert scores["iou"].tolist() == [0.5, 0.0] and scores["mIoU"] == 0.25


def test_reduce_zero_label():
    assert reduce_zero_label(np.array([0, 1, 5, 255], dtype=np.uint8)).tolist() == [255, 0, 4, 255]


def test_sliding_windows_end_at_the_border():
    boxes = windows(336, 500, 224, 112)
    assert sorted({(b[0], b[2]) for b in boxes}) == [(0, 224), (112, 336)]
    assert sorted({(b[1], b[3]) for b in boxes}) == [(0, 224), (112, 336), (224, 448), (276, 500)]
    assert windows(100, 150, 224, 112) == [(0, 0, 100, 150)]  # smaller than a window: one crop
    assert windows(336, 500, 0, 0) == [(0, 0, 336, 500)]  # whole image


def test_short_side_resize_keeps_the_aspect_and_caps_the_long_side():
    assert resize_short_side(torch.zeros(3, 375, 500), 336, 2048).shape == (3, 336, 448)
    assert resize_short_side(torch.zeros(3, 100, 5000), 336, 2048).shape == (3, 41, 2048)


def test_synonyms_thresholds_and_area_filter():
    queries, owners = class_queries(["sky, wall", "cat", "dog, puppy"], ", ")
    assert queries == ["sky", "wall", "cat", "dog", "puppy"] and owners == [0, 0, 1, 2, 2]
    logits = torch.zeros(5, 1, 3)
    logits[4, 0, 0] = 1.0  # 'puppy' wins pixel 0 -> class 2
    logits[2, 0, 1] = 1.0  # 'cat' wins pixel 1
    protocol = {"logit_scale": 10, "prob_threshold": 0.0, "area_threshold": None}
    prediction, tied = predict_classes(logits, owners, 3, protocol)
    assert prediction[0].tolist() == [2, 1, 0] and tied == 1  # pixel 2: a tie, first query
    strict = {**protocol, "prob_threshold": 0.9}
    assert predict_classes(logits, owners, 3, strict)[0][0].tolist() == [2, 1, 0]  # softmax(10) peaks > 0.9
    assert predict_classes(logits, owners, 3, {**protocol, "prob_threshold": 0.9999})[0][0].tolist() == [0, 0, 0]
    wide = torch.zeros(5, 1, 10)
    wide[2, 0, :9] = 1.0
    wide[3, 0, 9] = 1.0  # 'dog' on 1 of 10 non-background pixels: below a 0.2 area threshold
    assert predict_classes(wide, owners, 3, {**protocol, "area_threshold": 0.2})[0][0].tolist() == [1] * 9 + [0]


def test_pamr_averages_flat_regions_and_respects_edges():
    image = torch.zeros(1, 3, 12, 12)
    image[..., 6:] = 1.0  # two flat halves
    logits = torch.rand(1, 2, 12, 12)
    assert torch.equal(pamr(image, logits, 0, [1, 2]), logits)
    refined = pamr(image, logits, 10, [1, 2])
    left, right = refined[..., :, :5], refined[..., :, 7:]
    assert left.std() < logits[..., :, :5].std() and right.std() < logits[..., :, 7:].std()  # smoother inside regions
    flat = pamr(torch.zeros(1, 3, 6, 6), torch.ones(1, 2, 6, 6) * 3.0, 5, [1])
    assert torch.allclose(flat, torch.full_like(flat, 3.0))  # a constant stays constant
    step = torch.zeros(1, 1, 12, 12)
    step[..., 6:] = 1.0
    assert torch.allclose(pamr(image, step, 10, [1, 2]), step, atol=1e-4)  # no leaking across the image edge


def test_mmseg_reader_on_the_voc_layout(tmp_path):
    labels = write_voc(tmp_path)
    source = {"img_dir": "JPEGImages", "ann_dir": "SegmentationClass", "split_file": "ImageSets/Segmentation/val.txt", "img_suffix": ".jpg", "seg_suffix": ".png"}
    root = tmp_path / "VOCdevkit" / "VOC2012"
    assert MmsegReader().exists(root, source_options(MmsegReader, source))
    data = MmsegReader().read(str(root), source_options(MmsegReader, source), None, None)
    assert [np.array_equal(s.label.load(), expected) for s, expected in zip(data.samples, labels)] == [True] * 3  # palette indices
    reduced = MmsegReader().read(str(root), source_options(MmsegReader, {**source, "reduce_zero_label": True}), None, None)
    assert set(np.unique(reduced.samples[0].label.load())) == {0, 255}  # background and void ignored, 1 -> 0


def test_segmentation_end_to_end_on_voc_and_shapes(cli, tmp_path):
    from conftest import TINY, read_result

    write_voc(tmp_path / "data")
    templates = tmp_path / "templates.txt"
    templates.write_text("a photo of a {c}.\n{c}\n")  # 2 templates instead of 80 keep the text encoding small
    # voc20 differs from voc21 only in its reader options (tested above); PAMR runs on the small VOC images only
    result = cli("run", "--model", TINY, "--tasks", "voc21,shapes_seg", "--output", "res", "--dense-variant", "naclip", "--limit", "3",
                 "--set", "voc21:protocol.pamr_steps=2", "--set", "voc21:protocol.window=0", "--set", f"files.templates={templates}")
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "res" / "openclip__vlbench-tiny@random"
    voc = read_result(folder, "voc21")
    assert voc["task"]["overrides"]["protocol.dense_variant"] == "naclip" and "dense_variant" not in voc["task"]["run_settings"]
    used = voc["task"]["protocol_used"]
    assert used["dense_variant"] == "naclip" and used["dense_variant_from"].startswith("--dense-variant")
    assert used["protocol"]["pamr_steps"] == 2 and used["protocol"]["window"] == 0
    assert used["protocol"]["logit_scale"] == 65 and used["queries"] == 56  # SCLIP's voc21 names: 26 background words
    with gzip.open(folder / "voc21" / voc["samples"], "rt") as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 3
    pixels = sum(count for r in records for _, _, count in r["confusion"])
    assert pixels == 3 * (40 * 56 - 20)  # every labelled pixel, void border left out
    assert 0 <= voc["metrics"]["mIoU"] <= 1 and "IoU/aeroplane" in voc["metrics"]
    shapes = read_result(folder, "shapes_seg")
    assert shapes["task"]["dataset"]["n"] == 3  # of 60 scenes: --limit


def test_a_model_that_sees_colours_segments_the_coloured_regions(tmp_path):
    """The whole pipeline (resize, windows, upsampling, synonyms, background, dataset mIoU) on a model whose answer is known."""
    import sys

    from conftest import REPO

    from vlbench.spec.catalog import Catalog
    from vlbench.run.runner import Runner
    from vlbench.run.settings import RunSettings

    sys.path.insert(0, str(REPO / "tests" / "plugins"))
    import color_adapter

    from vlbench.models import MODEL_ADAPTERS

    MODEL_ADAPTERS.add("color-dense", color_adapter.ColorDenseAdapter, replace=True)
    write_voc(tmp_path)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "classes.txt").write_text("grey, background\nred\nblue\n")
    (tmp_path / "tasks" / "colours.yaml").write_text(
        f"task: colours\ninclude: {REPO / 'tasks/segmentation/_sclip.yaml'}\nhelp: test data\n"
        "dataset:\n  sources:\n    - {format: mmseg, path: VOCdevkit/VOC2012, img_dir: JPEGImages, ann_dir: SegmentationClass, split_file: ImageSets/Segmentation/val.txt}\n"
        "files:\n  classnames: classes.txt\nprotocol:\n  short_side: 80\n  window: 48\n  stride: 24\n  logit_scale: 100\n"
    )
    runner = Runner(Catalog.load(extra_task_dirs=[tmp_path / "tasks"]), RunSettings(data_root=tmp_path, output=tmp_path / "res", num_workers=0))
    _, outcomes = runner.run("color-dense:x", ["colours"])
    scores = outcomes[0].metrics
    assert scores["mIoU"] > 0.85 and scores["aAcc"] > 0.95, scores
    assert scores["IoU/red"] > 0.8 and scores["IoU/blue"] > 0.8
    # re-scoring needs only the results: the class names travel inside the result file
    (tmp_path / "tasks" / "classes.txt").unlink()
    from vlbench.results.rescore import rescore
    from vlbench.results.schema import read

    result_file = outcomes[0].result_file
    assert rescore(result_file, read(result_file)) == pytest.approx(scores)
