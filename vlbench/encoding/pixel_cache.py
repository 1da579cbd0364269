"""A persistent store of transformed images (uint8 crops), shared by every model and run whose transform has
the same geometry: a lab evaluating many checkpoints of one architecture decodes each image once.

A model's transform, cut before ToTensor (``vlbench.encoding.transport.SplitTransform``), turns an image into
a uint8 crop; the rest is a lookup table that gives the very float pixels of the full transform. The crops
depend only on the geometric steps (resize, crop, interpolation, the RGB conversion) and on the libraries
that run them, so the store's namespace is a digest of those steps' repr and the Pillow and torchvision
versions, and an entry's key is the image's identity (its ``cache_id``: a file's path, size and mtime, a tar
member's offset, a generated scene's recipe) -- as the embedding cache keys images. Images that cannot say
what they are (no ``cache_id``) are decoded every time.

The files are the embedding cache's (``vlbench.encoding.cache.CacheNamespace``): per writing process an
append-only ``.dat`` of payloads (a 12-byte shape header, then the crop's bytes, contiguous) and an ``.idx``
of checksummed records; a killed writer leaves at worst a torn last record, a damaged payload fails its
checksum and is decoded again (one warning), concurrent writers never share a file. Reads go through the
operating system's page cache one crop at a time, so resident memory stays bounded by a batch. A size budget
evicts the least recently used writer files (a file's mtime is renewed whenever a run reads from it), so
datasets no run has touched for longest go first. Layout: ``<cache dir>/pixels/v1/<namespace>/``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from vlbench.datasets.images import ImageRef
from vlbench.encoding.cache import CacheNamespace, _warn, folder_entries, key_digest, transform_identity, write_json_atomically
from vlbench.encoding.transport import SplitTransform

LAYOUT = "v1"
FOLDER = "pixels"
DEFAULT_BUDGET_GB = 50.0
_SHAPE = struct.Struct("<III")


def geometry_identity(split: SplitTransform) -> dict[str, str]:
    """What decides a crop's bytes: the steps before ToTensor and the libraries that run them."""
    import PIL
    import torchvision

    return {"steps": transform_identity(repr(list(split.pil_steps))), "pillow": PIL.__version__, "torchvision": torchvision.__version__}


def encode_crop(crop: torch.Tensor) -> bytes:
    c, h, w = crop.shape
    return _SHAPE.pack(c, h, w) + crop.contiguous().numpy().tobytes()


def decode_crop(payload: bytes) -> torch.Tensor | None:
    """The uint8 [3, H, W] crop of a payload, or None when its header and length disagree."""
    if len(payload) < _SHAPE.size:
        return None
    c, h, w = _SHAPE.unpack_from(payload)
    if len(payload) != _SHAPE.size + c * h * w:
        return None
    return torch.frombuffer(bytearray(payload[_SHAPE.size:]), dtype=torch.uint8).view(c, h, w)


@dataclass
class PixelStore:
    """The pixel cache folder: one namespace per transform geometry; ``batches`` for the encoder, ``info``,
    ``clear`` and ``evict`` for the CLI and the end of a run."""

    root: Path  # the cache dir; the store lives in <root>/pixels
    budget_bytes: int = int(DEFAULT_BUDGET_GB * 1e9)
    warn: Callable[[str], None] = _warn
    _namespaces: dict[str, CacheNamespace] = field(default_factory=dict)

    @property
    def base(self) -> Path:
        return Path(self.root).expanduser() / FOLDER / LAYOUT

    def namespace(self, identity: dict[str, str]) -> CacheNamespace:
        """The namespace of one geometry (``geometry_identity`` for a model's transform; a kind's own steps for
        images it prepares itself, e.g. segmentation's resize)."""
        name = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
        if name not in self._namespaces:
            path = self.base / name
            if not (path / "meta.json").is_file():
                path.mkdir(parents=True, exist_ok=True)
                write_json_atomically(path / "meta.json", identity, indent=1)  # concurrent writers write the same content
            self._namespaces[name] = CacheNamespace(path, warn=self.warn, what="pixel")
        return self._namespaces[name]

    def lookup(self, refs: Sequence[ImageRef], identity: dict[str, str], stats: dict[str, int]) -> "StoredCrops | None":
        """Which of ``refs`` have a stored crop under ``identity`` (nothing read yet); None, with a warning, when the
        store cannot be written. ``stats`` counts images per path ("pixel_cache", "pil")."""
        try:
            namespace = self.namespace(identity)
        except OSError as exc:
            self.warn(f"pixel cache not used: cannot write {self.base} ({exc.strerror or exc})")
            return None
        identities = [getattr(ref, "cache_id", None) for ref in refs]
        keyed = [i for i, image_id in enumerate(identities) if image_id is not None]
        keys = {i: key_digest(f"pixels|{identities[i]}") for i in keyed}
        stored = {keyed[position] for position in namespace.present([keys[i] for i in keyed])}
        stats["pixel_cache"] = stats.get("pixel_cache", 0) + len(stored)
        stats["pil"] = stats.get("pil", 0) + len(refs) - len(stored)
        return StoredCrops(namespace, keys, stored, stats)

    def batches(self, refs: Sequence[ImageRef], split: SplitTransform, batch_size: int,
                decode: Callable[[list[ImageRef]], Iterable[torch.Tensor]], stats: dict[str, int], pin: bool = False) -> Iterator[torch.Tensor]:
        """uint8 batches of ``refs`` in order: stored crops read back as their batch is built (resident memory: a
        batch), the others decoded by ``decode`` (the loader, in the order given; started here, so that its workers
        decode while the caller does other work) and stored. ``pin``: each batch is assembled in page-locked memory,
        so that its copy to a CUDA device runs asynchronously."""
        crops = self.lookup(refs, geometry_identity(split), stats)
        if crops is None:
            stats["pil"] = stats.get("pil", 0) + len(refs)
            return iter(decode(list(refs)))
        missing = [i for i in range(len(refs)) if i not in crops.stored]
        decoded = (crop for batch in (decode([refs[i] for i in missing]) if missing else ()) for crop in batch)
        return self._merged(refs, crops, split, decoded, batch_size, pin)

    @staticmethod
    def _merged(refs: Sequence[ImageRef], crops: "StoredCrops", split: SplitTransform, decoded: Iterator[torch.Tensor],
                batch_size: int, pin: bool = False) -> Iterator[torch.Tensor]:
        def stacked(batch: list[torch.Tensor]) -> torch.Tensor:
            if not pin or len({tuple(crop.shape) for crop in batch}) != 1:
                return torch.stack(batch)
            out = torch.empty((len(batch), *batch[0].shape), dtype=batch[0].dtype, pin_memory=True)  # torch's caching host allocator
            return torch.stack(batch, out=out)

        batch: list[torch.Tensor] = []
        for i in range(len(refs)):
            if i in crops.stored:
                batch.append(crops.read(i, lambda i=i: split.to_uint8(refs[i].load())))
            else:
                batch.append(crops.put(i, next(decoded)))
            if len(batch) == batch_size:
                yield stacked(batch)
                batch = []
        if batch:
            yield stacked(batch)
        crops.finish()

    def close(self) -> None:
        """Close the namespaces' files, then keep the store within its budget."""
        for namespace in self._namespaces.values():
            namespace.close()
        self._namespaces.clear()
        self.evict()

    # -- the folder --------------------------------------------------------------------------------
    def writer_files(self) -> list[tuple[Path, Path, int, float]]:
        """(data file, index file, bytes, last used) of every writer, oldest use first."""
        found = []
        for index in self.base.glob("*/*.idx"):
            data = index.with_suffix(".dat")
            try:
                size = index.stat().st_size + (data.stat().st_size if data.exists() else 0)
                used = max(data.stat().st_mtime if data.exists() else 0.0, index.stat().st_mtime)
            except OSError:
                continue
            found.append((data, index, size, used))
        return sorted(found, key=lambda row: row[3])

    def evict(self) -> int:
        """Delete the least recently used writer files until the store fits its budget; returns the bytes freed."""
        files = self.writer_files()
        total, freed = sum(size for *_, size, _ in files), 0
        for data, index, size, _ in files:
            if total - freed <= self.budget_bytes:
                break
            for path in (index, data):  # the index first: a reader never trusts records whose payloads are gone
                path.unlink(missing_ok=True)
            freed += size
        return freed

    def info(self) -> list[dict[str, Any]]:
        """Per namespace: its geometry, entries (distinct keys) and bytes on disk."""
        rows = []
        for meta in sorted(self.base.glob("*/meta.json")):
            try:
                identity = json.loads(meta.read_text())
            except (OSError, ValueError):
                identity = {}
            entries, size = folder_entries(meta.parent)
            rows.append({"namespace": meta.parent.name, **(identity if isinstance(identity, dict) else {}), "entries": entries, "bytes": size})
        return rows

    def clear(self) -> int:
        """Remove every namespace; returns how many were removed."""
        removed = len(list(self.base.glob("*/meta.json"))) if self.base.is_dir() else 0
        shutil.rmtree(self.base.parent, ignore_errors=True)
        return removed


@dataclass
class StoredCrops:
    """The crops of one list of images in one namespace: which are stored, reading them one at a time, adding the
    ones decoded now. A stored crop that proves damaged when read is decoded on the spot and stored again."""

    namespace: CacheNamespace
    keys: dict[int, bytes]  # position -> key, for the images that say what they are
    stored: set[int]
    stats: dict[str, int]
    damaged: int = 0

    def read(self, i: int, decode_here: Callable[[], torch.Tensor]) -> torch.Tensor:
        payload, bad = self.namespace.get_payload(self.keys[i])
        self.damaged += bad
        crop = decode_crop(payload) if payload is not None else None
        if crop is None:
            self.damaged += payload is not None  # a valid checksum over a payload of the wrong shape
            self.stats["pixel_cache"] -= 1
            self.stats["pil"] += 1
            crop = self.put(i, decode_here())
        return crop

    def put(self, i: int, crop: torch.Tensor) -> torch.Tensor:
        if i in self.keys:
            self.namespace.put_payloads([self.keys[i]], [encode_crop(crop.cpu())])
        return crop

    def finish(self) -> None:
        """Say (once) how many damaged entries were met."""
        self.namespace.warn_damaged(self.damaged)
        self.damaged = 0
