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
