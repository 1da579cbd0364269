"""Splitting a (model, task) grid into shards that independent jobs run without coordination.

``--shard K/N`` (K from 0 to N-1, as ``$SLURM_ARRAY_TASK_ID`` with ``--array=0-<N-1>``) takes the
K-th of N contiguous, near-equal blocks of the grid sorted by (model id, task name). The split
depends only on the selected models and tasks, never on which results already exist, so every job
computes the same partition. Contiguous blocks keep one model's tasks together: a shard loads few
models, and tasks that share images (the SugarCrepe subsets) share their embeddings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from vlbench.errors import VLBenchError

Cell = tuple[str, str]  # (model id, task name)


@dataclass(frozen=True)
class Shard:
    index: int  # K, 0-based
    count: int  # N

    @classmethod
    def parse(cls, text: str) -> "Shard":
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise VLBenchError(f"--shard '{text}' must look like K/N, e.g. --shard 0/4 (K from 0 to N-1)")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1:
            raise VLBenchError(f"--shard {text}: N must be at least 1 (K/N runs block K of N, e.g. --shard 0/4)")
        if index >= count:
            raise VLBenchError(f"--shard {text}: K must be 0 to {max(count - 1, 0)} (0-based, as $SLURM_ARRAY_TASK_ID with --array=0-{max(count - 1, 0)})")
        return cls(index, count)

    def select(self, grid: Iterable[Cell]) -> set[Cell]:
        """This shard's cells: block K of the sorted, de-duplicated grid."""
        cells = sorted(set(grid))
        total = len(cells)
        return {cell for i, cell in enumerate(cells) if i * self.count // total == self.index} if total else set()
