"""Zero-shot referring expression comprehension by scoring box proposals (ReCLIP's baseline).

Each proposal is shown to the model as one or more views (``crop``: the box cut out; ``blur``: the
image blurred outside the box), each squashed to the model's square input; a proposal's score is
the sum over views of the cosine similarity with the expression in the prompt template. The
prediction is the best proposal (first maximum); it is correct when its IoU with the target box is
above ``iou_threshold`` (strictly, as ReCLIP counts).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from vlbench import metrics
from vlbench.datasets.grounding import (
    GROUNDING_READERS,
    GroundingData,
    ProposalView,
    load_detections,
)
from vlbench.errors import TaskSpecError
from vlbench.kinds import TASK_KINDS
from vlbench.kinds.base import RunContext, TaskKind, require_number
from vlbench.specs import TaskSpec

PROTOCOL_DEFAULTS: dict[str, Any] = {
    "representations": ["crop", "blur"],
    "blur_std": 100.0,
    "template": "a photo of {}",
    "lowercase": True,
    "square": True,
    "iou_threshold": 0.5,
    "text_field": "raw",
}
REPRESENTATIONS = ("crop", "blur")


@TASK_KINDS.register("grounding")
class GroundingKind(TaskKind):
    name = "grounding"
    protocol_keys = tuple(PROTOCOL_DEFAULTS)
    readers = GROUNDING_READERS
    metric_patterns = ("accuracy",)

    @classmethod
    def protocol(cls, spec: TaskSpec) -> dict[str, Any]:
        return {**PROTOCOL_DEFAULTS, **spec.protocol}

    @classmethod
    def validate(cls, spec: TaskSpec) -> None:
        super().validate(spec)
        protocol = cls.protocol(spec)
        views = protocol["representations"]
        if not isinstance(views, list) or not views or any(v not in REPRESENTATIONS for v in views):
            raise TaskSpecError(spec.source_file, "protocol.representations", f"expected a non-empty list of {REPRESENTATIONS}, got {views!r}")
        if "{}" not in str(protocol["template"]):
            raise TaskSpecError(spec.source_file, "protocol.template", "the template needs a {} where the expression goes")
        require_number(spec, "blur_std", protocol["blur_std"], 0)
        require_number(spec, "iou_threshold", protocol["iou_threshold"], 0, 1)
        for key in ("lowercase", "square"):
            if not isinstance(protocol[key], bool):
                raise TaskSpecError(spec.source_file, f"protocol.{key}", f"expected true or false, got {protocol[key]!r}")

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        data = data.limited(ctx.limit)
        detections_file = spec.file("detections")
        if detections_file is not None:
            detections = load_detections(detections_file)
            for sample in data.samples:
                if sample.image_id in detections:
                    sample.proposals = detections[sample.image_id]
                else:  # as ReCLIP: an image without detections is scored as one whole-image box
                    width, height = sample.image.load().size
                    sample.proposals = [(0.0, 0.0, float(width), float(height))]
        return data, located

    def predict(self, model: Any, data: GroundingData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        protocol = self.protocol(spec)
        square = model.input_size if protocol["square"] else None
        ctx.info.update({"square_size": square, "representations": protocol["representations"],
                         "proposals": "detections file" if spec.file("detections") else "ground-truth boxes"})
        views = {
            (i, p, mode): ProposalView(sample.image, tuple(box), mode, float(protocol["blur_std"]), square)  # type: ignore[arg-type]
            for i, sample in enumerate(data.samples)
            for p, box in enumerate(sample.proposals)
            for mode in protocol["representations"]
        }
        unique = list({v.key: v for v in views.values()}.values())
        position = {v.key: n for n, v in enumerate(unique)}
        image_emb = ctx.encoder.images(unique, f"{spec.name} proposals")
        prompts = [protocol["template"].format(s.expression.lower() if protocol["lowercase"] else s.expression) for s in data.samples]
        text_emb = ctx.encoder.texts(prompts, f"{spec.name} expressions")
        for i, sample in enumerate(data.samples):
            scores = []
            for p in range(len(sample.proposals)):
                rows = [position[views[(i, p, mode)].key] for mode in protocol["representations"]]
                scores.append(float((image_emb[rows] @ text_emb[i]).sum()))
            yield {"i": i, "id": sample.id, "expression": sample.expression, "target": list(sample.target),
                   "proposals": [list(b) for b in sample.proposals], "scores": scores}

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        threshold = float(self.protocol(spec)["iou_threshold"])
        hits = []
        for record in records:
            if not record["scores"]:  # no proposal at all: nothing can be right
                hits.append(False)
                continue
            best = int(np.argmax(record["scores"]))
            hits.append(metrics.box_iou(record["proposals"][best], record["target"]) > threshold)
        return {"accuracy": float(np.mean(hits)) if hits else float("nan")}
