"""ReCLIP's grounding protocol: model ensembles, zero-area boxes, empty detection lists."""

import json
import math

import pytest

from conftest import REPO, TINY
from vlbench.spec.catalog import Catalog
from vlbench.datasets.grounding import ProposalView
from vlbench.encoding.encoder import Encoder
from vlbench.kinds.base import RunContext
from vlbench.kinds.grounding import GroundingKind
from vlbench.models.openclip import OpenClipAdapter

SECOND = "openclip:vlbench-tiny@random?seed=1"


def hand_score(model, sample, box, protocol):
    """sum over views of cos(view, "a photo of " + expression.lower()), computed one view at a time."""
    text = model.encode_texts([protocol["template"].format(sample.expression.lower())])[0]
    total = 0.0
    for mode in protocol["representations"]:
        view = ProposalView(sample.image, tuple(box), mode, float(protocol["blur_std"]), model.input_size)
        total += float(model.encode_images(model.image_transform(view.load())[None])[0] @ text)
    return total


def test_ensemble_scores_are_the_logit_scale_weighted_sum_over_models(tiny_model):
    catalog = Catalog.load()
    spec = catalog.load_task("shapes_ground", {"protocol.ensemble": [SECOND]})
    second = OpenClipAdapter(catalog.resolve_model(SECOND), device="cpu")
    second.model.logit_scale.data.fill_(math.log(50.0))  # unlike the first model's, so the weights matter
    kind = GroundingKind()
    ctx = RunContext(REPO, Encoder(tiny_model, batch_size=32), limit=1, models={SECOND: (second, Encoder(second, batch_size=32))})
    data, _ = kind.load(spec, ctx)
    records = list(kind.predict(tiny_model, data, spec, ctx))
    protocol = kind.protocol(spec)
    first_scale = float(tiny_model.model.logit_scale.detach().exp())
    assert records[0]["weights"] == pytest.approx({TINY: first_scale, SECOND: 50.0})
    for record, sample in zip(records, data.samples):
        for p, box in enumerate(sample.proposals):
            expected = first_scale * hand_score(tiny_model, sample, box, protocol) + 50.0 * hand_score(second, sample, box, protocol)
            assert record["scores"][p] == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_the_runner_loads_the_ensemble_and_records_it(tmp_path):
    from vlbench.run.runner import Runner
    from vlbench.run.settings import RunSettings

    options = RunSettings(REPO, tmp_path, device="cpu", limit=1, num_workers=0, overrides={"protocol.ensemble": [SECOND]})
    _, outcomes = Runner(Catalog.load(), options).run(TINY, ["shapes_ground"])
    result = json.loads(outcomes[0].result_file.read_text())
    assert set(result["task"]["protocol_used"]["models"]) == {TINY, SECOND}
    assert result["task"]["protocol_used"]["ensemble"] == [SECOND]


def record(scores, proposals, size=(10, 10)):
    return {"scores": scores, "proposals": proposals, "target": [0, 0, 5, 5], "image_size": list(size)}


def test_zero_area_boxes_are_excluded_unless_nothing_else_is_left():
    spec = Catalog.load().load_task("shapes_ground")
    kind = GroundingKind()
    # the zero-area box scores best but is no candidate: the target box (IoU 1) is chosen
    assert kind.score([record([0.2, 0.9], [[0, 0, 5, 5], [1, 1, 1, 8]])], spec)["accuracy"] == 1.0
    # only zero-area boxes: all stay candidates (ReCLIP falls back to every box)
    assert kind.score([record([0.2, 0.9], [[0, 0, 0, 5], [1, 1, 1, 8]])], spec)["accuracy"] == 0.0
    # box_area_threshold: a 25-pixel box is 25% of a 10x10 image
    bigger = Catalog.load().load_task("shapes_ground", {"protocol.box_area_threshold": 0.3})
    assert kind.score([record([0.9, 0.2], [[0, 0, 5, 5], [0, 0, 10, 10]])], bigger)["accuracy"] == 0.0


def test_an_empty_detections_list_is_one_whole_image_box(tmp_path):
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps({"0": [], "1": [[2, 2, 10, 10]]}))
    spec = Catalog.load().load_task("shapes_ground", {"files.detections": str(detections)})
    data, _ = GroundingKind().load(spec, RunContext(REPO, None, limit=8))  # type: ignore[arg-type]
    by_image = {s.image_id: s.proposals for s in data.samples}
    assert by_image["0"] == [(0.0, 0.0, 128.0, 128.0)]
    assert by_image["1"] == [(2.0, 2.0, 12.0, 12.0)]
