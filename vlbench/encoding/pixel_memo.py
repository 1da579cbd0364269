"""Transformed images held in memory between runs of one process (``vlbench.Evaluator``), as uint8 crops.

A model's transform, cut before ToTensor (``vlbench.encoding.transport.SplitTransform``), turns an image
into a uint8 crop; the rest (ToTensor, Normalize) is a table lookup that gives the very float pixels the
full transform gives. The memo keeps the crops of every image it has seen, per transform identity (its
repr without memory addresses) and image key, up to a byte budget; the next run with the same transform
takes them from memory instead of decoding and resizing again. A transform that cannot be split (a
transformers image processor) is not memoised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import torch

from vlbench.encoding.transport import SplitTransform


@dataclass
class PixelMemo:
    budget_bytes: int
    crops: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)  # (transform identity, image key) -> uint8 [3, H, W]
    bytes: int = 0

    def held(self, transform_id: str, keys: Sequence[str]) -> list[torch.Tensor] | None:
        """The crops of every key, or None when one is missing."""
        out = [self.crops.get((transform_id, key)) for key in keys]
        return None if any(crop is None for crop in out) else out  # type: ignore[return-value]

    def keep(self, transform_id: str, keys: Sequence[str], batch: torch.Tensor) -> None:
        for key, crop in zip(keys, batch):
            size = crop.numel() * crop.element_size()
            if (transform_id, key) in self.crops or self.bytes + size > self.budget_bytes:
                continue
            self.crops[(transform_id, key)] = crop.clone()
            self.bytes += size

    def batches(self, keys: Sequence[str], transform_id: str, split: SplitTransform, batch_size: int, uint8_batches: Iterable[torch.Tensor],
                device: torch.device) -> Iterator[torch.Tensor]:
        """Float pixel batches for ``keys``: from memory when every crop is held, else from ``uint8_batches``
        (the loader's, in key order), keeping their crops."""
        held = self.held(transform_id, keys)
        if held is not None:
            for start in range(0, len(held), batch_size):
                yield split.levels(torch.stack(held[start : start + batch_size]).to(device))
            return
        position = 0
        for batch in uint8_batches:
            self.keep(transform_id, keys[position : position + len(batch)], batch)
            position += len(batch)
            yield split.levels(batch.to(device, non_blocking=True))
