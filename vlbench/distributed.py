"""Data parallel runs under torchrun: ``torchrun --nproc-per-node N -m vlbench run ...``.

Every rank plans the same run and calls the encoder in the same order. The ``ShardedEncoder``
(``vlbench.encoding.sharded``) gives each rank every N-th input of a request (images, crops, texts),
encodes it with the ordinary encoder, and gathers the embeddings from all ranks in input order, so the
task kinds and metrics run unchanged. This module holds the world: the ranks, their process group, and
gathering. Kinds that work per item rather than through the encoder (segmentation) take every
N-th item themselves (``RunContext.item_shard``) and their records are gathered on rank 0. Only
rank 0 scores and writes result files; the other ranks write nothing and print only errors.
A library call inside a job that already has a process group (``vlbench.Evaluator`` in a DDP training
loop) joins that group instead (``adopt``).

The process group comes from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT): NCCL when the run uses CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

import torch

from vlbench.errors import VLBenchError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def mine(self, items: Sequence[T]) -> list[T]:
        """Every world_size-th item, starting at this rank (balanced to within one item)."""
        return list(items[self.rank :: self.world_size])


_world = World()


def current() -> World:
    """The world of this process (rank 0 of 1 unless ``init`` found torchrun's variables)."""
    return _world


def world_from_env(environ: dict[str, str] | None = None) -> World:
    env = os.environ if environ is None else environ
    try:
        return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise VLBenchError(f"RANK / WORLD_SIZE / LOCAL_RANK must be whole numbers: {exc}") from None


def init(device: str) -> World:
    """Join torchrun's process group, if the process was started by torchrun; returns the world."""
    global _world
    world = world_from_env()
    if not world.active:
        return world
    import torch.distributed as dist

    if not dist.is_available():
        raise VLBenchError("this torch build has no torch.distributed; run without torchrun")
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        gpus = torch.cuda.device_count()
        # every rank checks the machine's process count, so none waits for a rank that stopped
        local = os.environ.get("LOCAL_WORLD_SIZE", "")
        local_processes = int(local) if local.isdigit() else world.local_rank + 1
        if max(local_processes, world.local_rank + 1) > gpus:
            raise VLBenchError(
                f"torchrun started more processes on this machine than it has GPUs ({gpus}); "
                f"use --nproc-per-node {gpus} (one process per GPU), or add --device cpu"
            )
        torch.cuda.set_device(world.local_rank)  # "cuda" then means this rank's GPU
    if not dist.is_initialized():
        if use_cuda:
            dist.init_process_group("nccl", device_id=torch.device("cuda", world.local_rank))
        else:
            dist.init_process_group("gloo")
    _world = world
    return world


def adopt() -> World:
    """This process's place in a process group its caller set up (a DDP training script, Lightning), so
    that a library call inside a data-parallel job shares the work with no setup of its own; the group
    stays the caller's (``shutdown`` leaves it alone)."""
    global _world
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        _world = World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return _world


def shutdown() -> None:
    global _world
    import torch.distributed as dist

    if _world.active and dist.is_initialized():
        dist.destroy_process_group()
    _world = World()


def barrier() -> None:
    if _world.active:
        import torch.distributed as dist

        dist.barrier()


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if not _world.active:
        return [obj]
    import torch.distributed as dist

    gathered: list[Any] = [None] * _world.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast(obj: T) -> T:
    """Rank 0's ``obj`` on every rank."""
    if not _world.active:
        return obj
    import torch.distributed as dist

    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-item records of all ranks, in item order (``i``)."""
    merged = [r for part in all_gather(records) for r in part]
    return sorted(merged, key=lambda r: r["i"])
