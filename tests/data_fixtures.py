"""Small datasets written in the real on-disk formats, with generated images."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

COLORS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 220)}


def color_image(name: str, size: int = 40, seed: int = 0) -> Image.Image:
    """A flat-coloured image with a little noise, so files differ."""
    rng = np.random.default_rng(seed)
    base = np.array(COLORS[name], dtype=np.int16)
    pixels = np.clip(base + rng.integers(-10, 10, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def write_imagefolder(root: Path, per_class: int = 2) -> list[tuple[str, int]]:
    items = []
    for label, name in enumerate(sorted(COLORS)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = root / name / f"{i}.png"
            color_image(name, seed=i).save(path)
            items.append((str(path), label))
    return items


def write_cifar(root: Path, variant: str = "cifar10", n: int = 6) -> np.ndarray:
    """The python-version layout: a py2-style pickle dict with data (N x 3072, CHW) and labels."""
    folder = root / ("cifar-10-batches-py" if variant == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    data = images.transpose(0, 3, 1, 2).reshape(n, 3072)
    labels = [i % 3 for i in range(n)]
    if variant == "cifar10":
        batch = {"batch_label": "testing batch 1 of 1", "labels": labels, "data": data, "filenames": [f"{i}.png" for i in range(n)]}
        meta = {"label_names": ["airplane", "automobile", "bird"], "num_cases_per_batch": n}
        names = ("test_batch", "batches.meta")
    else:
        batch = {"filenames": [f"{i}.png" for i in range(n)], "fine_labels": labels, "coarse_labels": [0] * n, "data": data}
        meta = {"fine_label_names": ["apple", "aquarium_fish", "baby"], "coarse_label_names": ["x"]}
        names = ("test", "meta")
    (folder / names[0]).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / names[1]).write_bytes(pickle.dumps(meta, protocol=2))
    return images


def write_wds(root: Path, samples: list[dict[str, bytes | str]], split: str = "test", per_shard: int = 2) -> None:
    """Tar shards of samples keyed by '__key__' with members '<key>.<ext>'."""
    (root / split).mkdir(parents=True, exist_ok=True)
    for shard_index, start in enumerate(range(0, len(samples), per_shard)):
        with tarfile.open(root / split / f"{shard_index}.tar", "w") as tar:
            for sample in samples[start : start + per_shard]:
                for ext, payload in sample.items():
                    if ext == "__key__":
                        continue
                    data = payload if isinstance(payload, bytes) else str(payload).encode()
                    info = tarfile.TarInfo(f"{sample['__key__']}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def write_karpathy(root: Path, annotation: str, images_dir: str = "", with_filepath: bool = True) -> list[list[str]]:
    """A Karpathy-format split file with 3 test images (2 captions each) and 1 train image."""
    entries, captions = [], []
    for i, (name, split) in enumerate([("red", "test"), ("green", "train"), ("green", "test"), ("blue", "test")]):
        filepath = "val2014" if with_filepath else ""
        folder = root / images_dir / filepath
        folder.mkdir(parents=True, exist_ok=True)
        filename = f"img{i}.jpg"
        color_image(name, seed=i).save(folder / filename)
        sentences = [f"a {name} picture", f" {name} everywhere\n"]
        entry = {"filename": filename, "split": split, "imgid": i, "sentences": [{"raw": s, "tokens": s.split()} for s in sentences]}
        if with_filepath:
            entry["filepath"] = filepath
        entries.append(entry)
        if split == "test":
            captions.append(sentences)
    (root / annotation).write_text(json.dumps({"images": entries, "dataset": "coco"}))
    return captions


def source_options(reader: Any, source: dict[str, Any]) -> Any:
    """``source`` as the typed options a run gives ``reader`` (checked against its schema, defaults filled in)."""
    from vlbench.spec.schema import parse

    return parse(reader.options, {"format": "test", **source}, "a test source", "dataset.sources[0].")
