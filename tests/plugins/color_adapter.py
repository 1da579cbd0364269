"""A model adapter that lives outside vlbench: it 'sees' an image's mean colour.

Image embedding: the mean RGB of the image. Text embedding: the RGB of the first colour word in
the text. Zero-shot classification of flat-coloured images is then exactly right, which lets
tests check a whole run end to end with a model whose answers are known.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from vlbench.models import MODEL_ADAPTERS, ModelAdapter

RGB = {"red": (1.0, 0.1, 0.1), "green": (0.1, 1.0, 0.1), "blue": (0.1, 0.1, 1.0)}


class ColorTransform:
    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels = torch.from_numpy(np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float32))
        return pixels.reshape(-1, 3).mean(0) / 255

    def __repr__(self) -> str:
        return "ColorTransform(8x8 mean)"


class ColorAdapter(ModelAdapter):
    adapter_name = "color"

    @property
    def image_transform(self):
        return ColorTransform()

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels - pixels.mean(dim=1, keepdim=True) + 1e-3

    def text_features(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for text in texts:
            color = next((RGB[w] for w in text.replace(".", " ").split() if w in RGB), (0.3, 0.3, 0.3))
            vector = torch.tensor(color)
            rows.append(vector - vector.mean() + 1e-3)
        return torch.stack(rows)

    def describe(self) -> dict:
        return {"weights_sha256": "none (rule-based)"}


def register_with_decorator(name: str = "color-decorated") -> None:
    MODEL_ADAPTERS.register(name)(ColorAdapter)


RGB_DENSE = {"red": (1.0, 0.1, 0.1), "blue": (0.1, 0.1, 1.0), "grey": (0.8, 0.8, 0.8)}


class ColorDenseAdapter(ColorAdapter):
    """Also segments: each 4x4 patch's feature is its mean colour, each text's the RGB of its colour word."""

    adapter_name = "color-dense"

    @property
    def pixel_mean_std(self):
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)

    @property
    def patch_size(self) -> int:
        return 4

    def text_features(self, texts):
        return torch.stack([torch.tensor(next((RGB_DENSE[w] for w in t.replace(".", " ").split() if w in RGB_DENSE), (0.3, 0.3, 0.3))) for t in texts])

    def dense_features(self, pixels, variant="plain"):
        patches = torch.nn.functional.avg_pool2d(pixels.float(), 4)  # [B, 3, h, w]
        return torch.nn.functional.normalize(patches.permute(0, 2, 3, 1), dim=-1)
