"""The exact (PIL) image path on a GPU, with a quarter of the data moved.

A model's transform ends with ToTensor and Normalize: uint8 pixels become float32, four bytes each.
Done in the loader workers, every batch then crosses shared memory, pinned memory and PCIe as
float32. On a GPU the workers here stop before ToTensor and send the uint8 crop; the device turns it
into the normalised float pixels by table lookup. The table holds, per channel, the value each of
the 256 levels gets from the model's own ToTensor and Normalize, computed on the CPU with those very
steps, so the pixels are bit for bit the ones the full transform gives (no GPU arithmetic involved:
CUDA divides by a Python scalar as a multiplication by its reciprocal, which is not bit-exact).

Used when the transform is a torchvision Compose whose steps up to ToTensor end in an RGB
conversion and whose only step after ToTensor is Normalize (open_clip's, for one). Anything else,
e.g. a transformers image processor, keeps the full transform in the workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vlbench.datasets.images import ImageRef

LEVELS = 256


def is_rgb_conversion(step: Any) -> bool:
    """open_clip's ``_convert_to_rgb`` (2.x) or ``MaybeConvertMode('RGB')`` (3.x), and alike."""
    return getattr(step, "mode", None) == "RGB" or getattr(step, "__name__", "") == "_convert_to_rgb"


def level_table(normalize: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
    """[3, 256] float32: what ToTensor (then ``normalize``) makes of each uint8 level, per channel."""
    from torchvision.transforms import functional as F

    levels = np.repeat(np.arange(LEVELS, dtype=np.uint8).reshape(1, LEVELS, 1), 3, axis=2)  # a 1x256 RGB image
    values = F.to_tensor(levels)  # [3, 1, 256], by the same code ToTensor runs on an image
    if normalize is not None:
        values = normalize(values)
    return values[:, 0, :].contiguous()


def _plain_to_tensor(step: Any) -> bool:
    """torchvision's ToTensor, or open_clip's MaybeToTensor (the same on PIL images); a subclass
    with its own behaviour is not what the table reproduces."""
    from torchvision import transforms as T

    kind = type(step)
    return kind.__call__ is T.ToTensor.__call__ or (kind.__name__ == "MaybeToTensor" and kind.__module__.startswith("open_clip"))


@dataclass(frozen=True)
class LevelTable:
    """uint8 [..., 3, H, W] -> the float pixels of ToTensor (+ Normalize), by lookup."""

    table: torch.Tensor  # [3, 256]
    _per_device: dict = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        # copied once per device: a copy from pageable memory per batch would wait for the GPU to drain
        table, channel = self._per_device.get(pixels.device) or self._per_device.setdefault(
            pixels.device, (self.table.reshape(-1).to(pixels.device), torch.arange(3, device=pixels.device).view(3, 1, 1) * LEVELS))
        return table[pixels.long() + channel]

    def __reduce__(self) -> tuple:  # to loader workers without the device copies
        return (LevelTable, (self.table,))


@dataclass(frozen=True)
class SplitTransform:
    """A transform cut before ToTensor: PIL steps in the workers, the rest as a level table."""

    pil_steps: tuple[Callable, ...]
    levels: LevelTable

    @classmethod
    def from_transform(cls, transform: Any) -> "SplitTransform | None":
        from torchvision import transforms as T

        steps = list(getattr(transform, "transforms", None) or [])
        cut = next((i for i, step in enumerate(steps) if isinstance(step, T.ToTensor)), None)
        if cut is None or cut == 0 or not is_rgb_conversion(steps[cut - 1]) or not _plain_to_tensor(steps[cut]):
            return None
        tail = steps[cut + 1 :]
        if len(tail) > 1 or (tail and not (isinstance(tail[0], T.Normalize) and type(tail[0]).forward is T.Normalize.forward)):
            return None
        return cls(tuple(steps[:cut]), LevelTable(level_table(tail[0] if tail else None)))

    def to_uint8(self, image: Any) -> torch.Tensor:
        """PIL image -> uint8 [3, H, W]: the model's steps up to ToTensor, and the bytes ToTensor reads."""
        for step in self.pil_steps:
            image = step(image)
        return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()


class Uint8Images(Dataset):
    """The workers' half of a split transform: uint8 crops, in the order of ``refs``."""

    def __init__(self, refs: Sequence[ImageRef], split: SplitTransform):
        self.refs, self.split = refs, split

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.split.to_uint8(self.refs[i].load())
