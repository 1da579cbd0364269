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
from vlbench.kinds.base import Decisions, RunContext, TaskKind
from vlbench.kinds.registry import TASK_KINDS
from vlbench.schema import SchemaError, as_dict, option, schema
from vlbench.specs import TaskSpec
from vlbench.taskfile import ProtocolFields

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

    def check(self) -> None:
        if not self.representations:
            raise SchemaError("representations", f"expected a non-empty list of {REPRESENTATIONS}")
        if "{}" not in self.template:
            raise SchemaError("template", "the template needs a {} where the expression goes")


@schema
class GroundingFiles:
    detections: str | None = option(None, help="detected boxes used as proposals instead of the ground-truth boxes")


@TASK_KINDS.register("grounding")
class GroundingKind(TaskKind):
    """Referring expressions: score each box proposal's views against the expression; accuracy at IoU > 0.5."""

    name = "grounding"
    readers = GROUNDING_READERS
    metric_patterns = ("accuracy",)

    protocol_schema = GroundingProtocol
    files_schema = GroundingFiles

    @classmethod
    def protocol(cls, spec: TaskSpec) -> dict[str, Any]:
        return as_dict(cls.options(spec))

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

    def decide(self, model: Any, data: GroundingData, spec: TaskSpec) -> Decisions:
        protocol = self.protocol(spec)
        return Decisions(protocol={**protocol, "square_size": model.input_size if protocol["square"] else None,
                                   "proposals": "detections file" if spec.file("detections") else "ground-truth boxes"})

    def predict(self, model: Any, data: GroundingData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
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
