"""The webdataset layout CLIP_benchmark uses, read with the standard library.

``<root>/<split>/*.tar`` shards; in each, files sharing a key (the path up to the first dot of
the basename) form one sample: an image (webp/png/jpg/jpeg), ``cls`` (label), ``npy`` (a
multilabel target or, in DataComp's WILDS/fairness sets, a metadata row) and/or ``txt``
(captions). ``classnames.txt``, ``zeroshot_classification_templates.txt`` and
``dataset_type.txt`` sit in ``<root>``. Images are read by offset, so nothing is extracted.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlbench.datasets.images import TarMemberImage
from vlbench.errors import VLBenchError
from vlbench.spec.fields import TestSplitSource

IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")


def _natural(path: Path) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name)]


def shards(root: Path, split: str) -> list[Path]:
    return sorted((root / split).glob("*.tar"), key=_natural)


def exists(root: Path, split: str) -> bool:
    return bool(shards(root, split))


METADATA_FILES = ("classnames.txt", "zeroshot_classification_templates.txt", "dataset_type.txt")


def inputs(root: Path, split: str) -> list[Path]:
    """What a split's items come from: its shard folder and the folder's text files (``vlbench.datasets.base``)."""
    return [root / split, *(root / name for name in METADATA_FILES if (root / name).is_file())]


class WdsReader:
    """What every webdataset reader shares: the ``split`` option, where its shards are and what
    its items come from; subclasses add ``read``."""

    options = TestSplitSource

    def exists(self, location: Path, options: TestSplitSource) -> bool:
        return exists(Path(location), options.split)

    def inputs(self, location: Path, options: TestSplitSource, spec: object) -> list[Path]:
        return inputs(Path(location), options.split)


def read_lines(path: Path) -> list[str] | None:
    """A folder's classnames.txt / templates file as CLIP_benchmark reads it: every line, stripped."""
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]


def decode_npy(data: bytes, where: str) -> np.ndarray:
    """A ``.npy`` member (no pickles)."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise VLBenchError(f"webdataset sample {where}: not a numpy .npy array ({exc})") from exc


@dataclass
class WdsSample:
    key: str
    image: TarMemberImage
    texts: dict[str, str] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def text(self, extension: str) -> str:
        if extension not in self.texts:
            raise VLBenchError(f"webdataset sample {self.image.shard}::{self.key} has no '.{extension}' file")
        return self.texts[extension]

    def array(self, extension: str = "npy") -> np.ndarray:
        if extension not in self.arrays:
            raise VLBenchError(f"webdataset sample {self.image.shard}::{self.key} has no '.{extension}' file")
        return self.arrays[extension]


def read_samples(root: Path, split: str, need: tuple[str, ...]) -> list[WdsSample]:
    """All samples of a split, in shard order, with their small members in ``need`` read
    (``npy`` members decoded as arrays, the others as text)."""
    samples: list[WdsSample] = []
    for shard in shards(root, split):
        images: dict[str, TarMemberImage] = {}
        texts: dict[str, dict[str, str]] = {}
        arrays: dict[str, dict[str, np.ndarray]] = {}
        order: list[str] = []
        seen: set[str] = set()
        try:
            with tarfile.open(shard, "r:") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    directory, _, base = member.name.rpartition("/")
                    stem, dot, extension = base.partition(".")
                    if not dot:
                        continue
                    key = f"{directory}/{stem}" if directory else stem
                    extension = extension.lower()
                    if key not in seen:
                        seen.add(key)
                        order.append(key)
                    if extension in IMAGE_EXTENSIONS:
                        images.setdefault(key, TarMemberImage(str(shard), member.name, member.offset_data, member.size))
                    elif extension in need:
                        handle = tar.extractfile(member)
                        raw = handle.read() if handle else b""
                        if extension == "npy":
                            arrays.setdefault(key, {})[extension] = decode_npy(raw, f"{shard}::{key}")
                        else:
                            texts.setdefault(key, {})[extension] = raw.decode("utf-8")
        except tarfile.TarError as exc:
            raise VLBenchError(f"cannot read webdataset shard {shard}: {exc}") from exc
        for key in order:
            if key in images:
                samples.append(WdsSample(key, images[key], texts.get(key, {}), arrays.get(key, {})))
    if not samples:
        raise VLBenchError(f"no image samples in the shards under {root / split}")
    return samples
