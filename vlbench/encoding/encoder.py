"""Batched, cached encoding of images and texts for one run.

Tasks ask the ``Encoder`` for embeddings; it batches inputs through a DataLoader (decoding and
transforms in worker processes), shows progress, and remembers every embedding it computed for
the rest of the run, keyed by the input (image key, or the text itself). The model is fixed for a
run, so the key needs no model part; the transform is part of the image key because tasks may
use more than one (dense features at another size). With a persistent ``cache`` (see
``vlbench.encoding.cache``) it reads embeddings computed by earlier runs and stores new ones;
kinds never see it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from vlbench.datasets.images import ImageRef
from vlbench.encoding.cache import CacheNamespace, image_identity, key_digest, text_identity, transform_identity
from vlbench.errors import VLBenchError
from vlbench.encoding.transport import SplitTransform, Uint8Images
from vlbench.encoding.video_pool import Expanded, expand, has_videos, pool

if TYPE_CHECKING:
    from vlbench.encoding.pixel_cache import PixelStore
    from vlbench.encoding.pixel_memo import PixelMemo


class Progress(Protocol):
    def start(self, description: str, total: int) -> object: ...

    def advance(self, handle: object, amount: int) -> None: ...

    def finish(self, handle: object) -> None: ...


class SilentProgress:
    def start(self, description: str, total: int) -> object:
        return None

    def advance(self, handle: object, amount: int) -> None:
        pass

    def finish(self, handle: object) -> None:
        pass


class _TransformedImages(Dataset):
    def __init__(self, refs: Sequence[ImageRef], transform: Callable):
        self.refs, self.transform = refs, transform

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.refs[i].load())


@contextlib.contextmanager
def loader_errors() -> Iterator[None]:
    """A user error raised in a data-loader worker comes out as the one-line error it was."""
    try:
        yield
    except Exception as exc:
        user_error = user_error_from_worker(exc)
        if user_error is not None:
            raise user_error from None
        raise


def user_error_from_worker(exc: Exception) -> VLBenchError | None:
    """DataLoader re-raises worker errors with the worker traceback in the message; keep our line."""
    if isinstance(exc, VLBenchError):
        lines = [line for line in str(exc).splitlines() if line.strip()]
        last = lines[-1] if lines else str(exc)
        return VLBenchError(last.split(": ", 1)[1] if last.startswith("vlbench.errors.") else last)
    return None


@dataclass
class _ImagePlan:
    keys: list[str]  # per ref: its key in the run's image cache
    todo: list[int]  # refs to encode
    identities: dict[int, str | None]  # per ref to encode: its persistent-cache identity
    batches: Iterable[torch.Tensor] | None = None  # their loader, when started ahead (prefetch_images)


@dataclass
class EncoderStats:
    """What an encoder did for one task: inputs encoded or read from the persistent cache, the wall time spent
    producing image embeddings (waiting for decoded batches included), and images decoded per decoder."""

    images_encoded: int = 0
    images_from_cache: int = 0
    texts_encoded: int = 0
    texts_from_cache: int = 0
    image_seconds: float = 0.0
    images_decoded: dict[str, int] = field(default_factory=dict)  # "pil", "torchvision.io"
    videos: int = 0  # videos encoded as their sampled frames (images_* then count frames)

    def timing(self) -> dict[str, Any]:
        """The fields a result's ``timing`` records of them."""
        rate = round(self.images_encoded / self.image_seconds, 2) if self.images_encoded and self.image_seconds > 0 else None
        return {"images_encoded": self.images_encoded, "images_from_cache": self.images_from_cache, "texts_encoded": self.texts_encoded,
                "texts_from_cache": self.texts_from_cache, "image_encoding_s": round(self.image_seconds, 3), "images_per_s": rate,
                "images_decoded": {k: v for k, v in self.images_decoded.items() if v}, **({"videos": self.videos} if self.videos else {})}


def _copy_to_host(embeddings: torch.Tensor) -> tuple[torch.Tensor, object]:
    """(host tensor, CUDA event marking its copy, or None when the copy is already complete)."""
    if not embeddings.is_cuda:
        return embeddings, None
    host = embeddings.to("cpu", non_blocking=True)  # pinned by torch, filled asynchronously
    copied = torch.cuda.Event()
    copied.record()
    return host, copied


@dataclass
class Encoder:
    """Encodes images and texts with one model, in batches, with a run-wide embedding cache."""

    model: "object"  # a ModelAdapter
    batch_size: int = 64
    num_workers: int = 0
    progress: Progress = field(default_factory=SilentProgress)
    text_batch_size: int = 256
    decode: str = "pil"  # "gpu": JPEGs through vlbench.encoding.gpu_decode (torchvision.io, tensor transforms)
    uint8_transport: bool | None = None  # PIL path: workers send uint8 crops (vlbench.encoding.transport); None: on CUDA
    _image_cache: dict[str, torch.Tensor] = field(default_factory=dict)
    _text_cache: dict[str, torch.Tensor] = field(default_factory=dict)
    cache: "CacheNamespace | None" = None  # the persistent store of this model's embeddings
    stats: "EncoderStats" = field(default_factory=lambda: EncoderStats())  # since the last take_stats()
    _prefetched: "tuple[Sequence[ImageRef], _ImagePlan] | None" = None  # see prefetch_images
    _videos: "Expanded | None" = None  # the frames of the videos prefetch_images was given
    #: transformed crops kept in memory across runs of one process (vlbench.encoding.pixel_memo; vlbench.Evaluator)
    pixel_memo: "PixelMemo | None" = None
    #: the persistent store of transformed crops shared by every model with the same transform geometry (vlbench.encoding.pixel_cache)
    pixel_cache: "PixelStore | None" = None

    def _loader(self, refs: Sequence[ImageRef], transform: Callable) -> Iterable[torch.Tensor]:
        workers = min(self.num_workers, max(0, len(refs) // self.batch_size))
        if self.decode == "gpu" and transform is self.model.image_transform:
            from vlbench.encoding.gpu_decode import fast_images

            fast = fast_images(self.model, self.batch_size, workers, self.stats.images_decoded)
            if fast is not None:
                return fast.batches(refs)
        device = getattr(self.model, "device", torch.device("cpu"))
        uint8 = device.type == "cuda" if self.uint8_transport is None else self.uint8_transport
        wants_split = uint8 or self.pixel_memo is not None or self.pixel_cache is not None
        split = SplitTransform.from_transform(transform) if wants_split else None
        memo_id = transform_identity(repr(transform)) if self.pixel_memo is not None and split is not None else None
        keys = [ref.key for ref in refs] if memo_id is not None else []
        if memo_id is not None and self.pixel_memo.held(memo_id, keys) is not None:  # type: ignore[union-attr]
            self.stats.images_decoded["memory"] = self.stats.images_decoded.get("memory", 0) + len(refs)
            return self.pixel_memo.batches(keys, memo_id, split, self.batch_size, (), device)  # type: ignore[union-attr, arg-type]

        def uint8_loader(todo: Sequence[ImageRef]) -> Iterable[torch.Tensor]:
            busy = min(self.num_workers, max(0, len(todo) // self.batch_size))
            return iter(DataLoader(Uint8Images(todo, split), batch_size=self.batch_size, num_workers=busy,  # type: ignore[arg-type]
                                   pin_memory=device.type == "cuda", prefetch_factor=4 if busy else None))

        if self.pixel_cache is not None and split is not None and memo_id is None:
            stored = self.pixel_cache.batches(refs, split, self.batch_size, uint8_loader, self.stats.images_decoded, pin=device.type == "cuda")
            return (split.levels(pixels.to(device, non_blocking=True)) for pixels in stored)
        self.stats.images_decoded["pil"] = self.stats.images_decoded.get("pil", 0) + len(refs)
        if split is None:
            return iter(DataLoader(_TransformedImages(refs, transform), batch_size=self.batch_size, num_workers=workers,
                                   pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None))  # the workers start now
        batches = uint8_loader(refs)
        if memo_id is not None:  # their crops are kept for the next run with this transform
            return self.pixel_memo.batches(keys, memo_id, split, self.batch_size, batches, device)  # type: ignore[union-attr]
        # uint8 crops cross to the GPU; the model's ToTensor/Normalize values are looked up there
        return (split.levels(pixels.to(device, non_blocking=True)) for pixels in batches)

    def take_stats(self) -> EncoderStats:
        """The statistics gathered since the last call (a task's), and a fresh count for the next."""
        taken, self.stats = self.stats, EncoderStats()
        return taken

    def autocasts(self, autocast: str) -> bool:
        """Whether a call's ``autocast`` changes this model's numbers (cuda_fp16 on a CUDA model)."""
        return autocast == "cuda_fp16" and getattr(getattr(self.model, "device", None), "type", "cpu") == "cuda"

    def prefetch_images(self, refs: Sequence[ImageRef], autocast: str = "none") -> None:
        """Start decoding the images of ``refs`` that need encoding, so that what the caller does
        before iterating them (encoding class prompts, say) overlaps the loader's first batches.
        ``iter_images`` with the same ``refs`` object picks them up."""
        if has_videos(refs):  # their frames are what gets decoded
            self._videos = expand(refs)
            refs = self._videos.frames
        plan = self._plan(refs, autocast)
        if plan.todo:
            plan.batches = self._loader([refs[i] for i in plan.todo], self.model.image_transform)
        self._prefetched = (refs, plan)

    def _plan(self, refs: Sequence[ImageRef], autocast: str = "none") -> "_ImagePlan":
        """Keys of refs, and which of them need encoding (after the run's and the persistent cache)."""
        prefix = self.model.transform_id + ("" if self.decode == "pil" else f"|decode={self.decode}")
        prefix += f"|autocast={autocast}" if self.autocasts(autocast) else ""
        keys = [f"{prefix}|{ref.key}" for ref in refs]
        todo = [i for i, k in enumerate(keys) if k not in self._image_cache]
        identities: dict[int, str | None] = {}
        if todo and self.cache is not None:
            transform_id = transform_identity(prefix)
            identities = {i: image_identity(refs[i], transform_id) for i in todo}
            stored = self._from_cache([identities[i] for i in todo])
            for j, emb in stored.items():
                self._image_cache[keys[todo[j]]] = emb
            self.stats.images_from_cache += len(stored)
            todo = [i for j, i in enumerate(todo) if j not in stored]
        return _ImagePlan(keys, todo, identities)

    def iter_images(self, refs: Sequence[ImageRef], description: str = "images", autocast: str = "none") -> Iterator[tuple[list[int], torch.Tensor]]:
        """Yield (indices into refs, [b, D] embeddings), encoding only uncached images: the cached ones first,
        then the others in the order of ``refs``. Videos among ``refs`` are encoded as their sampled frames, pooled
        (``vlbench.encoding.video_pool``)."""
        if has_videos(refs):
            yield from self._iter_videos(refs, description, autocast)
            return
        prefetched, self._prefetched = self._prefetched, None
        plan = prefetched[1] if prefetched is not None and prefetched[0] is refs else self._plan(refs, autocast)
        extra = {"autocast": autocast} if self.autocasts(autocast) else {}
        keys, todo, identities = plan.keys, plan.todo, plan.identities
        pending = set(todo)
        cached = [i for i in range(len(refs)) if i not in pending]
        for start in range(0, len(cached), self.batch_size):  # batch-sized, as if encoded here
            chunk = cached[start : start + self.batch_size]
            yield chunk, torch.stack([self._image_cache[keys[i]] for i in chunk])
        if not todo:
            return
        transform = self.model.image_transform  # (a model deferred until needed is built here)
        handle = self.progress.start(f"encoding {description}", len(todo))
        position = 0
        in_flight: tuple[list[int], torch.Tensor, object] | None = None
        try:
            with loader_errors():
                started = time.perf_counter()
                batches = plan.batches if plan.batches is not None else self._loader([refs[i] for i in todo], transform)
                for pixels in batches:
                    indices = todo[position : position + len(pixels)]
                    position += len(indices)
                    launched = (indices, *_copy_to_host(self.model.encode_images(pixels, **extra)))
                    # on a GPU a batch is read back once the next one is queued behind it
                    ready = [in_flight] if launched[2] is not None else [in_flight, launched]
                    in_flight = launched if launched[2] is not None else None
                    for finished in ready:
                        if finished is not None:
                            yield self._store(handle, keys, identities, *finished, started)
                            started = time.perf_counter()
                if in_flight is not None:
                    yield self._store(handle, keys, identities, *in_flight, started)
        finally:
            self.progress.finish(handle)

    def _store(self, handle: object, keys: list[str], identities: dict[int, str | None], indices: list[int],
               embeddings: torch.Tensor, copied: object, started: float) -> tuple[list[int], torch.Tensor]:
        """Record one encoded batch (once its copy to the host is complete) in both caches."""
        if copied is not None:
            copied.synchronize()
            # out of page-locked memory: a run keeps its embeddings, and pinned memory is scarce
            embeddings = torch.empty(embeddings.shape, dtype=embeddings.dtype).copy_(embeddings)
        for i, emb in zip(indices, embeddings):
            self._image_cache[keys[i]] = emb
        if self.cache is not None:
            self._to_cache([identities[i] for i in indices], embeddings)
        self.stats.images_encoded += len(indices)
        self.stats.image_seconds += time.perf_counter() - started
        self.progress.advance(handle, len(indices))
        return indices, embeddings

    def _iter_videos(self, refs: Sequence[Any], description: str, autocast: str) -> Iterator[tuple[list[int], torch.Tensor]]:
        expanded = self._videos if self._videos is not None and self._videos.refs is refs else expand(refs)
        self._videos = None
        frames = self.images(expanded.frames, f"{description} frames", autocast)
        self.stats.videos += len(refs)
        pooled = pool(expanded, frames)
        for start in range(0, len(refs), self.batch_size):
            indices = list(range(start, min(start + self.batch_size, len(refs))))
            yield indices, pooled[indices]

    def images(self, refs: Sequence[ImageRef], description: str = "images", autocast: str = "none") -> torch.Tensor:
        """[N, D] embeddings of all refs, in order."""
        out: torch.Tensor | None = None
        for indices, embeddings in self.iter_images(refs, description, autocast):
            if out is None:
                out = torch.empty(len(refs), embeddings.shape[1])
            out[indices] = embeddings
        if out is None:
            raise VLBenchError(f"no {description} to encode")
        return out

    def texts(self, texts: Sequence[str], description: str = "texts", autocast: str = "none") -> torch.Tensor:
        """[N, D] embeddings of texts, in order; each distinct text is encoded once per run (per autocast)."""
        extra = {"autocast": autocast} if self.autocasts(autocast) else {}
        mode = getattr(self.model, "text_padding_mode", "default") + (f"|autocast={autocast}" if extra else "")
        key = (lambda t: t) if not extra else (lambda t: f"{t}\0{mode}")  # the run-wide cache's key of a text
        todo = list(dict.fromkeys(t for t in texts if key(t) not in self._text_cache))
        if todo and self.cache is not None:
            stored = self._from_cache([text_identity(t, mode) for t in todo])
            for j, emb in stored.items():
                self._text_cache[key(todo[j])] = emb
            self.stats.texts_from_cache += len(stored)
            todo = [t for j, t in enumerate(todo) if j not in stored]
        if getattr(self.model, "trims_text_padding", False):
            todo.sort(key=len)  # similar lengths share a batch, trimmed to its longest caption
        if todo:
            handle = self.progress.start(f"encoding {description}", len(todo))
            for start in range(0, len(todo), self.text_batch_size):
                chunk = todo[start : start + self.text_batch_size]
                embeddings = self.model.encode_texts(chunk, **extra).cpu()
                for text, emb in zip(chunk, embeddings):
                    self._text_cache[key(text)] = emb
                if self.cache is not None:
                    self._to_cache([text_identity(t, mode) for t in chunk], embeddings)
                self.stats.texts_encoded += len(chunk)
                self.progress.advance(handle, len(chunk))
            self.progress.finish(handle)
        if not texts:
            raise VLBenchError(f"no {description} to encode")
        return torch.stack([self._text_cache[key(t)] for t in texts])

    def _from_cache(self, identities: Sequence[str | None]) -> dict[int, torch.Tensor]:
        """{position: embedding} of the identities the persistent cache holds."""
        wanted = [(j, key_digest(identity)) for j, identity in enumerate(identities) if identity is not None]
        found = self.cache.get_many([key for _, key in wanted])
        return {wanted[position][0]: emb for position, emb in found.items()}

    def _to_cache(self, identities: Sequence[str | None], embeddings: torch.Tensor) -> None:
        rows = [j for j, identity in enumerate(identities) if identity is not None]
        if rows:
            self.cache.put_many([key_digest(identities[j]) for j in rows], embeddings[rows])
