"""Geometry of the shared embedding space over an image-caption set: diagnostics, not accuracy.

- ``modality_gap``: Liang et al. 2022 ("Mind the Gap"), the norm of the difference between the centre of
  the L2-normalised image embeddings and that of the text embeddings over the n (image, caption) pairs:
  ||(1/n) sum x_i - (1/n) sum y_i|| (every caption with its image is one pair).
- ``alignment``: Wang & Isola 2020, E ||x - y||^alpha over the positive pairs (alpha = 2).
- ``image_uniformity`` / ``text_uniformity``: Wang & Isola 2020, log E exp(-t ||u - v||^2) over the pairs
  of distinct images (of distinct captions), t = 2; lower is more uniform.

The records hold, per caption and per image, the terms these are sums of (dot products with the two
centres, the pair's distance, the item's sum of uniformity kernels), so ``vlbench rescore`` recomputes
every number without the model. None of the four is a mean of per-item outcomes with fixed centres, so
the kind gives no bootstrap intervals. Image-text retrieval over the same data is the ``retrieval`` kind.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch

from vlbench.bootstrap import Resampler
from vlbench.datasets.retrieval import RETRIEVAL_READERS, RetrievalData
from vlbench.errors import VLBenchError
from vlbench.kinds.base import RunContext, TaskKind
from vlbench.registries import TASK_KINDS
from vlbench.spec.fields import ProtocolFields
from vlbench.spec.schema import option, schema
from vlbench.spec.taskfile import TaskSpec

CHUNK = 2048


@schema
class GeometryProtocol(ProtocolFields):
    alpha: float = option(2.0, help="alignment's exponent of the pair distance (Wang & Isola: 2)", gt=0.0)
    t: float = option(2.0, help="uniformity's kernel scale exp(-t ||u - v||^2) (Wang & Isola: 2)", gt=0.0)


def uniformity_sums(x: torch.Tensor, t: float) -> torch.Tensor:
    """[n] float64: for each row, the sum over the other rows of exp(-t ||u - v||^2) (row blocks, so the n x n
    kernel is never held)."""
    x = x.double()
    squares = (x * x).sum(dim=1)
    out = torch.empty(len(x), dtype=torch.float64)
    for start in range(0, len(x), CHUNK):
        block = x[start : start + CHUNK]
        distances = (squares[start : start + CHUNK, None] + squares[None, :] - 2 * block @ x.T).clamp_min(0)
        kernel = torch.exp(-t * distances)
        rows = torch.arange(len(block))
        kernel[rows, rows + start] = 0.0  # a row is not paired with itself
        out[start : start + CHUNK] = kernel.sum(dim=1)
    return out


def geometry_terms(image_x: torch.Tensor, text_x: torch.Tensor, owners: Sequence[int], alpha: float, t: float) -> dict[str, torch.Tensor]:
    """The per-item terms the metrics are means of (float64): per caption its pair's image's dot products with
    the two pair centres, its own with the text centre, its pair distance^alpha, its uniformity sum; per image
    its uniformity sum."""
    image_x, text_x = image_x.double(), text_x.double()
    paired = image_x[torch.as_tensor(list(owners), dtype=torch.int64)]
    image_centre, text_centre = paired.mean(dim=0), text_x.mean(dim=0)
    return {
        "pair_image_to_image_centre": paired @ image_centre,
        "pair_image_to_text_centre": paired @ text_centre,
        "to_text_centre": text_x @ text_centre,
        "alignment": (paired - text_x).norm(dim=1).pow(alpha),
        "text_uniformity_sum": uniformity_sums(text_x, t),
        "image_uniformity_sum": uniformity_sums(image_x, t),
    }


def geometry_metrics(images: Sequence[dict[str, Any]], texts: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The four diagnostics from the records' terms."""

    def mean(rows: Sequence[dict[str, Any]], field: str) -> float:
        return math.fsum(r[field] for r in rows) / len(rows)

    def uniformity(rows: Sequence[dict[str, Any]]) -> float:
        n = len(rows)
        return math.log(math.fsum(r["uniformity_sum"] for r in rows) / (n * (n - 1))) if n > 1 else float("nan")

    squared_gap = mean(texts, "pair_image_to_image_centre") + mean(texts, "to_text_centre") - 2 * mean(texts, "pair_image_to_text_centre")
    return {"modality_gap": math.sqrt(max(squared_gap, 0.0)), "alignment": mean(texts, "alignment"),
            "image_uniformity": uniformity(images), "text_uniformity": uniformity(texts)}


class GeometryResampler(Resampler):
    """Images and captions; no metric of this kind is resampled (see the module's docstring)."""

    unit = "items"

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec | None):
        super().__init__(records, spec)
        self.keys = [(r["type"], r["i"]) for r in records]

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        return None


@TASK_KINDS.register("geometry")
class GeometryKind(TaskKind):
    """Modality gap, alignment and uniformity of the image and caption embeddings of a retrieval set (diagnostics)."""

    name = "geometry"
    resampler = GeometryResampler
    readers = RETRIEVAL_READERS
    protocol_schema = GeometryProtocol
    metric_patterns = ("modality_gap", "alignment", "image_uniformity", "text_uniformity")
    record_fields = {
        "type": (Literal["image", "text"], "an image or a caption"),
        "i": (int, "its position among the images or the captions"),
        "key": (str | None, "an image's key"),
        "image": (int | None, "a caption's image"),
        "uniformity_sum": (float, "the sum over the other items of its modality of exp(-t ||u - v||^2)"),
        "alignment": (float | None, "a caption: ||x - y||^alpha to its image"),
        "to_text_centre": (float | None, "a caption: its dot product with the captions' centre"),
        "pair_image_to_image_centre": (float | None, "a caption: its image's dot product with the pairs' image centre"),
        "pair_image_to_text_centre": (float | None, "a caption: its image's dot product with the captions' centre"),
    }

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        data = data.limited(ctx.limit)
        if len(data.images) < 2 or not any(data.captions):
            raise VLBenchError(f"task '{spec.name}': the geometry diagnostics need at least 2 images with captions")
        return data, located

    def predict(self, model: Any, data: RetrievalData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        protocol = self.options(spec)
        texts, owners = data.flat_captions()
        ctx.encoder.prefetch_images(data.images)
        text_x = ctx.encoder.texts(texts, f"{spec.name} captions")
        image_x = ctx.encoder.images(data.images, spec.name)
        terms = {name: values.tolist() for name, values in geometry_terms(image_x, text_x, owners, protocol.alpha, protocol.t).items()}
        for i, image in enumerate(data.images):
            yield {"type": "image", "i": i, "key": image.key, "uniformity_sum": terms["image_uniformity_sum"][i]}
        for j, owner in enumerate(owners):
            yield {"type": "text", "i": j, "image": owner, "uniformity_sum": terms["text_uniformity_sum"][j], "alignment": terms["alignment"][j],
                   "to_text_centre": terms["to_text_centre"][j], "pair_image_to_image_centre": terms["pair_image_to_image_centre"][j],
                   "pair_image_to_text_centre": terms["pair_image_to_text_centre"][j]}

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        rows = list(records)
        values = geometry_metrics([r for r in rows if r["type"] == "image"], [r for r in rows if r["type"] == "text"])
        return {name: values[name] for name in spec.metrics}

    def count(self, records: list[dict[str, Any]]) -> int:
        return sum(1 for r in records if r["type"] == "image")
