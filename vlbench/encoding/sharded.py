"""The encoder of a data-parallel run: each torchrun rank encodes every N-th input, all ranks get all embeddings.

The kinds call it as they call the ordinary ``Encoder`` (``vlbench.distributed`` holds the world it splits by).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from vlbench.datasets.images import ImageRef
from vlbench.distributed import all_gather, current
from vlbench.encoding.encoder import Encoder
from vlbench.errors import VLBenchError


class ShardedEncoder(Encoder):
    """An Encoder whose work is split across ranks; results are identical on every rank."""

    def prefetch_images(self, refs: Sequence[ImageRef], autocast: str = "none") -> None:
        pass  # each rank encodes its own share, chosen in iter_images

    def iter_images(self, refs: Sequence[ImageRef], description: str = "images", autocast: str = "none") -> Iterator[tuple[list[int], torch.Tensor]]:
        world = current()
        mine = world.mine(range(len(refs)))
        local: dict[int, torch.Tensor] = {}
        if mine:
            for indices, embeddings in super().iter_images([refs[i] for i in mine], description, autocast):
                local.update((mine[j], e) for j, e in zip(indices, embeddings))
        order = sorted(local)
        parts = all_gather((order, torch.stack([local[i] for i in order]) if order else None))
        dims = [p[1].shape[1] for p in parts if p[1] is not None]
        if not dims:
            return
        out = torch.empty(len(refs), dims[0])
        for indices, embeddings in parts:
            if indices:
                out[indices] = embeddings
        for start in range(0, len(refs), self.batch_size):  # in order, in batches, as one process would
            indices = list(range(start, min(start + self.batch_size, len(refs))))
            yield indices, out[start : start + len(indices)]

    def texts(self, texts: Sequence[str], description: str = "texts", autocast: str = "none") -> torch.Tensor:
        if not texts:
            raise VLBenchError(f"no {description} to encode")
        mine = current().mine(list(dict.fromkeys(texts)))
        local = super().texts(mine, description, autocast) if mine else None
        table: dict[str, torch.Tensor] = {}
        for part_texts, part in all_gather((mine, local)):
            if part is not None:
                table.update(zip(part_texts, part))
        return torch.stack([table[t] for t in texts])


def encoder_class() -> type[Encoder]:
    return ShardedEncoder if current().active else Encoder
