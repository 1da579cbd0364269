"""The opt-in fast image path, ``--decode gpu``: JPEG decoding with torchvision.io, batched on the
GPU, and the model's own resize, center crop and normalisation applied as tensor operations.

The default path decodes with PIL in data-loader workers and reproduces the reference numbers; this
one moves decoding off the CPU, which is what limits large GPU runs. Its pixels differ slightly
(libjpeg vs nvJPEG decoding, tensor vs PIL resampling), so results differ slightly too:
``benchmarks/gpu_pipeline.py`` measures how much. Inputs it cannot take keep the PIL path, image by
image: non-JPEG files, crops (grounding proposals), generated images, images the decoder refuses.
A model whose transform is not made of torchvision Resize / CenterCrop / ToTensor / Normalize
(e.g. a transformers image processor) keeps the PIL path for all its images.

Without CUDA, ``--decode gpu`` decodes with torchvision.io on the CPU, in the data-loader workers:
the same tensor pipeline, for checking its numbers on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from vlbench.datasets.images import BytesImage, FileImage, ImageRef, TarMemberImage
from vlbench.encoding.transport import LevelTable, is_rgb_conversion, level_table

JPEG_MAGIC = b"\xff\xd8\xff"
TORCHVISION, PIL = "torchvision.io", "pil"  # how an image was decoded (counted per task: timing.images_decoded)


@dataclass(frozen=True)
class TensorTransform:
    """The model's PIL transform as tensor operations on a uint8 [3, H, W] image."""

    geometry: tuple[Callable[[torch.Tensor], torch.Tensor], ...]  # Resize, CenterCrop (accept tensors)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    levels: LevelTable  # ToTensor + Normalize of each uint8 level, as the CPU computes them

    @classmethod
    def from_transform(cls, transform: Any) -> "TensorTransform | None":
        """Read a torchvision Compose of Resize / CenterCrop / RGB conversion / ToTensor / Normalize;
        None for anything else (that model keeps the PIL path)."""
        from torchvision import transforms as T

        geometry: list[Callable] = []
        mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None
        to_tensor = False
        for step in getattr(transform, "transforms", None) or []:
            if isinstance(step, (T.Resize, T.CenterCrop)) and not to_tensor:
                geometry.append(step)
            elif isinstance(step, T.ToTensor):
                to_tensor = True
            elif isinstance(step, T.Normalize) and to_tensor and mean_std is None:
                mean_std = (tuple(map(float, step.mean)), tuple(map(float, step.std)))
            elif is_rgb_conversion(step):
                continue  # torchvision.io decodes to RGB already
            else:
                return None
        if not to_tensor:
            return None
        mean, std = mean_std or ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        return cls(tuple(geometry), mean, std, LevelTable(level_table(T.Normalize(mean, std))))

    def geometric(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 [..., 3, H, W] -> uint8 [..., 3, h, w], resized and cropped as the PIL transform would."""
        for step in self.geometry:
            image = step(image)
        return image

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [..., 3, h, w] -> float, scaled to 0-1 and normalised (the CPU's values, by lookup)."""
        return self.levels(images)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.normalise(self.geometric(image))


def encoded_jpeg(ref: ImageRef) -> bytes | None:
    """The JPEG bytes behind a ref, or None when it is not a whole JPEG file, member or blob."""
    if isinstance(ref, FileImage) and ref.box is None:
        with open(ref.path, "rb") as f:
            data = f.read()
    elif isinstance(ref, TarMemberImage):
        with open(ref.shard, "rb") as f:
            f.seek(ref.offset)
            data = f.read(ref.size)
    elif isinstance(ref, BytesImage):
        data = ref.data
    else:
        return None
    return data if data.startswith(JPEG_MAGIC) else None


def decode_jpeg(data: torch.Tensor | list[torch.Tensor], device: torch.device | str = "cpu") -> Any:
    """torchvision.io.decode_jpeg to RGB, without its notice that decoders move to TorchCodec (0.29+)."""
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_jpeg as torchvision_decode_jpeg

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities", category=DeprecationWarning)
        return torchvision_decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def decode_on_cpu(data: bytes) -> torch.Tensor | None:
    try:
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    except RuntimeError:
        return None


class _Inputs(Dataset):
    """Per image: ("jpeg", bytes) to decode on the GPU, or (TORCHVISION or PIL: how it was decoded, transformed tensor)."""

    def __init__(self, refs: Sequence[ImageRef], transform: Callable, tensor_transform: TensorTransform, decode_here: bool):
        self.refs, self.transform, self.tensor_transform, self.decode_here = refs, transform, tensor_transform, decode_here

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> tuple[str, Any]:
        data = encoded_jpeg(self.refs[i])
        if data is not None and not self.decode_here:
            return "jpeg", data
        decoded = decode_on_cpu(data) if data is not None else None
        if decoded is not None:
            return TORCHVISION, self.tensor_transform(decoded)
        return PIL, self.transform(self.refs[i].load())


@dataclass
class _Batch:
    """One batch as it leaves a loader worker: every JPEG payload packed into one uint8 tensor (one
    shared-memory block per batch rather than one per image), pixel fallbacks beside it."""

    kinds: list[str]
    packed: torch.Tensor  # the JPEG payloads, end to end
    lengths: list[int]  # bytes of each payload, in order
    pixels: list[torch.Tensor]  # the "pixels" items, in order

    def jpegs(self) -> list[torch.Tensor]:
        return list(torch.split(self.packed, self.lengths)) if self.lengths else []


def _collate(items: list[tuple[str, Any]]) -> _Batch:
    payloads = [payload for what, payload in items if what == "jpeg"]
    packed = torch.frombuffer(bytearray(b"".join(payloads)), dtype=torch.uint8) if payloads else torch.empty(0, dtype=torch.uint8)
    return _Batch([what for what, _ in items], packed, [len(p) for p in payloads], [payload for what, payload in items if what != "jpeg"])


def fast_images(model: Any, batch_size: int, num_workers: int, counts: dict[str, int] | None = None) -> "FastImages | None":
    """The fast path for a model's own image transform, or None when that transform is not supported;
    ``counts`` (if given) gains one per image under the decoder that took it (TORCHVISION or PIL)."""
    tensor_transform = TensorTransform.from_transform(model.image_transform)
    if tensor_transform is None:
        return None
    return FastImages(model.image_transform, tensor_transform, model.device, batch_size, num_workers, {} if counts is None else counts)


class FastImages:
    """Batches of model-ready pixels on the model's device, in the order of ``refs``."""

    def __init__(self, transform: Callable, tensor_transform: TensorTransform, device: torch.device, batch_size: int, num_workers: int,
                 counts: dict[str, int] | None = None):
        self.transform, self.tensor_transform = transform, tensor_transform
        self.device, self.batch_size, self.num_workers = device, batch_size, num_workers
        self.counts = {} if counts is None else counts

    def batches(self, refs: Sequence[ImageRef], decode_in_workers: bool | None = None) -> Iterator[torch.Tensor]:
        """Model-ready batches; JPEGs are decoded in the loader workers without CUDA (or when
        ``decode_in_workers``), else as one batch on the model's device."""
        on_gpu = self.device.type == "cuda"
        loader = DataLoader(
            _Inputs(refs, self.transform, self.tensor_transform, decode_here=not on_gpu if decode_in_workers is None else decode_in_workers),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=False,  # _Batch is no tensor; pixels are copied non-blocking below
            prefetch_factor=4 if self.num_workers else None,
        )
        assembled = self._assembled(iter(loader), refs)  # the workers start decoding now
        # on the GPU, decoding (nvJPEG's host-side work included) and resizing run in a thread on a
        # stream of their own, so that the next batch is being decoded while the model runs
        return in_background(assembled, self.device) if on_gpu else assembled

    def _assembled(self, loader: Iterable[_Batch], refs: Sequence[ImageRef]) -> Iterator[torch.Tensor]:
        start = 0
        for batch in loader:
            yield self._assemble(batch, refs[start : start + len(batch.kinds)])
            start += len(batch.kinds)

    def _assemble(self, batch: _Batch, refs: Sequence[ImageRef]) -> torch.Tensor:
        jpegs = [i for i, what in enumerate(batch.kinds) if what == "jpeg"]
        decoded = self._decode_on_gpu(batch.jpegs()) if jpegs else []
        out: list[torch.Tensor | None] = [None] * len(batch.kinds)
        ready = [(i, image) for i, image in zip(jpegs, decoded) if image is not None]
        same_size: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
        for i, image in ready:  # images of one size are resized and cropped together
            same_size.setdefault(tuple(image.shape), []).append((i, image))
        for group in same_size.values():
            pixels = self.tensor_transform(torch.stack([image for _, image in group]))
            for (i, _), row in zip(group, pixels):
                out[i] = row
        fallbacks = iter(batch.pixels)
        for i, what in enumerate(batch.kinds):
            if what != "jpeg":  # decoded in the worker
                out[i] = next(fallbacks).to(self.device, non_blocking=True)
            elif out[i] is None:  # the GPU decoder refused it: the PIL path
                out[i] = self.transform(refs[i].load()).to(self.device, non_blocking=True)
                what = PIL
            else:
                what = TORCHVISION
            self.counts[what] = self.counts.get(what, 0) + 1
        return torch.stack(out)  # type: ignore[arg-type]

    def _decode_on_gpu(self, encoded: list[torch.Tensor]) -> list[torch.Tensor | None]:
        try:
            return list(decode_jpeg(encoded, device=self.device))
        except (RuntimeError, TypeError):  # one bad image fails the batch (or torchvision < 0.19 has no batched decode)
            results: list[torch.Tensor | None] = []
            for data in encoded:
                try:
                    results.append(decode_jpeg(data, device=self.device))
                except RuntimeError:
                    results.append(None)
            return results


_DONE = object()


def in_background(batches: Iterator[torch.Tensor], device: torch.device, depth: int = 2) -> Iterator[torch.Tensor]:
    """``batches``, produced by a thread up to ``depth`` ahead; on CUDA the thread works on a
    stream of its own and each batch is handed over with an event, so the consumer's stream waits
    for exactly that batch's work. Errors in the thread are raised here; closing stops the thread."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                for batch in batches:
                    event = None
                    if stream is not None:
                        event = torch.cuda.Event()
                        event.record(stream)
                    if not put((batch, event)):
                        return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        else:
            put(_DONE)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:  # a generator over a DataLoader: its workers shut down now
                close()

    worker = threading.Thread(target=produce, name="vlbench-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            batch, event = item
            if event is not None:
                consumer = torch.cuda.current_stream(device)
                consumer.wait_event(event)
                batch.record_stream(consumer)  # its memory came from the producer's stream
            yield batch
    finally:
        stop.set()
        worker.join(timeout=5)
