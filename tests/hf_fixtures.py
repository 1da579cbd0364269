"""Tiny transformers CLIP / SigLIP models saved to a folder, built offline from small configs."""

from __future__ import annotations

import json
import string
from pathlib import Path


def tiny_clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    chars = list(string.ascii_lowercase + string.digits) + [".", ",", "'", "-"]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    for special in ("<|startoftext|>", "<|endoftext|>", "<|unk|>"):
        vocab[special] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token="<|unk|>")


def save_tiny_hf_model(folder: Path, model_type: str = "clip", seed: int = 0) -> Path:
    """A random-init CLIPModel or SiglipModel with a CLIP processor, saved like a hub checkpoint."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        SiglipConfig,
        SiglipModel,
    )

    tokenizer = tiny_clip_tokenizer(folder / "_tokenizer")
    special = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in (("bos_token_id", "<|startoftext|>"), ("eos_token_id", "<|endoftext|>"), ("pad_token_id", "<|endoftext|>"))}
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=24)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    torch.manual_seed(seed)
    if model_type == "clip":
        model = CLIPModel(CLIPConfig(text_config={**text, **special}, vision_config=vision, projection_dim=16))
    else:
        model = SiglipModel(SiglipConfig(text_config={**text, **special}, vision_config=vision))
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
