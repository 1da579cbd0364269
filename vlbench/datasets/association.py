"""Readers of visual association datasets (WinoGAViL): a cue word and candidate images, some of
which are associated with the cue."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from vlbench.datasets import hf
from vlbench.datasets.images import ImageRef, _decode
from vlbench.errors import VLBenchError
from vlbench.registry import Registry
from vlbench.spec.fields import TestSplitSource

ASSOCIATION_READERS: Registry = Registry("association dataset format", entry_point_group="vlbench.readers", entry_point_prefix="association.")


@dataclass
class AssociationInstance:
    id: str
    cue: str
    images: list[ImageRef]
    positives: list[int]  # indices of the candidates associated with the cue


@dataclass
class AssociationData:
    instances: list[AssociationInstance]

    def limited(self, limit: int | None) -> "AssociationData":
        return self if limit is None else AssociationData(self.instances[:limit])


@dataclass(frozen=True)
class HFListImage:
    """Image ``position`` of a list-of-images cell, decoded when asked for."""

    dataset: Any
    column: str
    index: int
    position: int
    key: str

    def load(self) -> Image.Image:
        cell = self.dataset[self.index][self.column][self.position]
        if isinstance(cell, Image.Image):
            return cell.convert("RGB")
        if isinstance(cell, dict) and (cell.get("bytes") or cell.get("path")):
            return _decode(cell.get("bytes") or cell["path"], self.key)
        raise VLBenchError(f"{self.key} holds no image")


@ASSOCIATION_READERS.register("winogavil_hf")
class WinoGavilReader:
    """nlphuji/winogavil as DataComp reads it: columns ``candidate_images`` (list of images),
    ``candidates`` (their names), ``associations`` (the names associated with ``cue``)."""

    options = TestSplitSource

    def exists(self, location: Path, options: Any) -> bool:
        return hf.exists(location)

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> AssociationData:
        import datasets

        split = options.split
        dataset = hf.open_dataset(location, split)
        hf.require_columns(dataset, location, "candidate_images", "candidates", "associations", "cue")
        feature = dataset.features["candidate_images"]
        inner = getattr(feature, "feature", feature[0] if isinstance(feature, list) else None)
        if isinstance(inner, datasets.Image):
            dataset = dataset.cast_column("candidate_images", datasets.Sequence(datasets.Image(decode=False)))
        instances = []
        for i, (cue, candidates, associations) in enumerate(zip(dataset["cue"], dataset["candidates"], dataset["associations"])):
            chosen = set(associations)
            images: list[ImageRef] = [
                HFListImage(dataset, "candidate_images", i, j, f"{location}[{split}]#{i}/{name}") for j, name in enumerate(candidates)
            ]
            instances.append(AssociationInstance(str(i), cue, images, [j for j, name in enumerate(candidates) if name in chosen]))
        if not instances:
            raise VLBenchError(f"{location} has no instances in split '{split}'")
        return AssociationData(instances)
