"""Readers for semantic segmentation datasets (mmsegmentation layouts) and the shapes world."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from vlbench.datasets.images import FileImage, ImageRef
from vlbench.datasets.shapes import (
    SHAPES,
    GeneratedReader,
    ShapesImage,
    multi_object_scene,
)
from vlbench.errors import VLBenchError
from vlbench.registry import Registry
from vlbench.spec.schema import option, schema
from vlbench.stamps import Input
from vlbench.spec.fields import SourceFields

IGNORE_INDEX = 255
SEGMENTATION_READERS: Registry = Registry("segmentation dataset format", entry_point_group="vlbench.readers", entry_point_prefix="segmentation.")


class LabelRef(Protocol):
    key: str

    def load(self) -> np.ndarray: ...


def reduce_zero_label(label: np.ndarray) -> np.ndarray:
    """mmseg's rule: 0 -> ignore, k -> k - 1, 255 stays 255."""
    label = label.astype(np.int32)
    ignored = (label == 0) | (label == IGNORE_INDEX)
    label = label - 1
    label[ignored] = IGNORE_INDEX
    return label.astype(np.uint8)


@dataclass(frozen=True)
class FileLabel:
    """A label PNG read as class indices (palette PNGs give their indices)."""

    path: str
    reduce_zero: bool = False

    @property
    def key(self) -> str:
        return self.path

    def load(self) -> np.ndarray:
        try:
            label = np.asarray(Image.open(self.path))
        except (OSError, ValueError) as exc:
            raise VLBenchError(f"cannot read label {self.path}: {exc}") from exc
        if label.ndim == 3:
            raise VLBenchError(f"label {self.path} has colour channels; expected one class index per pixel")
        return reduce_zero_label(label) if self.reduce_zero else label.astype(np.uint8)


@dataclass
class SegmentationSample:
    image: ImageRef
    label: LabelRef


@dataclass
class SegmentationData:
    samples: list[SegmentationSample]

    def limited(self, limit: int | None) -> "SegmentationData":
        return self if limit is None else SegmentationData(self.samples[:limit])


@schema
class MmsegSource(SourceFields):
    img_dir: str = option(help="image folder relative to the source's folder")
    ann_dir: str = option(help="label folder relative to the source's folder")
    img_suffix: str = option(".jpg", help="image file suffix")
    seg_suffix: str = option(".png", help="label file suffix")
    reduce_zero_label: bool = option(False, help="label 0 is ignored and the others shift down by one (mmseg)")
    split_file: str | None = option(None, help="file listing the image names to read, one per line")


@SEGMENTATION_READERS.register("mmseg")
class MmsegReader:
    """``<root>/<img_dir>/<name><img_suffix>`` with ``<root>/<ann_dir>/<name><seg_suffix>``.

    Names come from ``split_file`` (one per line) when given, else from a recursive, sorted listing of
    the image folder, as mmsegmentation does.
    """

    options = MmsegSource

    def exists(self, location: Path, options: Any) -> bool:
        return (location / options.img_dir).is_dir() and (location / options.ann_dir).is_dir()

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Input | Path]:
        root = Path(location)
        listing = [root / options.split_file] if options.split_file else [root / options.img_dir]
        return [*listing, Input(root / options.ann_dir, label_folder=True)]

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> SegmentationData:
        root = Path(location)
        img_dir, ann_dir = root / options.img_dir, root / options.ann_dir
        img_suffix, seg_suffix = options.img_suffix, options.seg_suffix
        if options.split_file:
            split = root / options.split_file
            if not split.is_file():
                raise VLBenchError(f"split file not found: {split}")
            names = [line.strip() for line in split.read_text().splitlines() if line.strip()]
        else:
            names = sorted(str(p.relative_to(img_dir))[: -len(img_suffix)] for p in img_dir.rglob(f"*{img_suffix}"))
        reduce = bool(options.reduce_zero_label)
        samples = [SegmentationSample(FileImage(str(img_dir / f"{n}{img_suffix}")), FileLabel(str(ann_dir / f"{n}{seg_suffix}"), reduce)) for n in names]
        if not samples:
            raise VLBenchError(f"no images ending in {img_suffix} under {img_dir}")
        missing = [s.label.path for s in samples if not Path(s.label.path).is_file()]  # type: ignore[attr-defined]
        if missing:
            raise VLBenchError(f"{len(missing)} label file(s) not found, e.g. {missing[0]}")
        return SegmentationData(samples)


@dataclass(frozen=True)
class ShapesLabel:
    """Class map of a generated scene: 0 background, 1 + shape index for each object's pixels."""

    seed: int
    index: int
    size: int

    @property
    def key(self) -> str:
        return f"shapes-label:{self.seed}:{self.index}:{self.size}"

    def load(self) -> np.ndarray:
        scene = multi_object_scene(self.seed, self.index, self.size)
        instances = scene.instance_mask()
        label = np.zeros_like(instances)
        for k, obj in enumerate(scene.objects, start=1):
            label[instances == k] = 1 + SHAPES.index(obj.shape)
        return label


@SEGMENTATION_READERS.register("shapes")
class ShapesSegmentationReader(GeneratedReader):
    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> SegmentationData:
        seed, n, size = self.params(options, ctx)
        return SegmentationData([SegmentationSample(ShapesImage("multi", seed, i, size), ShapesLabel(seed, i, size)) for i in range(n)])
