"""What the kinds that fit something on a training split share (linear probe, few-shot, k-NN).

Their task files list the evaluated split under ``dataset.sources`` (often by including a classification
task's file) and the training split under ``dataset.train_sources``, both read by the classification
readers. Both are located before any model loads, both are part of the result's identity (``inputs``), and
the result's ``task.dataset`` records where each was found. Features are the encoder's L2-normalised image
embeddings, so they come from the embedding cache when a model has seen the images before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vlbench.datasets.classification import CLASSIFICATION_READERS, ClassificationData
from vlbench.encoding.encoder import Encoder
from vlbench.kinds.base import Located, RunContext, TaskKind
from vlbench.kinds.classification import ClassificationFiles
from vlbench.spec.taskfile import TaskSpec


@dataclass
class ProbeData:
    train: ClassificationData
    test: ClassificationData


@dataclass
class SplitsLocated(Located):
    """The evaluated split's source (the fields of ``Located``) and the training split's."""

    train: Located | None = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "train": self.train.describe() if self.train else None}


class TrainSplitKind(TaskKind):
    fits_on_train = True  # the task checker requires dataset.train_sources
    readers = CLASSIFICATION_READERS
    files_schema = ClassificationFiles
    record_fields = {
        "i": (int, "the test image's position in the dataset"),
        "key": (str | None, "the image's key"),
        "label": (int, "its class"),
    }

    def locate(self, spec: TaskSpec, data_root: Path, allow_hub: bool = False, sources: str = "sources") -> Located:
        test = super().locate(spec, data_root, allow_hub)
        train = super().locate(spec, data_root, allow_hub, "train_sources")
        return SplitsLocated(test.source, test.options, test.location, test.mirror, train=train)

    def inputs(self, spec: TaskSpec, located: Located) -> dict[str, Any]:
        import hashlib

        test = super().inputs(spec, located)
        train = super().inputs(spec, located.train) if isinstance(located, SplitsLocated) and located.train else {"digest": "", "files": {}}
        digest = hashlib.sha256(f"{test['digest']}|{train['digest']}".encode()).hexdigest()[:16]
        return {"digest": digest, "files": {**test["files"], **{f"train:{name}": value for name, value in train["files"].items()}}}

    def load(self, spec: TaskSpec, ctx: RunContext) -> tuple[Any, Located]:
        located = self.locate(spec, ctx.data_root, ctx.allow_hub)
        assert isinstance(located, SplitsLocated) and located.train is not None
        test, train = self.read_located(spec, located, ctx), self.read_located(spec, located.train, ctx)
        return ProbeData(train.limited(ctx.limit), test.limited(ctx.limit)), located


def features(encoder: Encoder, data: ClassificationData, description: str) -> tuple[torch.Tensor, torch.Tensor]:
    """([n, d] float32 L2-normalised image embeddings, [n] int64 labels) of one split."""
    return encoder.images(data.images, description).float(), torch.tensor(data.labels, dtype=torch.int64)
