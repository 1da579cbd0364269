"""A complete out-of-tree model adapter: an open_clip model loaded from a local checkpoint.

Use it with::

    # registry.yaml (yours, passed with --registry or $VLBENCH_REGISTRY)
    models:
      adapters:
        myclip: my_adapter:MyClipAdapter

    PYTHONPATH=examples vlbench run --registry my_registry.yaml \
        --model "myclip:vlbench/models/weights/vlbench-tiny@shapes.safetensors?arch=vlbench-tiny&config=vlbench/models/openclip_configs/vlbench-tiny.json" \
        --tasks shapes

See docs/adapters.md for what each member must do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from vlbench.errors import ModelLoadError
from vlbench.models import ModelAdapter, ModelSpec


class MyClipAdapter(ModelAdapter):
    adapter_name = "myclip"
    # Bump this when a change here changes the numbers: results of other versions are recomputed.
    adapter_version = "1"
    libraries = ("torch", "open_clip_torch")
    # The ?key=value options its specs take; any other is refused with a did-you-mean before a model loads.
    spec_options = {"arch": "the checkpoint's open_clip architecture", "config": "an architecture config open_clip does not ship"}

    def __init__(self, spec: ModelSpec, device: torch.device | str = "cpu", precision: str = "fp32"):
        super().__init__(spec, device, precision)  # sets self.spec, self.device, self.precision
        import open_clip

        checkpoint = Path(spec.name).expanduser()
        arch = spec.options.get("arch")
        if not checkpoint.is_file() or not arch:
            # a VLBenchError subclass: the command line prints it as one line
            raise ModelLoadError(f"{spec.id}: expected myclip:<checkpoint file>?arch=<open_clip architecture>")
        if "config" in spec.options:  # an architecture open_clip does not ship
            open_clip.add_model_config(Path(spec.options["config"]).expanduser())
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(checkpoint), device=self.device)
        self.model = model.eval()
        self.tokenizer = open_clip.get_tokenizer(arch)
        self._transform = preprocess
        self.checkpoint = checkpoint

    # -- the three members every adapter implements ----------------------------------------------
    @property
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """PIL RGB image -> [3, H, W] tensor. Runs in data-loader worker processes: must be picklable."""
        return self._transform

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] on self.device -> [B, D]. The base class normalises and handles --precision."""
        return self.model.encode_image(pixels)

    def text_features(self, texts: list[str]) -> torch.Tensor:
        """N strings -> [N, D] in the same space as the image features."""
        return self.model.encode_text(self.tokenizer(texts).to(self.device))

    # -- recorded in every result's fingerprint ---------------------------------------------------
    def describe(self) -> dict[str, Any]:
        from vlbench.models.weights_hash import state_dict_sha256

        return {"architecture": self.spec.options["arch"], "weights_sha256": state_dict_sha256(self.model)}

    # -- optional: what segmentation needs ---------------------------------------------------------
    def vit_parts(self) -> Any:
        """The ViT's pieces (patch embedding, blocks, last block, projection) for dense features."""
        from vlbench.models.dense import openclip_parts

        return openclip_parts(self.model.visual)

    @property
    def pixel_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std (0-1 scale) that image_transform normalises with."""
        from torchvision.transforms import Normalize

        step = next(t for t in self._transform.transforms if isinstance(t, Normalize))
        return tuple(step.mean), tuple(step.std)
