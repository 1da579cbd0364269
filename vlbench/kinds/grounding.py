"""Zero-shot referring expression comprehension by scoring box proposals (ReCLIP's baseline).

Each proposal is shown to the model as one or more views (``crop``: the box cut out; ``blur``: the
image blurred outside the box), each squashed to the model's square input; a proposal's score is
the sum over views of the cosine similarity with the expression in the prompt template. The
prediction is the best proposal (first maximum); it is correct when its IoU with the target box is
above ``iou_threshold`` (strictly, as ReCLIP counts).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from vlbench import metrics
from vlbench.datasets.grounding import (
    GROUNDING_READERS,
    GroundingData,
    ProposalView,
    load_detections,
)
from vlbench.bootstrap import Resampler, weighted_mean
from vlbench.errors import VLBenchError
from vlbench.kinds.base import Decisions, RunContext, TaskKind, tie_report
from vlbench.registries import TASK_KINDS
from vlbench.spec.schema import SchemaError, as_dict, option, schema
from vlbench.spec.taskfile import TaskSpec
from vlbench.spec.fields import ProtocolFields

REPRESENTATIONS = ("crop", "blur")


@schema
class GroundingProtocol(ProtocolFields):
    representations: list[str] = option(["crop", "blur"], help="views of each proposal; their scores are summed", choices=REPRESENTATIONS)
    blur_std: float = option(100.0, help="Gaussian std of the blur view (pixels)", low=0)
    template: str = option("a photo of {}", help="prompt; {} is replaced by the expression")
    lowercase: bool = option(True, help="lowercase the expression first")
    square: bool = option(True, help="squash each view to the model's square input")
    iou_threshold: float = option(0.5, help="a prediction is correct when IoU with the target is above this", low=0, high=1)
    text_field: str = option("raw", help="field of a refer sentence used as the expression (raw, sent, ...)")
    ensemble: list[str] = option([], help="model specs scored beside the run's model (ReCLIP: RN50x16 + ViT-B/32); "
                                         "each model's view cosines are scaled by its logit scale and summed")
    box_area_threshold: float = option(0.0, help="proposals whose area / image area is not above this are excluded "
                                                 "(unless none is left), as ReCLIP's --box_area_threshold", low=0, high=1)

    def check(self) -> None:
        if not self.representations:
            raise SchemaError("representations", f"expected a non-empty list of {REPRESENTATIONS}")
        if "{}" not in self.template:
            raise SchemaError("template", "the template needs a {} where the expression goes")


@schema
class GroundingFiles:
    detections: str | None = option(None, help="detected boxes used as proposals instead of the ground-truth boxes")


def hit(record: dict[str, Any], iou_threshold: float, area_threshold: float) -> bool:
    """Whether the prediction is right: the first best-scoring proposal among the candidates (those above the
    area threshold) overlaps the target above the IoU threshold; no proposal at all is never right."""
    if not record["scores"]:
        return False
    kept = candidates(record, area_threshold)
    best = max(kept, key=lambda p: (record["scores"][p], -p))  # the first maximum among the candidates
    return metrics.box_iou(record["proposals"][best], record["target"]) > iou_threshold


class GroundingResampler(Resampler):
    """Items; accuracy is the weighted mean of ``hit``."""

    unit = "items"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec):
        super().__init__(records, spec)
        protocol = GroundingKind.options(spec)
        self.keys = [r.get("id", r.get("i")) for r in records]
        self.hits = np.asarray([hit(r, protocol.iou_threshold, protocol.box_area_threshold) for r in records], dtype=np.float64)

    def outcomes(self, name: str) -> np.ndarray | None:
        return self.hits if name == "accuracy" else None

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        return weighted_mean(weights[0], self.hits) if name == "accuracy" else None


@TASK_KINDS.register("grounding")
class GroundingKind(TaskKind):
    """Referring expressions: score each box proposal's views against the expression; accuracy at IoU > 0.5."""

    name = "grounding"
    resampler = GroundingResampler
    readers = GROUNDING_READERS
    metric_patterns = ("accuracy",)

    protocol_schema = GroundingProtocol
    files_schema = GroundingFiles
    record_fields = {
        "i": (int, "the expression's position"),
        "id": (str | None, "its id"),
        "expression": (str | None, "the referring expression"),
        "target": (list[float], "the referred box (x0, y0, x1, y1)"),
        "proposals": (list[list[float]], "the candidate boxes"),
        "scores": (list[float], "each proposal's score"),
        "image_size": (list[int] | None, "the image's width and height"),
    }

    @classmethod
    def protocol(cls, spec: TaskSpec) -> dict[str, Any]:
        return as_dict(cls.options(spec))

    @classmethod
    def extra_models(cls, spec: TaskSpec) -> list[str]:
        return list(cls.options(spec).ensemble)

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        data = data.limited(ctx.limit)
        detections_file = spec.file("detections")
        if detections_file is not None:
            detections = load_detections(detections_file)
            for sample in data.samples:
                if detections.get(sample.image_id):
                    sample.proposals = detections[sample.image_id]
                else:  # as ReCLIP main.py: an image with no (or an empty list of) detections is one whole-image box
                    width, height = sample.image.load().size
                    sample.proposals = [(0.0, 0.0, float(width), float(height))]
        return data, located

    @staticmethod
    def members(model: Any, spec: TaskSpec, ctx: RunContext) -> list[tuple[str, Any, Any, float]]:
        """(model id, model, encoder, weight) of every scoring model: the run's alone (weight 1), or with
        the ensemble's, each weighted by its logit scale as ReCLIP's ClipExecutor sums logits."""
        if not ctx.models:
            return [(model.spec.id, model, ctx.encoder, 1.0)]
        everyone = [(model.spec.id, model, ctx.encoder)] + [(text, m, e) for text, (m, e) in ctx.models.items()]
        return [(name, m, e, m.logit_scale) for name, m, e in everyone]

    def decide(self, model: Any, data: GroundingData, spec: TaskSpec) -> Decisions:
        protocol = self.protocol(spec)
        return Decisions(protocol={**protocol, "square_size": model.input_size if protocol["square"] else None,
                                   "proposals": "detections file" if spec.file("detections") else "ground-truth boxes"})

    def model_scores(self, model: Any, encoder: Any, data: GroundingData, spec: TaskSpec) -> list[list[float]]:
        """Per sample, per proposal: the sum over views of cos(view, prompt) under one model."""
        protocol = self.protocol(spec)
        square = model.input_size if protocol["square"] else None
        views = {
            (i, p, mode): ProposalView(sample.image, tuple(box), mode, float(protocol["blur_std"]), square)  # type: ignore[arg-type]
            for i, sample in enumerate(data.samples)
            for p, box in enumerate(sample.proposals)
            for mode in protocol["representations"]
        }
        unique = list({v.key: v for v in views.values()}.values())
        position = {v.key: n for n, v in enumerate(unique)}
        image_emb = encoder.images(unique, f"{spec.name} proposals")
        prompts = [protocol["template"].format(s.expression.lower() if protocol["lowercase"] else s.expression) for s in data.samples]
        text_emb = encoder.texts(prompts, f"{spec.name} expressions")
        modes = protocol["representations"]
        scores = []
        for i, sample in enumerate(data.samples):
            rows = image_emb[[position[views[(i, p, mode)].key] for p in range(len(sample.proposals)) for mode in modes]]
            cosines = metrics.similarities(rows, text_emb[[i]])[:, 0].view(len(sample.proposals), len(modes))
            scores.append([float(views_of_proposal.sum()) for views_of_proposal in cosines])
        return scores

    def predict(self, model: Any, data: GroundingData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        members = self.members(model, spec, ctx)
        per_model = {name: self.model_scores(m, encoder, data, spec) for name, m, encoder, _ in members}
        weights = {name: weight for name, _, _, weight in members}
        sizes: dict[str, list[int]] = {}
        for i, sample in enumerate(data.samples):
            scores = [sum(weights[name] * per_model[name][i][p] for name in per_model) for p in range(len(sample.proposals))]
            if sample.image.key not in sizes:
                sizes[sample.image.key] = list(sample.image.load().size)
            record = {"i": i, "id": sample.id, "expression": sample.expression, "target": list(sample.target),
                      "proposals": [list(b) for b in sample.proposals], "scores": scores, "image_size": sizes[sample.image.key]}
            if len(members) > 1:
                record["model_scores"] = {name: per_model[name][i] for name in per_model}
                record["weights"] = weights
            yield record

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        records = list(records)
        return self.point_estimates(records, spec, ["accuracy"]) if records else {"accuracy": float("nan")}

    def ties(self, records: list[dict[str, Any]], spec: TaskSpec) -> dict[str, Any]:
        """Items whose best score is shared by candidates of which some hit the target and some do not;
        the first of them counts, as ReCLIP's np.argmax takes it."""
        protocol = self.protocol(spec)
        threshold, area_threshold = float(protocol["iou_threshold"]), float(protocol["box_area_threshold"])
        decided = 0
        for record in records:
            if not record["scores"]:
                continue
            kept = candidates(record, area_threshold)
            best = max(record["scores"][p] for p in kept)
            outcomes = {metrics.box_iou(record["proposals"][p], record["target"]) > threshold for p in kept if record["scores"][p] == best}
            decided += len(outcomes) > 1
        return tie_report(decided, "the first of the proposals sharing the best score is the prediction (ReCLIP's np.argmax)", {})


def candidates(record: dict[str, Any], area_threshold: float) -> list[int]:
    """Proposals whose area / image area is above the threshold (zero-area boxes never are); all of
    them when none is (ReCLIP interpreter.py Environment.filter / filter_area)."""
    size = record.get("image_size")
    if size is None and area_threshold > 0:
        raise VLBenchError("these records have no image sizes (written by an older vlbench); rerun the task to use box_area_threshold")
    image_area = float(size[0] * size[1]) if size else 1.0
    areas = [max(0.0, x1 - x0) * max(0.0, y1 - y0) for x0, y0, x1, y1 in record["proposals"]]
    kept = [p for p, area in enumerate(areas) if area / image_area > area_threshold]
    return kept or list(range(len(areas)))
