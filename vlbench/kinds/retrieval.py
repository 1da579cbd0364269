"""Zero-shot image-text retrieval: recall@k both ways with several captions per image."""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch

from vlbench import metrics
from vlbench.datasets.retrieval import RETRIEVAL_READERS, RetrievalData
from vlbench.bootstrap import Resampler, weighted_mean
from vlbench.errors import VLBenchError
from vlbench.registries import TASK_KINDS
from vlbench.kinds.base import Decisions, RunContext, TaskKind, autocast_used, mean_bounds, tie_report
from vlbench.spec.schema import option, schema
from vlbench.spec.fields import ProtocolFields
from vlbench.spec.taskfile import TaskSpec

CHUNK = 1024


def ranks(queries: torch.Tensor, candidates: torch.Tensor, positive: torch.Tensor) -> list[int]:
    """Rank of the best positive candidate for every query (see ``metrics.rank_of_positive``)."""
    return [rank for rank, _ in ranks_and_ties(queries, candidates, positive)]


def ranks_and_ties(queries: torch.Tensor, candidates: torch.Tensor, positive: torch.Tensor) -> list[tuple[int, list[int] | None]]:
    """Per query, the rank of its best positive and, when a negative shares that positive's score, the tie
    ``[candidates above, candidates at its score, positives among them]`` (``metrics.best_positive_ties``)."""
    out: list[tuple[int, list[int] | None]] = []
    for start in range(0, len(queries), CHUNK):
        scores = metrics.similarities(queries[start : start + CHUNK], candidates)
        chunk_positive = positive[start : start + CHUNK]
        above, tied, tied_positives = (t.tolist() for t in metrics.best_positive_ties(scores, chunk_positive))
        for rank, a, t, p in zip(metrics.rank_of_positive(scores, chunk_positive).tolist(), above, tied, tied_positives):
            out.append((rank, [a, t, p] if t > p else None))
    return out


@schema
class RetrievalProtocol(ProtocolFields):
    autocast: Literal["none", "cuda_fp16"] = option("none", help="encode images and captions under fp16 autocast when the model runs on CUDA, "
                                                    "nothing on the CPU (DataComp: CLIP_benchmark 1.4.0's zeroshot_retrieval with amp on)")


TRUNCATION_RULE = ("a caption longer than the model's text context is truncated by the model's own tokenizer (its first tokens "
                   "kept, the end token last), as Long-CLIP and the papers evaluate 77-token models")
TIE_RULE = ("equal scores rank in candidate order (lower index first); CLIP_benchmark's torch.topk leaves that order to "
            "the data: low/high rank the best positive after/before every negative it ties with")


class RetrievalResampler(Resampler):
    """Population 0: text queries (image_retrieval); population 1: image queries (text_retrieval)."""

    unit = "queries"
    DIRECTIONS = {"image_retrieval": 0, "text_retrieval": 1}

    def __init__(self, records: Sequence[dict[str, Any]], spec: TaskSpec):
        super().__init__(records, spec)
        self.text = [r for r in records if r["type"] == "text"]
        self.image = [r for r in records if r["type"] == "image"]
        self.ranks = [np.asarray([r["rank"] for r in self.text]), np.asarray([r["rank"] for r in self.image])]

    @property
    def sizes(self) -> list[int]:
        return [len(self.text), len(self.image)]

    def ids(self) -> list[Any]:
        return [("text", r["i"], r.get("image")) for r in self.text] + [("image", r.get("key", r["i"])) for r in self.image]

    def outcomes(self, name: str) -> np.ndarray | None:
        match = re.fullmatch(r"(image_retrieval|text_retrieval)_recall@(\d+)", name)
        if not match:
            return None
        return (self.ranks[self.DIRECTIONS[match.group(1)]] < int(match.group(2))).astype(np.float64)

    def metric(self, name: str, weights: list[np.ndarray]) -> np.ndarray | None:
        match = re.fullmatch(r"(image_retrieval|text_retrieval|mean)_recall@(\d+)", name)
        if not match:
            return None
        k = int(match.group(2))
        directions = list(self.DIRECTIONS) if match.group(1) == "mean" else [match.group(1)]
        values = [weighted_mean(weights[self.DIRECTIONS[d]], (self.ranks[self.DIRECTIONS[d]] < k).astype(np.float64)) for d in directions]
        return sum(values) / len(values)


@TASK_KINDS.register("retrieval")
class RetrievalKind(TaskKind):
    """Image-text retrieval, recall@k both ways (CLIP_benchmark names: image_retrieval = text->image)."""

    name = "retrieval"
    resampler = RetrievalResampler
    readers = RETRIEVAL_READERS
    protocol_schema = RetrievalProtocol
    metric_patterns = (r"image_retrieval_recall@\d+", r"text_retrieval_recall@\d+", r"mean_recall@\d+")
    record_fields = {
        "type": (Literal["image", "text"], "the query: an image (text retrieval) or a caption (image retrieval)"),
        "i": (int, "the query's position among the images or the captions"),
        "rank": (int, "0-based rank of its best positive (equal scores: lower index first)"),
        "image": (int | None, "a caption's image"),
        "key": (str | None, "an image's key"),
        "tie": (list[int] | None, "when a negative shares the best positive's score: [above, at its score, positives there]"),
        "truncated": (bool | None, "a caption longer than the model's text context, truncated by its tokenizer"),
    }

    def decide(self, model: Any, data: RetrievalData, spec: TaskSpec) -> Decisions:
        decisions = super().decide(model, data, spec)
        decisions.protocol["autocast_used"] = autocast_used(model, self.options(spec).autocast)
        self.decisions = decisions  # predict adds how many captions were truncated
        return decisions

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Any]:
        data, located = super().load(spec, ctx)
        data = data.limited(ctx.limit)
        empty = [ref.key for ref, captions in zip(data.images, data.captions) if not captions]
        if empty:
            raise VLBenchError(f"task '{spec.name}': {len(empty)} image(s) have no caption, e.g. {empty[0]}; every image needs at least one")
        return data, located

    def predict(self, model: Any, data: RetrievalData, spec: TaskSpec, ctx: RunContext) -> Iterator[dict[str, Any]]:
        texts, owners = data.flat_captions()
        autocast = self.options(spec).autocast
        ctx.encoder.prefetch_images(data.images, autocast)  # images decode while the captions encode
        text_embeddings = ctx.encoder.texts(texts, f"{spec.name} captions", autocast)
        image_embeddings = ctx.encoder.images(data.images, spec.name, autocast)
        owner = torch.tensor(owners)
        text_positive = owner.unsqueeze(1) == torch.arange(len(data.images)).unsqueeze(0)  # [T, I]
        text_ranks = ranks_and_ties(text_embeddings, image_embeddings, text_positive)
        image_ranks = ranks_and_ties(image_embeddings, text_embeddings, text_positive.T.contiguous())
        for i, (rank, tie) in enumerate(image_ranks):
            yield {"type": "image", "i": i, "key": data.images[i].key, "rank": rank, **({"tie": tie} if tie else {})}
        truncated = self.truncation(model, texts)
        for t, (rank, tie) in enumerate(text_ranks):
            yield {"type": "text", "i": t, "image": owners[t], "rank": rank, **({"tie": tie} if tie else {}),
                   **({"truncated": True} if truncated[t] else {})}

    def truncation(self, model: Any, texts: list[str]) -> list[bool]:
        """Which captions the model's tokenizer truncates; the count and share go into protocol_used.text_length and,
        when any, a line after the summary."""
        from vlbench.models.text_length import token_counts

        counted = token_counts(model, texts)
        decisions = getattr(self, "decisions", None)
        if counted is None:
            if decisions is not None:
                decisions.protocol["text_length"] = {"rule": TRUNCATION_RULE, "context_length": None, "captions_truncated": None}
            return [False] * len(texts)
        lengths, context = counted
        truncated = [n > context for n in lengths]
        if decisions is not None:
            n = sum(truncated)
            decisions.protocol["text_length"] = {"rule": TRUNCATION_RULE, "context_length": context, "captions": len(texts),
                                                 "captions_truncated": n, "share_truncated": round(n / len(texts), 6) if texts else 0.0,
                                                 "longest_caption_tokens": max(lengths, default=0)}
            if n:
                decisions.notes.append(f"{n} of {len(texts)} captions ({100 * n / len(texts):.1f}%) are longer than the model's "
                                       f"{context}-token text context and were truncated by its tokenizer")
        return truncated

    def score(self, records: Iterable[dict[str, Any]], spec: TaskSpec) -> dict[str, float]:
        """recall@k of each direction (image_retrieval: caption queries), and their mean, from the resampler."""
        return self.point_estimates(list(records), spec, spec.metrics)

    def ties(self, records: list[dict[str, Any]], spec: TaskSpec) -> dict[str, Any]:
        directions = {"image_retrieval": [r for r in records if r["type"] == "text"], "text_retrieval": [r for r in records if r["type"] == "image"]}
        ks = sorted({int(re.fullmatch(r".+_recall@(\d+)", m).group(1)) for m in spec.metrics})  # type: ignore[union-attr]

        def bounds(record: dict[str, Any], k: int) -> tuple[float, float, float]:
            if "tie" not in record:
                hit = float(record["rank"] < k)
                return hit, hit, hit
            return metrics.hit_bounds(*record["tie"], k)

        per_direction = {d: {k: mean_bounds(bounds(r, k) for r in rows) for k in ks} for d, rows in directions.items()}
        decided = sum(any(bounds(r, k)[0] != bounds(r, k)[1] for k in ks) for r in records if "tie" in r)
        values: dict[str, tuple[float | None, float | None, float | None]] = {}
        for metric in spec.metrics:
            direction, k = re.fullmatch(r"(.+)_recall@(\d+)", metric).groups()  # type: ignore[union-attr]
            parts = [per_direction[d][int(k)] for d in (per_direction if direction == "mean" else [direction])]
            values[metric] = tuple(sum(p[i] for p in parts) / len(parts) for i in range(3))  # type: ignore[assignment]
        return tie_report(decided, TIE_RULE, values)

    def count(self, records: list[dict[str, Any]]) -> int:
        return sum(1 for r in records if r["type"] == "image")
