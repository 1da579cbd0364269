"""Videos through the image encoder: a list of inputs with videos in it becomes the list of their sampled
frames (``vlbench.datasets.video``), and the frames' embeddings are pooled back into one per video.

The encoder (``vlbench.encoding.encoder.Encoder``) calls ``expand`` when a task hands it videos and ``pool``
on the frame embeddings; images in the same list pass through as one frame of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from vlbench.datasets.video import VideoFile, decoder_version


def has_videos(refs: Sequence[Any]) -> bool:
    return any(isinstance(ref, VideoFile) for ref in refs)


@dataclass
class Expanded:
    """The frames of a list of inputs: ``frames[i]`` belongs to input ``owners[i]``."""

    refs: Sequence[Any]  # the inputs it was made from (compared by identity)
    frames: list[Any]
    owners: torch.Tensor  # [F] input index of each frame
    renormalise: list[bool]  # per input


def expand(refs: Sequence[Any]) -> Expanded:
    frames: list[Any] = []
    owners: list[int] = []
    for i, ref in enumerate(refs):
        parts = ref.frame_refs() if isinstance(ref, VideoFile) else [ref]
        frames.extend(parts)
        owners.extend([i] * len(parts))
    renormalise = [ref.renormalise if isinstance(ref, VideoFile) else True for ref in refs]
    return Expanded(refs, frames, torch.tensor(owners, dtype=torch.int64), renormalise)


def pool(expanded: Expanded, frame_embeddings: torch.Tensor) -> torch.Tensor:
    """[F, D] frame embeddings (L2-normalised) -> [N, D]: each input's mean frame, renormalised unless its
    protocol says not to."""
    n = len(expanded.refs)
    sums = torch.zeros(n, frame_embeddings.shape[1], dtype=torch.float64).index_add_(0, expanded.owners, frame_embeddings.double())
    counts = torch.bincount(expanded.owners, minlength=n).clamp(min=1).double()
    means = sums / counts[:, None]
    renormalise = torch.tensor(expanded.renormalise)
    norms = means.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return torch.where(renormalise[:, None], means / norms, means).float()


def describe_videos(refs: Sequence[Any] | None) -> dict[str, Any] | None:
    """What a result records of the frame protocol its videos were encoded with (None: no videos)."""
    videos = [ref for ref in refs or () if isinstance(ref, VideoFile)]
    if not videos:
        return None
    protocols = sorted({(v.frames, v.sampling, v.renormalise) for v in videos})
    frames, sampling, renormalise = protocols[0]
    pooling = "mean of the L2-normalised frame embeddings" + (", renormalised" if renormalise else " (not renormalised)")
    return {"videos": len(videos), "frames": frames, "sampling": sampling, "pooling": pooling, "decoder": decoder_version(),
            **({"protocols": [list(p) for p in protocols]} if len(protocols) > 1 else {})}
