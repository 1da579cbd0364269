"""ImageNet-ReaL: predictions scored against the reassessed label sets, joined to the images by their file names,
images with an empty set left out (as big_vision), on files in the real layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import vlbench
from vlbench.errors import VLBenchError

SHIPPED = "openclip:vlbench-tiny@shapes"
WNIDS = {"n01440764": (220, 30, 30), "n01443537": (30, 200, 40), "n01484850": (40, 40, 220)}


def write_real(root):
    """val/<wnid>/ILSVRC2012_val_<n>.JPEG (the numbers not in folder order) and real.json (entry n - 1 for image n)."""
    numbers = {"n01440764": [3, 6], "n01443537": [1, 5], "n01484850": [2, 4]}
    for wnid, colour in WNIDS.items():
        (root / "imagenet1k" / "val" / wnid).mkdir(parents=True)
        for n in numbers[wnid]:
            Image.new("RGB", (40, 40), colour).save(root / "imagenet1k" / "val" / wnid / f"ILSVRC2012_val_{n:08d}.JPEG")
    real = [[1], [2, 0], [0], [], [1, 2], [0]]  # image 4 has no reassessed label: left out
    (root / "imagenet1k" / "real.json").write_text(json.dumps(real))
    (root / "names.txt").write_text("red circle\ngreen circle\nblue circle\n")
    (root / "templates.txt").write_text("a photo of a {c}.\n")
    return numbers, real


def test_real_accuracy_counts_a_prediction_in_the_images_label_set(tmp_path):
    numbers, real = write_real(tmp_path)
    settings = {"files.classnames": str(tmp_path / "names.txt"), "files.templates": str(tmp_path / "templates.txt")}
    result = vlbench.evaluate(SHIPPED, ["imagenet1k_real"], data_root=tmp_path, settings=settings, bootstrap_replicates=50,
                              no_cache=True)["imagenet1k_real"]
    order = [n for wnid in sorted(WNIDS) for n in numbers[wnid]]  # the class folders' order
    assert [s["real"] for s in result.samples] == [real[n - 1] for n in order]
    assert [s["label"] for s in result.samples] == [0, 0, 1, 1, 2, 2]
    counted = [s for s in result.samples if s["real"]]
    assert len(counted) == 5 and result.result.task.protocol_used["images_without_real_labels"] == 1
    assert result.metrics["real_acc1"] == pytest.approx(np.mean([s["top"][0] in s["real"] for s in counted]))
    assert result.metrics["acc1"] == pytest.approx(np.mean([s["top"][0] == s["label"] for s in result.samples]))  # over all 6
    low, high = result.result.ci["real_acc1"]
    assert low <= result.metrics["real_acc1"] <= high


def test_an_image_real_json_does_not_label_is_one_line(tmp_path):
    write_real(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "imagenet1k" / "val" / "n01440764" / "ILSVRC2012_val_00000009.JPEG")
    with pytest.raises(VLBenchError, match="ILSVRC2012_val_00000009.JPEG: not an ILSVRC2012_val_<n> image that real.json"):
        vlbench.evaluate(SHIPPED, ["imagenet1k_real"], data_root=tmp_path, no_cache=True)
