"""Named segmentation protocols (--protocol): each paper's own settings, as data, per task."""

import pytest

from vlbench.spec.catalog import Catalog
from vlbench.errors import VLBenchError
from vlbench.spec.named_protocols import check_used


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


def test_each_protocol_sets_its_papers_values_per_task(catalog):
    clear = catalog.load_task("voc21", protocol="clearclip")
    assert clear.named_protocol == "clearclip"
    expected = {"dense_variant": "clearclip", "short_side": 448, "window": 448, "stride": 224, "logit_scale": 50,
                "prob_threshold": 0.5, "area_threshold": None, "pamr_steps": 0, "named_protocol": "ClearCLIP"}
    assert {k: clear.protocol[k] for k in expected} == expected
    assert clear.read_lines("classnames")[0] == "background"  # ClearCLIP's single-word background
    naclip = catalog.load_task("coco_stuff171", protocol="naclip")
    assert (naclip.protocol["short_side"], naclip.protocol["pamr_steps"], naclip.protocol["dense_variant"]) == (448, 10, "naclip")
    assert catalog.load_task("coco_stuff171", protocol="naclip_v2").protocol["short_side"] == 336
    assert catalog.load_task("voc20", protocol="naclip_v2").protocol["window"] == 0
    mask = catalog.load_task("context59", protocol="maskclip")
    assert (mask.protocol["short_side"], mask.protocol["max_long_side"], mask.protocol["window"]) == (520, 520, 0)
    assert mask.protocol["pixel_mean"] == [123.675, 116.28, 103.53] and len(mask.read_lines("templates")) == 85
    assert mask.config_hash() != catalog.load_task("context59").config_hash()


def test_set_overrides_win_and_uncovered_tasks_keep_their_protocol(catalog):
    spec = catalog.load_task("voc21", {"protocol.prob_threshold": 0.3}, protocol="clearclip")
    assert spec.protocol["prob_threshold"] == 0.3 and spec.protocol["window"] == 448
    shapes = catalog.load_task("shapes_seg", protocol="clearclip")
    assert shapes.named_protocol is None and shapes.config == catalog.load_task("shapes_seg").config
    ade = catalog.load_task("ade20k", protocol="maskclip")  # MaskCLIP has no ViT-B/16 ADE20K config
    assert ade.named_protocol is None and ade.protocol["dense_variant"] == "sclip"


def test_a_protocol_that_covers_no_selected_task_is_refused(catalog):
    shapes = catalog.load_task("shapes_seg", protocol="naclip")
    with pytest.raises(VLBenchError, match="covers none of the selected tasks"):
        check_used("naclip", {"shapes_seg": shapes.named_protocol is not None}, {"shapes_seg": catalog.tasks["voc21"]})


def test_a_protocols_own_normalisation_reaches_the_model():
    import torch

    from vlbench.kinds.segmentation import query_logits

    class Recorder:
        pixel_mean_std = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

        def dense_features(self, crops, variant):
            self.seen = crops
            return torch.ones(len(crops), 1, 1, 2) / 2 ** 0.5

    image = torch.full((3, 4, 4), 255.0)
    protocol = {"window": 0, "stride": None, "pixel_mean": [127.5, 0.0, 255.0], "pixel_std": [127.5, 255.0, 51.0]}
    model = Recorder()
    query_logits(model, image, torch.eye(2), protocol, "plain", 4)
    assert model.seen[0, :, 0, 0].tolist() == pytest.approx([1.0, 1.0, 0.0])  # (1 - m/255) / (s/255)
    query_logits(model, image, torch.eye(2), {**protocol, "pixel_mean": None, "pixel_std": None}, "plain", 4)
    assert model.seen[0, :, 0, 0].tolist() == pytest.approx([1.0, 1.0, 1.0])  # the model's own
