"""Lazily loaded images.

Every image a task needs is an ``ImageRef``: a small picklable object with a stable ``key``
(used for caching embeddings and in per-sample records) and a ``load()`` that returns an RGB
PIL image. Picklable so that data-loader workers work under any multiprocessing start method.
A ref may also have a ``cache_id``: its identity across runs for the persistent embedding cache,
which changes whenever the image may have (a file's stamp, ``vlbench.stamps``: size, inode,
modification and change times); refs without one are not stored there.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from vlbench.errors import VLBenchError
from vlbench.stamps import file_stamp

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
MAX_PIXELS_ENV = "VLBENCH_MAX_IMAGE_PIXELS"
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageRef(Protocol):
    key: str

    def load(self) -> Image.Image: ...


def max_image_pixels() -> int | None:
    """PIL's decompression-bomb limit, unless $VLBENCH_MAX_IMAGE_PIXELS sets another (0: no limit)."""
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return Image.MAX_IMAGE_PIXELS
    try:
        pixels = int(value)
    except ValueError:
        raise VLBenchError(f"${MAX_PIXELS_ENV} must be a whole number of pixels (0 for no limit), got '{value}'") from None
    return pixels or None


def _decode(data: bytes | str, what: str) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = max_image_pixels()  # read per image: data-loader workers see the same setting
    try:
        image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        image.load()
    except FileNotFoundError as exc:
        raise VLBenchError(f"image not found: {what}") from exc
    except Image.DecompressionBombError as exc:
        raise VLBenchError(
            f"image {what} is too large to open safely ({exc}); if it is a genuine image, "
            f"allow large images with {MAX_PIXELS_ENV}=<pixels> (0 for no limit)"
        ) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise VLBenchError(f"cannot read image {what}: {exc}") from exc
    return to_rgb(image)


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit integer ('I;16', 'I') images scaled from 0-65535, float ('F') from 0-1 (or clipped to 0-255)."""
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        scale = 255.0 if pixels.size and np.nanmax(pixels) <= 1.0 else 1.0
    else:
        scale = 255.0 / 65535.0
    return Image.fromarray(np.clip(np.rint(np.nan_to_num(pixels) * scale), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB view of any PIL image (RGBA, palette, greyscale and 16-bit/float greyscale images included).

    PIL's own conversion of 16-bit and float images clips at 255, which turns them white.
    """
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "F":
        image = _to_8bit(image)
    return image.convert("RGB")


def crop_box(image: Image.Image, box: Box | None) -> Image.Image:
    return image if box is None else image.crop(tuple(box))


@dataclass(frozen=True)
class FileImage:
    """An image file, optionally cropped to a box."""

    path: str
    box: Box | None = None

    @property
    def key(self) -> str:
        return self.path if self.box is None else f"{self.path}#crop={','.join(f'{v:g}' for v in self.box)}"

    @property
    def cache_id(self) -> str | None:
        stamp = file_stamp(self.path)
        return None if stamp is None else f"file:{stamp}|crop={self.box!r}"

    def load(self) -> Image.Image:
        return crop_box(_decode(self.path, self.path), self.box)


@dataclass(frozen=True)
class TarMemberImage:
    """An image stored inside an (uncompressed) tar shard, read by offset."""

    shard: str
    member: str
    offset: int
    size: int

    @property
    def key(self) -> str:
        return f"{self.shard}::{self.member}"

    @property
    def cache_id(self) -> str | None:
        stamp = file_stamp(self.shard)
        return None if stamp is None else f"tar:{stamp}|{self.member}|{self.offset}|{self.size}"

    def load(self) -> Image.Image:
        with open(self.shard, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        return _decode(data, self.key)


@dataclass(frozen=True)
class BytesImage:
    """Encoded image bytes held in memory (small datasets, HF image columns)."""

    key: str
    data: bytes

    @property
    def cache_id(self) -> str:
        return f"bytes:{hashlib.sha256(self.data).hexdigest()}"

    def load(self) -> Image.Image:
        return _decode(self.data, self.key)


@dataclass(frozen=True)
class ArrayImage:
    """A raw HxWx3 uint8 array (CIFAR stores images this way)."""

    key: str
    pixels: bytes
    height: int
    width: int

    @property
    def cache_id(self) -> str:
        return f"array:{self.height}x{self.width}:{hashlib.sha256(self.pixels).hexdigest()}"

    def load(self) -> Image.Image:
        return Image.frombytes("RGB", (self.width, self.height), self.pixels)
