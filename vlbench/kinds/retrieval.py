"""Zero-shot image-text retrieval: recall@k both ways with several captions per image."""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

import torch

from vlbench import metrics
from vlbench.datasets.retrieval import RETRIEVAL_READERS, RetrievalData
from vlbench.errors import VLBenchError
from vlbench.kinds.registry import TASK_KINDS
from vlbench.kinds.base import RunContext, TaskKind
from vlbench.specs import TaskSpec

CHUNK = 1024


def ranks(queries: torch.Tensor, candidates: torch.Tensor, positive: torch.Tensor) -> list[int]:
    """Rank of the best positive candidate for every query (see ``metrics.rank_of_positive``)."""
    out: list[int] = []
    for start in range(0, len(queries), CHUNK):
        scores = metrics.similarities(queries[start : start + CHUNK], candidates)
        out += metrics.rank_of_positive(scores, positive[start : start + CHUNK]).tolist()
    return out


@TASK_KINDS.register("retrieval")
class RetrievalKind(TaskKind):
    """Image-text retrieval, recall@k both ways (CLIP_benchmark names: image_retrieval = text->image)."""

    name = "retrieval"
    readers = RETRIEVAL_READERS
    metric_patterns = (r"image_retrieval_recall@\d+", r"text_retrieval_recall@\d+", r"mean_recall@\d+")

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        data = data.limited(ctx.limit)
        empty = [ref.key for ref, captions in zip(data.images, data.captions) if not captions]
        if empty:
            raise VLBenchError(f"task '{spec.name}': {len(empty)} image(s) have no caption, e.g. {empty[0]}; every image needs at least one")
        return data, located

    def predict(self, model: Any, data: RetrievalData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        texts, owners = data.flat_captions()
        ctx.encoder.prefetch_images(data.images)  # images decode while the captions encode
        text_embeddings = ctx.encoder.texts(texts, f"{spec.name} captions")
        image_embeddings = ctx.encoder.images(data.images, spec.name)
        owner = torch.tensor(owners)
        text_positive = owner.unsqueeze(1) == torch.arange(len(data.images)).unsqueeze(0)  # [T, I]
        text_ranks = ranks(text_embeddings, image_embeddings, text_positive)
        image_ranks = ranks(image_embeddings, text_embeddings, text_positive.T.contiguous())
        for i, rank in enumerate(image_ranks):
            yield {"type": "image", "i": i, "key": data.images[i].key, "rank": rank}
        for t, rank in enumerate(text_ranks):
            yield {"type": "text", "i": t, "image": owners[t], "rank": rank}

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        records = list(records)
        by_type = {
            "image_retrieval": [r["rank"] for r in records if r["type"] == "text"],  # text query -> image
            "text_retrieval": [r["rank"] for r in records if r["type"] == "image"],  # image query -> text
        }
        results: dict[str, float] = {}
        for metric in spec.metrics:
            direction, k = re.fullmatch(r"(.+)_recall@(\d+)", metric).groups()  # type: ignore[union-attr]
            if direction == "mean":
                results[metric] = (metrics.recall_at_k(by_type["image_retrieval"], int(k)) + metrics.recall_at_k(by_type["text_retrieval"], int(k))) / 2
            else:
                results[metric] = metrics.recall_at_k(by_type[direction], int(k))
        return results

    def count(self, records: list[dict[str, Any]]) -> int:
        return sum(1 for r in records if r["type"] == "image")
