"""Readers that turn classification datasets on disk (or generated) into ``ClassificationData``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlbench.datasets import hf, wds
from vlbench.datasets.images import ArrayImage, FileImage, ImageRef
from vlbench.datasets.shapes import (
    GeneratedReader,
    ShapesImage,
    classification_label,
    object_classes,
)
from vlbench.errors import VLBenchError
from vlbench.registry import Registry
from vlbench.schema import option, schema
from vlbench.taskfile import SourceFields, SplitSource
from vlbench.safe_pickle import NUMPY_ARRAYS, load_pickle

CLASSIFICATION_READERS: Registry = Registry("classification dataset format")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm"}


@dataclass
class ClassificationData:
    images: list[ImageRef]
    labels: list[int]
    classnames: list[str] | None = None  # provided by the dataset, used when the task names none
    templates: list[str] | None = None

    def limited(self, limit: int | None) -> "ClassificationData":
        if limit is None:
            return self
        return ClassificationData(self.images[:limit], self.labels[:limit], self.classnames, self.templates)


def natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@schema
class HFClassificationSource(SplitSource):
    image_key: str = option("image", help="image column")
    label_key: str = option("label", help="label column (class names from its ClassLabel names)")


@CLASSIFICATION_READERS.register("imagefolder")
class ImageFolderReader:
    """``<root>/<class>/<image>``; classes in sorted folder order, names from folder names."""

    options = SourceFields

    def exists(self, location: Path, source: dict[str, Any]) -> bool:
        return location.is_dir() and any(p.is_dir() for p in location.iterdir())

    def read(self, location: str, source: dict[str, Any], spec: Any, ctx: Any) -> ClassificationData:
        root = Path(location)
        class_dirs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
        images: list[ImageRef] = []
        labels: list[int] = []
        for label, class_dir in enumerate(class_dirs):
            files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            images += [FileImage(str(p)) for p in files]
            labels += [label] * len(files)
        if not images:
            raise VLBenchError(f"no images found under {root} (expected <class>/<image> files)")
        names = [d.name.replace("_", " ") for d in class_dirs]
        return ClassificationData(images, labels, classnames=names)


@CLASSIFICATION_READERS.register("cifar")
class CifarReader:
    """The official python-version archives, extracted: ``cifar-10-batches-py`` / ``cifar-100-python``."""

    options = SourceFields

    LAYOUTS = {  # folder -> (test file, label key, meta file, names key)
        "cifar-10-batches-py": ("test_batch", "labels", "batches.meta", "label_names"),
        "cifar-100-python": ("test", "fine_labels", "meta", "fine_label_names"),
    }

    def _folder(self, location: Path) -> tuple[Path, tuple[str, str, str, str]] | None:
        for folder, layout in self.LAYOUTS.items():
            for candidate in (location / folder, location):
                if candidate.name == folder and (candidate / layout[0]).is_file():
                    return candidate, layout
        return None

    def exists(self, location: Path, source: dict[str, Any]) -> bool:
        return self._folder(location) is not None

    def read(self, location: str, source: dict[str, Any], spec: Any, ctx: Any) -> ClassificationData:
        folder, (test_file, label_key, meta_file, names_key) = self._folder(Path(location))  # type: ignore[misc]
        batch = load_pickle(folder / test_file, NUMPY_ARRAYS)
        pixels = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = [int(y) for y in batch[label_key]]
        images: list[ImageRef] = [
            ArrayImage(f"{folder / test_file}#{i}", pixels[i].tobytes(), 32, 32) for i in range(len(labels))
        ]
        names = None
        if (folder / meta_file).is_file():
            names = [n.replace("_", " ") for n in load_pickle(folder / meta_file, NUMPY_ARRAYS)[names_key]]
        return ClassificationData(images, labels, classnames=names)


@CLASSIFICATION_READERS.register("hf")
class HFClassificationReader:
    """A Hugging Face dataset: saved with ``save_to_disk``, parquet files, or a hub id (opt-in)."""

    options = HFClassificationSource

    def exists(self, location: Path, source: dict[str, Any]) -> bool:
        return hf.exists(location)

    def read(self, location: str, source: dict[str, Any], spec: Any, ctx: Any) -> ClassificationData:
        split = source.get("split", spec.dataset.get("split"))
        dataset = hf.open_dataset(location, split)
        image_key, label_key = source.get("image_key", "image"), source.get("label_key", "label")
        hf.require_columns(dataset, location, image_key, label_key)
        return ClassificationData(
            images=hf.image_refs(dataset, image_key, location, split),
            labels=[int(y) for y in dataset[label_key]],
            classnames=hf.class_names(dataset, label_key),
        )


@CLASSIFICATION_READERS.register("wds")
class WdsClassificationReader:
    """CLIP_benchmark's webdataset layout: ``<split>/*.tar`` + classnames.txt + templates."""

    options = SplitSource

    def exists(self, location: Path, source: dict[str, Any]) -> bool:
        return wds.exists(location, source.get("split", "test"))

    def read(self, location: str, source: dict[str, Any], spec: Any, ctx: Any) -> ClassificationData:
        root = Path(location)
        samples = wds.read_samples(root, source.get("split", "test"), need=("cls",))
        return ClassificationData(
            images=[s.image for s in samples],
            labels=[int(s.text("cls").strip()) for s in samples],
            classnames=wds.read_lines(root / "classnames.txt"),
            templates=wds.read_lines(root / "zeroshot_classification_templates.txt"),
        )


@CLASSIFICATION_READERS.register("shapes")
class ShapesClassificationReader(GeneratedReader):
    """Generated one-object scenes; class = 'colour shape'."""

    def read(self, location: str, source: dict[str, Any], spec: Any, ctx: Any) -> ClassificationData:
        seed, n, size = self.params(source)
        return ClassificationData(
            images=[ShapesImage("single", seed, i, size) for i in range(n)],
            labels=[classification_label(i) for i in range(n)],
            classnames=object_classes(),
        )
