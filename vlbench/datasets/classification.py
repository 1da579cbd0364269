"""Readers that turn classification datasets on disk (or generated) into ``ClassificationData``."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vlbench.datasets import hf, wds
from vlbench.datasets.images import ArrayImage, FileImage, ImageRef
from vlbench.datasets.video import MISSING_VIDEOS_HELP, VIDEO_SUFFIXES, MissingVideos, VideoFrames, is_video, missing_videos_left_out, video_files
from vlbench.datasets.shapes import (
    GeneratedReader,
    ShapesImage,
    classification_label,
    object_classes,
)
from vlbench.errors import VLBenchError
from vlbench.registry import Registry
from vlbench.spec.schema import option, schema
from vlbench.spec.fields import SourceFields, SplitSource
from vlbench.datasets.safe_pickle import NUMPY_ARRAYS, load_pickle

CLASSIFICATION_READERS: Registry = Registry("classification dataset format", entry_point_group="vlbench.readers", entry_point_prefix="classification.")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm"}


@dataclass
class ClassificationData:
    images: list[ImageRef]
    labels: list[int]
    classnames: list[str] | None = None  # provided by the dataset, used when the task names none
    templates: list[str] | None = None
    #: The dataset's own class names/templates win over the task's packaged files (as CLIP_benchmark
    #: uses a webdataset folder's classnames.txt / zeroshot_classification_templates.txt).
    own_prompts: bool = False
    #: Per-sample metadata rows (DataComp's ``npy`` member), for group metrics.
    metadata: list[list[int]] | None = None
    #: Per sample, every label that counts as right (ImageNet-ReaL's reassessed labels; empty: none does).
    label_sets: list[list[int]] | None = None
    #: Items the reader left out, by reason ({"missing_videos": {"records": n, "examples": [ids]}}): the result's
    #: protocol_used.left_out, said after the summary.
    left_out: dict[str, Any] = dataclasses.field(default_factory=dict)

    def limited(self, limit: int | None) -> "ClassificationData":
        if limit is None:
            return self
        metadata = self.metadata[:limit] if self.metadata is not None else None
        label_sets = self.label_sets[:limit] if self.label_sets is not None else None
        return dataclasses.replace(self, images=self.images[:limit], labels=self.labels[:limit], metadata=metadata, label_sets=label_sets)


def natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@schema
class HFClassificationSource(SplitSource):
    image_key: str = option("image", help="image column")
    label_key: str = option("label", help="label column (class names from its ClassLabel names)")


@schema
class ImageFolderSource(SourceFields):
    class_folders: Literal["sorted", "numeric"] = option("sorted", help="sorted: the class folders in sorted order are classes 0, 1, ...; "
                                                         "numeric: each folder's name is its class index (ImageNet-V2's 0 .. 999)")


@CLASSIFICATION_READERS.register("imagefolder")
class ImageFolderReader:
    """``<root>/<class>/<image>``; classes in sorted folder order (or numbered by their names), names from folder names.

    With ``files.class_subset`` in the task (e.g. ObjectNet's 113 of its 313 folders), only the
    folders named there are read.
    """

    options = ImageFolderSource

    def exists(self, location: Path, options: Any) -> bool:
        return location.is_dir() and any(p.is_dir() for p in location.iterdir())

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        root = Path(location)
        class_dirs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
        subset = spec.read_lines("class_subset") if spec is not None else None
        if subset is not None:
            wanted = set(subset)
            class_dirs = [d for d in class_dirs if d.name in wanted]
            missing = sorted(wanted - {d.name for d in class_dirs})
            if missing:
                raise VLBenchError(f"{root} lacks {len(missing)} class folder(s) of the task's class subset, e.g. {missing[0]}")
        numeric = getattr(options, "class_folders", "sorted") == "numeric"
        if numeric:
            odd = next((d.name for d in class_dirs if not d.name.isdigit()), None)
            if odd is not None:
                raise VLBenchError(f"{root}: class folder '{odd}' is not a class index (class_folders: numeric names each folder by its index)")
            class_dirs = sorted(class_dirs, key=lambda d: int(d.name))
        images: list[ImageRef] = []
        labels: list[int] = []
        for label, class_dir in enumerate(class_dirs):
            files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            images += [FileImage(str(p)) for p in files]
            labels += [int(class_dir.name) if numeric else label] * len(files)
        if not images:
            raise VLBenchError(f"no images found under {root} (expected <class>/<image> files)")
        names = None if numeric else [d.name.replace("_", " ") for d in class_dirs]
        return ClassificationData(images, labels, classnames=names)


@schema
class VideoFolderSource(SourceFields):
    video: VideoFrames | None = option(None, help="the frame protocol: {frames: 8, sampling: uniform, renormalise: true} when not given")
    labels_file: str | None = option(None, help="a file of 'folder,class name' lines, relative to the source's folder (Perception "
                                     "Encoder's UCF-101 / HMDB-51 label files); without it class names are the folder names")


def pe_clean_label(label: str) -> str:
    """A class name as Perception Encoder's VideoClassificationDataset cleans it: no parentheses, no '_' at the ends."""
    return label.replace("(", "").replace(")", "").strip("_")


@CLASSIFICATION_READERS.register("video_folder")
class VideoFolderReader:
    """``<root>/<class>/<video>`` (Kinetics, UCF-101, HMDB-51 as Perception Encoder's evaluation reads them): classes
    in sorted folder order, names from the labels file or the folder names (parentheses removed, '_' stripped at the
    ends, as its clean_label); each video is its sampled frames (``vlbench.datasets.video``)."""

    options = VideoFolderSource

    def exists(self, location: Path, options: Any) -> bool:
        return location.is_dir() and any(p.is_dir() for p in location.iterdir())

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        root = Path(location)
        class_dirs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
        protocol = options.video or VideoFrames()
        videos: list[ImageRef] = []
        labels: list[int] = []
        for label, class_dir in enumerate(class_dirs):
            files = sorted(p for p in class_dir.rglob("*") if p.is_file() and is_video(p))
            videos += video_files(files, protocol)
            labels += [label] * len(files)
        if not videos:
            raise VLBenchError(f"no videos found under {root} (expected <class>/<video> files: {', '.join(sorted(VIDEO_SUFFIXES))})")
        names = [d.name for d in class_dirs]
        if options.labels_file:
            names = self._named(root, options.labels_file, names)
        return ClassificationData(videos, labels, classnames=[pe_clean_label(n) for n in names])

    @staticmethod
    def _named(root: Path, labels_file: str, folders: list[str]) -> list[str]:
        path = root / labels_file
        if not path.is_file():
            raise VLBenchError(f"labels file {path} not found (the source's labels_file: 'folder,class name' lines)")
        named: dict[str, str] = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                folder, comma, name = line.strip().partition(",")
                if not comma:
                    raise VLBenchError(f"{path}, line {number}: expected 'folder,class name', got '{line.strip()}'")
                named[folder] = name
        unnamed = [f for f in folders if f not in named]
        if unnamed:
            raise VLBenchError(f"{path} names no class for folder '{unnamed[0]}' ({len(unnamed)} folder(s) unnamed)")
        return [named[f] for f in folders]


@schema
class VideoCsvSource(SourceFields):
    annotation: str = option(help="the split's annotation CSV, relative to the source's folder (Kinetics: annotations/val.csv)")
    videos_dir: str = option(help="the folder of the split's videos, relative to the source's folder (Kinetics: val)")
    label_column: str = option("label", help="the column with the class name")
    id_column: str = option("youtube_id", help="the column that names the video")
    id_chars: int | None = option(11, help="a video file belongs to the row whose id is the first this many characters of the file's "
                                  "stem (the CVDF downloader's arrange_by_classes.py: stem[:11], the YouTube id); null: the whole stem", low=1)
    video: VideoFrames | None = option(None, help="the frame protocol: {frames: 8, sampling: uniform, renormalise: true} when not given")
    missing_videos: MissingVideos = option("error", help=MISSING_VIDEOS_HELP)


@CLASSIFICATION_READERS.register("video_csv")
class VideoCsvReader:
    """Kinetics as the CVDF downloader leaves it (``annotations/<split>.csv`` with label and youtube_id columns, the videos
    flat in ``<split>/``), matched as its arrange_by_classes.py matches them (a file's stem[:11] is its YouTube id);
    classes in sorted label order, as the class folders that script makes sort, names cleaned as Perception Encoder's
    clean_label."""

    options = VideoCsvSource

    def exists(self, location: Path, options: Any) -> bool:
        return (location / options.annotation).is_file() and (location / options.videos_dir).is_dir()

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Any]:
        from vlbench.stamps import Input

        found: list[Any] = [location / options.annotation]
        if options.missing_videos == "skip":
            found.append(Input(location / options.videos_dir))
        return found

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        import csv

        root = Path(location)
        path = root / options.annotation
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        absent = [c for c in (options.label_column, options.id_column) if rows and c not in rows[0]]
        if not rows or absent:
            raise VLBenchError(f"{path}: " + (f"no column '{absent[0]}' (columns: {', '.join(rows[0])})" if rows else "no rows"))
        videos = {}
        for file in sorted((root / options.videos_dir).iterdir()):
            if file.is_file() and is_video(file):
                videos.setdefault(file.stem[: options.id_chars] if options.id_chars else file.stem, file)
        classes = sorted({row[options.label_column] for row in rows})
        index = {name: i for i, name in enumerate(classes)}
        found = [row for row in rows if row[options.id_column] in videos]
        missing = [row[options.id_column] for row in rows if row[options.id_column] not in videos]
        left_out = missing_videos_left_out(missing, len(rows), path.name, root / options.videos_dir, options.missing_videos)
        refs = video_files([videos[row[options.id_column]] for row in found], options.video or VideoFrames())
        return ClassificationData(refs, [index[row[options.label_column]] for row in found],
                                  classnames=[pe_clean_label(c) for c in classes], left_out=left_out)


@schema
class TorchvisionSource(SourceFields):
    dataset: str = option(help="the torchvision.datasets class, e.g. Food101")
    args: dict[str, Any] = option({}, help="keyword arguments of the class besides root and download, e.g. {split: test}")


@CLASSIFICATION_READERS.register("objectnet")
class ObjectNetReader:
    """ObjectNet 1.0 as CLIP_benchmark reads it: ``objectnet-1.0/images/<folder>/`` and the release's
    mapping files beside it (``folder_to_objectnet_label.json``, ``objectnet_to_imagenet_1k.json``,
    in ``<root>`` or ``<root>/objectnet-1.0/mappings``). Only the 113 classes that map to ImageNet
    are read; labels follow their sorted folder names, class names are their lower-cased labels."""

    options = SourceFields

    MAPPINGS = ("folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json")

    def _mappings(self, location: Path) -> Path | None:
        for folder in (location, location / "objectnet-1.0" / "mappings"):
            if all((folder / name).is_file() for name in self.MAPPINGS):
                return folder
        return None

    def exists(self, location: Path, options: Any) -> bool:
        return (location / "objectnet-1.0" / "images").is_dir() and self._mappings(location) is not None

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        import json

        root = Path(location)
        mappings = self._mappings(root)
        folder_label = json.loads((mappings / self.MAPPINGS[0]).read_text(encoding="utf-8"))  # type: ignore[operator]
        mapped = json.loads((mappings / self.MAPPINGS[1]).read_text(encoding="utf-8"))  # type: ignore[operator]
        label_folder = {label: folder for folder, label in folder_label.items()}
        folders = sorted(label_folder[name] for name in mapped)
        images: list[ImageRef] = []
        labels: list[int] = []
        for label, folder in enumerate(folders):
            files = sorted(p for p in (root / "objectnet-1.0" / "images" / folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            images += [FileImage(str(p)) for p in files]
            labels += [label] * len(files)
        if not images:
            raise VLBenchError(f"no images of ObjectNet's mapped classes under {root / 'objectnet-1.0' / 'images'}")
        return ClassificationData(images, labels, classnames=[folder_label[f].lower() for f in folders])


@dataclass(frozen=True)
class TorchvisionImage:
    """Image ``index`` of a torchvision dataset (loaded without a transform)."""

    dataset: Any
    index: int
    key: str

    def load(self) -> Any:
        from vlbench.datasets.images import to_rgb

        return to_rgb(self.dataset[self.index][0])


@CLASSIFICATION_READERS.register("torchvision")
class TorchvisionReader:
    """A dataset class of ``torchvision.datasets`` on its own layout, as CLIP_benchmark builds many
    of them: ``{format: torchvision, dataset: Food101, path: food101, args: {split: test}}`` makes
    ``Food101(root=<data root>/food101, download=False, split="test")``. Class names from its
    ``classes``, labels from its label list (or its samples)."""

    options = TorchvisionSource

    def _open(self, location: Path, options: Any) -> Any:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, str(options.dataset), None)
        if not isinstance(cls, type):
            raise VLBenchError(f"torchvision.datasets has no dataset class '{options.dataset}'")
        return cls(root=str(location), download=False, **(options.args or {}))

    def exists(self, location: Path, options: Any) -> bool:
        if not location.is_dir():
            return False
        try:
            self._open(location, options)
        except VLBenchError:
            raise
        except Exception:  # torchvision raises RuntimeError/FileNotFoundError/... when files are missing
            return False
        return True

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        dataset = self._open(Path(location), options)
        name = f"{options.dataset}:{location}"
        classes = getattr(dataset, "classes", None)
        return ClassificationData(
            images=[TorchvisionImage(dataset, i, f"{name}#{i}") for i in range(len(dataset))],
            labels=torchvision_labels(dataset),
            classnames=[str(c) for c in classes] if classes else None,
        )


def torchvision_labels(dataset: Any) -> list[int]:
    """Labels without decoding images where the class keeps them in a list; else read sample by sample."""
    for attribute in ("targets", "_labels", "labels"):
        values = getattr(dataset, attribute, None)
        if values is not None and len(values) == len(dataset):
            return [int(v) for v in values]
    for attribute in ("_samples", "samples"):
        samples = getattr(dataset, attribute, None)
        if samples is not None and len(samples) == len(dataset) and all(isinstance(s, tuple) and len(s) == 2 for s in samples):
            return [int(s[1]) for s in samples]
    return [int(dataset[i][1]) for i in range(len(dataset))]


@schema
class CifarSource(SourceFields):
    split: Literal["test", "train"] = option("test", help="the test batch, or the training batches (linear probes, k-NN)")


@CLASSIFICATION_READERS.register("cifar")
class CifarReader:
    """The official python-version archives, extracted: ``cifar-10-batches-py`` / ``cifar-100-python``."""

    options = CifarSource

    LAYOUTS = {  # folder -> ({split: its batch files}, label key, meta file, names key)
        "cifar-10-batches-py": ({"test": ("test_batch",), "train": tuple(f"data_batch_{i}" for i in range(1, 6))}, "labels", "batches.meta",
                                "label_names"),
        "cifar-100-python": ({"test": ("test",), "train": ("train",)}, "fine_labels", "meta", "fine_label_names"),
    }

    def _folder(self, location: Path, split: str) -> tuple[Path, tuple[Any, str, str, str]] | None:
        for folder, layout in self.LAYOUTS.items():
            for candidate in (location / folder, location):
                if candidate.name == folder and all((candidate / name).is_file() for name in layout[0][split]):
                    return candidate, layout
        return None

    def exists(self, location: Path, options: Any) -> bool:
        return self._folder(location, options.split) is not None

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Path]:
        folder, (batches, _, meta_file, _) = self._folder(Path(location), options.split)  # type: ignore[misc]
        return [*(folder / name for name in batches[options.split]), *([folder / meta_file] if (folder / meta_file).is_file() else [])]

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        folder, (batches, label_key, meta_file, names_key) = self._folder(Path(location), options.split)  # type: ignore[misc]
        images: list[ImageRef] = []
        labels: list[int] = []
        for name in batches[options.split]:
            batch = load_pickle(folder / name, NUMPY_ARRAYS)
            pixels = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            images += [ArrayImage(f"{folder / name}#{i}", pixels[i].tobytes(), 32, 32) for i in range(len(pixels))]
            labels += [int(y) for y in batch[label_key]]
        names = None
        if (folder / meta_file).is_file():
            names = [n.replace("_", " ") for n in load_pickle(folder / meta_file, NUMPY_ARRAYS)[names_key]]
        return ClassificationData(images, labels, classnames=names)


@schema
class CoopSplitSource(SourceFields):
    split_file: str = option(help="CoOp's split_zhou_<Dataset>.json, relative to the source's folder")
    images_dir: str = option("", help="the folder its image paths are relative to, relative to the source's folder")
    split: Literal["train", "val", "test"] = option("test", help="the split file's list to read")


@CLASSIFICATION_READERS.register("coop_split")
class CoopSplitReader:
    """CoOp's split files (``split_zhou_<Dataset>.json``: lists ``train``, ``val``, ``test`` of ``[image path, label,
    class name]``, read as CoOp's ``OxfordPets.read_split``), the images under ``images_dir``. Class names are the
    split's own, by label, underscores read as spaces (as CoOp's prompts); a task's ``files.classnames`` wins."""

    options = CoopSplitSource

    def exists(self, location: Path, options: Any) -> bool:
        return (Path(location) / options.split_file).is_file()

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Path]:
        return [Path(location) / options.split_file]

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        import json

        path = Path(location) / options.split_file
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))[options.split]
            items = [(str(image), int(label), str(name)) for image, label, name in rows]
        except (ValueError, KeyError, TypeError) as exc:
            raise VLBenchError(f"{path} is not a CoOp split file with a '{options.split}' list of [image path, label, class name] "
                               f"({type(exc).__name__}: {exc})") from exc
        if not items:
            raise VLBenchError(f"{path}: its '{options.split}' list is empty")
        names: dict[int, str] = {}
        for _, label, name in items:
            if names.setdefault(label, name) != name:
                raise VLBenchError(f"{path}: label {label} is named both '{names[label]}' and '{name}'")
        top = max(names)
        classnames = [names.get(label, "").replace("_", " ") for label in range(top + 1)]
        root = Path(location) / options.images_dir
        return ClassificationData([FileImage(str(root / image)) for image, _, _ in items], [label for _, label, _ in items], classnames=classnames)


@schema
class AircraftSource(SourceFields):
    split: Literal["train", "val", "trainval", "test"] = option("test", help="the release's images_variant_<split>.txt to read")


@CLASSIFICATION_READERS.register("fgvc_aircraft")
class AircraftReader:
    """FGVC-Aircraft's release folder (its ``data/``: ``variants.txt``, ``images_variant_<split>.txt`` with lines
    ``<image id> <variant>``, ``images/<image id>.jpg``), read as CoOp's ``FGVCAircraft``: 100 variants, labels in
    the order of ``variants.txt``."""

    options = AircraftSource

    def exists(self, location: Path, options: Any) -> bool:
        return (Path(location) / "variants.txt").is_file() and (Path(location) / f"images_variant_{options.split}.txt").is_file()

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Path]:
        return [Path(location) / "variants.txt", Path(location) / f"images_variant_{options.split}.txt"]

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        root = Path(location)
        classnames = [line.strip() for line in (root / "variants.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
        labels_of = {name: label for label, name in enumerate(classnames)}
        listing = root / f"images_variant_{options.split}.txt"
        images: list[ImageRef] = []
        labels: list[int] = []
        for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            image_id, _, variant = line.strip().partition(" ")
            if variant not in labels_of:
                raise VLBenchError(f"{listing}:{number}: variant '{variant}' is not in {root / 'variants.txt'}")
            images.append(FileImage(str(root / "images" / f"{image_id}.jpg")))
            labels.append(labels_of[variant])
        return ClassificationData(images, labels, classnames=classnames)


@schema
class RealSource(SourceFields):
    images: str = option("val", help="the validation images in class folders (<wnid>/ILSVRC2012_val_<n>.JPEG), relative to the source's folder")
    real: str = option("real.json", help="ReaL's real.json (one list of labels per validation image, in ILSVRC2012_val order), relative to the source's folder")


@CLASSIFICATION_READERS.register("imagenet_real")
class ImageNetRealReader:
    """ImageNet's validation images in class folders (their original label: the sorted wnid order) and ReaL's
    reassessed labels (Beyer et al. 2020, google-research/reassessed-imagenet ``real.json``: entry i lists the
    labels of ``ILSVRC2012_val_{i + 1:08d}.JPEG``), joined by the number in each file's name."""

    options = RealSource

    def exists(self, location: Path, options: Any) -> bool:
        return (Path(location) / options.real).is_file() and (Path(location) / options.images).is_dir()

    def inputs(self, location: Path, options: Any, spec: Any) -> list[Path]:
        return [Path(location) / options.real, Path(location) / options.images]

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        import json

        root = Path(location)
        data = ImageFolderReader().read(str(root / options.images), ImageFolderSource(format="imagefolder"), spec, ctx)
        path = root / options.real
        try:
            real = [[int(label) for label in labels] for labels in json.loads(path.read_text(encoding="utf-8"))]
        except (ValueError, TypeError) as exc:
            raise VLBenchError(f"{path} is not ReaL's real.json (a list of label lists): {exc}") from exc
        label_sets = []
        for ref in data.images:
            match = re.search(r"ILSVRC2012_val_(\d{8})", Path(ref.path).name)  # type: ignore[attr-defined]
            if match is None or not 1 <= int(match.group(1)) <= len(real):
                raise VLBenchError(f"{ref.path}: not an ILSVRC2012_val_<n> image that {path.name} ({len(real)} entries) labels")  # type: ignore[attr-defined]
            label_sets.append(real[int(match.group(1)) - 1])
        return dataclasses.replace(data, label_sets=label_sets)


@CLASSIFICATION_READERS.register("hf")
class HFClassificationReader:
    """A Hugging Face dataset: saved with ``save_to_disk``, parquet files, or a hub id (opt-in)."""

    options = HFClassificationSource

    def exists(self, location: Path, options: Any) -> bool:
        return hf.exists(location)

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        split = options.split or spec.dataset.get("split")
        dataset = hf.open_dataset(location, split)
        image_key, label_key = options.image_key, options.label_key
        hf.require_columns(dataset, location, image_key, label_key)
        return ClassificationData(
            images=hf.image_refs(dataset, image_key, location, split),
            labels=[int(y) for y in dataset[label_key]],
            classnames=hf.class_names(dataset, label_key),
        )


@CLASSIFICATION_READERS.register("wds")
class WdsClassificationReader(wds.WdsReader):
    """CLIP_benchmark's webdataset layout: ``<split>/*.tar`` + classnames.txt + templates.

    The folder's own class names and templates take precedence over the task's packaged lists
    (CLIP_benchmark's ``build_wds_dataset``); a ``npy`` member, where present, is the sample's
    metadata row (DataComp's WILDS and fairness sets).
    """

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        root = Path(location)
        samples = wds.read_samples(root, options.split, need=("cls", "npy"))
        with_metadata = all("npy" in s.arrays for s in samples)
        return ClassificationData(
            images=[s.image for s in samples],
            labels=[int(s.text("cls").strip()) for s in samples],
            classnames=wds.read_lines(root / "classnames.txt"),
            templates=wds.read_lines(root / "zeroshot_classification_templates.txt"),
            own_prompts=True,
            metadata=[[int(v) for v in s.array().reshape(-1).tolist()] for s in samples] if with_metadata else None,
        )


@CLASSIFICATION_READERS.register("shapes")
class ShapesClassificationReader(GeneratedReader):
    """Generated one-object scenes; class = 'colour shape'."""

    def read(self, location: str, options: Any, spec: Any, ctx: Any) -> ClassificationData:
        seed, n, size = self.params(options, ctx)
        return ClassificationData(
            images=[ShapesImage("single", seed, i, size) for i in range(n)],
            labels=[classification_label(i) for i in range(n)],
            classnames=object_classes(),
        )
