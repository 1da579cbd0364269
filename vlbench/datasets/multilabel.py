"""Readers of multilabel classification datasets (several classes per image) into ``MultilabelData``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vlbench.datasets import wds
from vlbench.datasets.images import ImageRef
from vlbench.errors import VLBenchError
from vlbench.registry import Registry


MULTILABEL_READERS: Registry = Registry("multilabel dataset format", entry_point_group="vlbench.readers", entry_point_prefix="multilabel_classification.")


@dataclass
class MultilabelData:
    images: list[ImageRef]
    targets: list[list[int]]  # per image, the indices of the classes present
    num_classes: int
    classnames: list[str] | None = None
    templates: list[str] | None = None
    own_prompts: bool = False  # see ClassificationData.own_prompts

    def limited(self, limit: int | None) -> "MultilabelData":
        return self if limit is None else replace(self, images=self.images[:limit], targets=self.targets[:limit])


@MULTILABEL_READERS.register("wds")
class WdsMultilabelReader(wds.WdsReader):
    """CLIP_benchmark's multilabel webdataset (``dataset_type.txt`` = multilabel): each sample's
    ``npy`` member is a 0/1 vector over the classes."""

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> MultilabelData:
        root = Path(location)
        samples = wds.read_samples(root, options.split, need=("npy",))
        vectors = [s.array().reshape(-1) for s in samples]
        sizes = {len(v) for v in vectors}
        if len(sizes) != 1:
            raise VLBenchError(f"{root}: the samples' .npy label vectors differ in length ({sorted(sizes)})")
        return MultilabelData(
            images=[s.image for s in samples],
            targets=[[int(c) for c in (v > 0).nonzero()[0]] for v in vectors],
            num_classes=sizes.pop(),
            classnames=wds.read_lines(root / "classnames.txt"),
            templates=wds.read_lines(root / "zeroshot_classification_templates.txt"),
            own_prompts=True,
        )
