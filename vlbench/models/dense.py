"""Text-aligned patch features from CLIP ViTs, with the last-block variants of training-free
open-vocabulary segmentation.

A ViT is seen through ``VitParts``: patch embedding (position embeddings interpolated to any grid),
the blocks before the last, the last block's pieces, and the head (final norm + projection applied to
every token). Variants of the last block (``x`` is its input, ``s = head_dim ** -0.5``):

- ``plain``: the unmodified block, then the head: the model's own projected tokens;
- ``maskclip``: each token attends only to itself (value path): ``x + out_proj(v)``, then the FFN with
  its residual, as the official MaskCLIP code (chongzhou96/MaskCLIP) does;
- ``sclip``: ``softmax(q q^T s) + softmax(k k^T s)`` attention, residual and FFN kept (SCLIP);
- ``clearclip``: ``out_proj(softmax(q q^T s) v)``, no residual, no FFN (ClearCLIP);
- ``naclip``: ``out_proj(softmax(k k^T s + G) v)`` with the Gaussian neighbourhood bias
  ``G = exp(-d^2 / (2 * 5^2))`` over patch-grid distance d (zero for the CLS token), no residual,
  no FFN (NACLIP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from vlbench.registry import Registry

Module = Callable[[torch.Tensor], torch.Tensor]
NACLIP_GAUSSIAN_STD = 5.0


@dataclass
class LastBlock:
    ln_1: Module
    ln_2: Module
    mlp: Module
    qkv: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # [B, N, W] each
    out_proj: Module
    num_heads: int
    forward: Module  # the unmodified block
    ls_1: Module = torch.nn.Identity()
    ls_2: Module = torch.nn.Identity()


@dataclass
class VitParts:
    embed: Callable[[torch.Tensor], tuple[torch.Tensor, tuple[int, int]]]  # pixels -> (tokens incl. CLS, grid)
    blocks: list[Module]  # every block but the last, batch-first
    last: LastBlock
    head: Module  # final norm and projection, applied to every token
    patch_size: int


def interpolate_position_embedding(pos: torch.Tensor, grid: tuple[int, int], source_grid: tuple[int, int]) -> torch.Tensor:
    """[1 + g0*g1, W] -> [1 + h*w, W], bicubic, as SCLIP / NACLIP / ClearCLIP do (scale factor (h + 0.1) / g)."""
    if tuple(grid) == tuple(source_grid):
        return pos
    cls, patches = pos[:1], pos[1:]
    g0, g1 = source_grid
    patches = patches.reshape(1, g0, g1, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(
        patches.float(), scale_factor=((grid[0] + 0.1) / g0, (grid[1] + 0.1) / g1), mode="bicubic", align_corners=False
    ).to(pos.dtype)
    patches = patches[:, :, : grid[0], : grid[1]].permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)
    return torch.cat([cls, patches], dim=0)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, w = x.shape
    return x.reshape(b, n, heads, w // heads).transpose(1, 2)  # [B, H, N, d]


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def attend(block: LastBlock, x: torch.Tensor, weights: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """out_proj(weights(q, k, scale) @ v) on ln_1(x), heads split and merged."""
    q, k, v = (split_heads(t, block.num_heads) for t in block.qkv(block.ln_1(x)))
    scale = q.shape[-1] ** -0.5
    return block.out_proj(merge_heads(weights(q, k, scale) @ v))


def neighbourhood_bias(grid: tuple[int, int], std: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[1 + h*w, 1 + h*w]: exp(-|p - p'|^2 / (2 std^2)) between patch positions; zeros for CLS."""
    h, w = grid
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()], dim=1).float()
    bias = torch.exp(-torch.cdist(coords, coords).pow(2) / (2 * std**2))
    return F.pad(bias, (1, 0, 1, 0)).to(dtype)


def _with_ffn(block: LastBlock, x: torch.Tensor) -> torch.Tensor:
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def plain(block: LastBlock, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    return block.forward(x)


def maskclip(block: LastBlock, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    v = block.qkv(block.ln_1(x))[2]
    return _with_ffn(block, x + block.ls_1(block.out_proj(v)))


def sclip(block: LastBlock, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    def correlative(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
        return (q @ q.transpose(-1, -2) * scale).softmax(-1) + (k @ k.transpose(-1, -2) * scale).softmax(-1)

    return _with_ffn(block, x + block.ls_1(attend(block, x, correlative)))


def clearclip(block: LastBlock, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    return attend(block, x, lambda q, k, scale: (q @ q.transpose(-1, -2) * scale).softmax(-1))


def naclip(block: LastBlock, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    bias = neighbourhood_bias(grid, NACLIP_GAUSSIAN_STD, x.device, x.dtype)
    return attend(block, x, lambda q, k, scale: (k @ k.transpose(-1, -2) * scale + bias).softmax(-1))


DENSE_VARIANTS: Registry = Registry("dense feature variant")
for _name, _fn in (("plain", plain), ("maskclip", maskclip), ("sclip", sclip), ("clearclip", clearclip), ("naclip", naclip)):
    DENSE_VARIANTS.add(_name, _fn)


def dense_features(parts: VitParts, pixels: torch.Tensor, variant: str) -> torch.Tensor:
    """[B, 3, H, W] (H, W multiples of the patch size) -> L2-normalised [B, H/p, W/p, D]."""
    modify = DENSE_VARIANTS.get(variant)
    x, grid = parts.embed(pixels)
    for block in parts.blocks:
        x = block(x)
    x = modify(parts.last, x, grid)
    tokens = parts.head(x)[:, 1:]
    tokens = tokens / tokens.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return tokens.reshape(tokens.shape[0], grid[0], grid[1], -1).float()


# -- open_clip -------------------------------------------------------------------------------------
def openclip_parts(visual: torch.nn.Module) -> VitParts | None:
    """open_clip's VisionTransformer with standard multi-head attention blocks, or None."""
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None or getattr(visual, "attn_pool", None) is not None or getattr(visual, "final_ln_after_pool", False):
        return None
    if not all(isinstance(getattr(b, "attn", None), torch.nn.MultiheadAttention) for b in blocks):
        return None
    if getattr(visual, "pool_type", "tok") != "tok":
        return None
    batch_first = getattr(visual.transformer, "batch_first", True)
    patch = visual.patch_size[0]
    source_grid = tuple(visual.grid_size)

    def embed(pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = visual.conv1(pixels.to(visual.conv1.weight.dtype))
        grid = (x.shape[2], x.shape[3])
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + interpolate_position_embedding(visual.positional_embedding, grid, source_grid).to(x.dtype)
        return visual.ln_pre(visual.patch_dropout(x)), grid

    def as_batch_first(block: torch.nn.Module) -> Module:
        if batch_first:
            return block
        return lambda x: block(x.transpose(0, 1)).transpose(0, 1)

    last = blocks[-1]
    attn: torch.nn.MultiheadAttention = last.attn

    def qkv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1))  # type: ignore[return-value]

    def head(x: torch.Tensor) -> torch.Tensor:
        x = visual.ln_post(x)
        return x @ visual.proj if visual.proj is not None else x

    return VitParts(
        embed=embed,
        blocks=[as_batch_first(b) for b in blocks[:-1]],
        last=LastBlock(last.ln_1, last.ln_2, last.mlp, qkv, attn.out_proj, attn.num_heads, as_batch_first(last), last.ls_1, last.ls_2),
        head=head,
        patch_size=patch,
    )


# -- transformers CLIP -------------------------------------------------------------------------------
def hf_clip_parts(model: torch.nn.Module) -> VitParts | None:
    """transformers CLIPModel's vision tower (CLS token, pre-norm layers), or None."""
    vision = getattr(model, "vision_model", None)
    projection = getattr(model, "visual_projection", None)
    embeddings = getattr(vision, "embeddings", None)
    if vision is None or projection is None or not hasattr(embeddings, "class_embedding"):
        return None
    layers = vision.encoder.layers
    patch = embeddings.patch_size
    side = embeddings.image_size // patch

    def embed(pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = embeddings.patch_embedding(pixels.to(embeddings.patch_embedding.weight.dtype))
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        cls = embeddings.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        pos = interpolate_position_embedding(embeddings.position_embedding.weight, grid, (side, side))
        return vision.pre_layrnorm(torch.cat([cls, x], dim=1) + pos.to(x.dtype)), grid

    def last_block(layer: torch.nn.Module) -> LastBlock:
        attn = layer.self_attn

        def qkv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            return attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)

        block = LastBlock(layer.layer_norm1, layer.layer_norm2, layer.mlp, qkv, attn.out_proj, attn.num_heads, forward=lambda x: x)
        block.forward = lambda x: _with_ffn(block, x + attend(block, x, lambda q, k, s: (q @ k.transpose(-1, -2) * s).softmax(-1)))
        return block

    standard = [last_block(layer) for layer in layers]
    return VitParts(
        embed=embed,
        blocks=[b.forward for b in standard[:-1]],
        last=standard[-1],
        head=lambda x: projection(vision.post_layernorm(x)),
        patch_size=patch,
    )


def grid_multiple(size: int, patch: int) -> int:
    return max(patch, int(math.ceil(size / patch)) * patch)
