"""The webdataset layout CLIP_benchmark uses, read with the standard library.

``<root>/<split>/*.tar`` shards; in each, files sharing a key (the path up to the first dot of
the basename) form one sample: an image (webp/png/jpg/jpeg), ``cls`` (label) and/or ``txt``
(captions). ``classnames.txt`` and ``zeroshot_classification_templates.txt`` sit in ``<root>``.
Images are read by offset, so nothing is extracted.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from vlbench.datasets.images import TarMemberImage
from vlbench.errors import VLBenchError

IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")


def _natural(path: Path) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name)]


def shards(root: Path, split: str) -> list[Path]:
    return sorted((root / split).glob("*.tar"), key=_natural)


def exists(root: Path, split: str) -> bool:
    return bool(shards(root, split))


def read_lines(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    return [line.rstrip("\n\r") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class WdsSample:
    key: str
    image: TarMemberImage
    texts: dict[str, str] = field(default_factory=dict)

    def text(self, extension: str) -> str:
        if extension not in self.texts:
            raise VLBenchError(f"webdataset sample {self.image.shard}::{self.key} has no '.{extension}' file")
        return self.texts[extension]


def read_samples(root: Path, split: str, need: tuple[str, ...]) -> list[WdsSample]:
    """All samples of a split, in shard order, with their small text members read."""
    samples: list[WdsSample] = []
    for shard in shards(root, split):
        images: dict[str, TarMemberImage] = {}
        texts: dict[str, dict[str, str]] = {}
        order: list[str] = []
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
                    if key not in images and key not in texts:
                        order.append(key)
                    if extension in IMAGE_EXTENSIONS:
                        images.setdefault(key, TarMemberImage(str(shard), member.name, member.offset_data, member.size))
                    elif extension in need:
                        handle = tar.extractfile(member)
                        texts.setdefault(key, {})[extension] = handle.read().decode("utf-8") if handle else ""
        except tarfile.TarError as exc:
            raise VLBenchError(f"cannot read webdataset shard {shard}: {exc}") from exc
        for key in order:
            if key in images:
                samples.append(WdsSample(key, images[key], texts.get(key, {})))
    if not samples:
        raise VLBenchError(f"no image samples in the shards under {root / split}")
    return samples
