"""Pixel-adaptive mask refinement (PAMR; Araslanov & Roth, CVPR 2020), as SCLIP and NACLIP use it.

For each pixel p and each neighbour p + o (the 8 neighbours at every dilation d): affinity
``a(p, o) = mean_k -|I_k(p) - I_k(p+o)| / (1e-8 + 0.1 * sigma_k(p))``, where sigma_k is the
(unbiased) standard deviation of channel k over the 3x3 windows at every dilation, centre
included; the affinities are softmax-normalised over the neighbours. Each iteration replaces every
logit by the affinity-weighted mean of its neighbours' logits. Borders replicate.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def _offsets(dilations: Sequence[int], centre: bool) -> list[tuple[int, int]]:
    return [(dy * d, dx * d) for d in dilations for dy in (-1, 0, 1) for dx in (-1, 0, 1) if centre or (dy, dx) != (0, 0)]


def _shift(padded: torch.Tensor, pad: int, dy: int, dx: int, height: int, width: int) -> torch.Tensor:
    return padded[..., pad + dy : pad + dy + height, pad + dx : pad + dx + width]


def pamr(image: torch.Tensor, logits: torch.Tensor, iterations: int, dilations: Sequence[int]) -> torch.Tensor:
    """image [B, K, H, W], logits [B, C, H, W] -> refined logits [B, C, H, W]."""
    if iterations <= 0:
        return logits
    height, width = image.shape[-2:]
    pad = max(dilations)
    padded_image = F.pad(image, (pad, pad, pad, pad), mode="replicate")
    window = torch.stack([_shift(padded_image, pad, dy, dx, height, width) for dy, dx in _offsets(dilations, centre=True)], dim=2)
    sigma = window.std(dim=2, keepdim=True)  # [B, K, 1, H, W]
    neighbours = _offsets(dilations, centre=False)
    differences = torch.stack([_shift(padded_image, pad, dy, dx, height, width) for dy, dx in neighbours], dim=2)
    affinity = (-(image.unsqueeze(2) - differences).abs() / (1e-8 + 0.1 * sigma)).mean(dim=1).softmax(dim=1)  # [B, P, H, W]
    for _ in range(iterations):
        padded = F.pad(logits, (pad, pad, pad, pad), mode="replicate")
        refined = torch.zeros_like(logits)
        for n, (dy, dx) in enumerate(neighbours):
            refined += affinity[:, n : n + 1] * _shift(padded, pad, dy, dx, height, width)
        logits = refined
    return logits
