"""Text batches trimmed to their longest caption give the full-padding embeddings (causal towers only)."""

import contextlib

import pytest
import torch
from hf_fixtures import save_tiny_hf_model

from vlbench.models.base import parse_model_spec
from vlbench.models.text_trim import openclip_causal_tower, trim_padding

CAPTIONS = ["a dog", "a small red circle left of a large blue square on a table", "two cats", "x", "the sky"]


@contextlib.contextmanager
def full_padding(model):
    model.allow_text_trimming = False
    try:
        yield
    finally:
        model.allow_text_trimming = True


def test_trim_padding_keeps_the_longest_row_and_its_end_token():
    tokens = torch.tensor([[5, 9, 7, 0, 0, 0], [5, 0, 9, 7, 0, 0], [5, 7, 0, 0, 0, 0]])
    assert trim_padding(tokens).tolist() == [[5, 9, 7, 0], [5, 0, 9, 7], [5, 7, 0, 0]]


def test_tiny_openclip_tower_is_trimmed_and_matches_full_padding(tiny_model):
    assert tiny_model.trims_text_padding and tiny_model.text_padding_mode == "trimmed"
    tokens = tiny_model.tokenizer(CAPTIONS)
    assert trim_padding(tokens).shape[1] < tokens.shape[1]
    trimmed = tiny_model.encode_texts(CAPTIONS)
    with full_padding(tiny_model):
        assert not tiny_model.trims_text_padding and tiny_model.text_padding_mode == "full"
        full = tiny_model.encode_texts(CAPTIONS)
    assert (trimmed - full).abs().max() < 1e-5


def test_transformers_clip_is_trimmed_and_siglip_never(tmp_path):
    from vlbench.models.hf import HFAdapter

    clip = HFAdapter(parse_model_spec(f"hf:{save_tiny_hf_model(tmp_path / 'clip', 'clip')}"))
    assert clip.trims_text_padding and clip.padding == "longest"
    trimmed = clip.encode_texts(CAPTIONS)
    with full_padding(clip):
        assert clip.padding == "max_length"
        full = clip.encode_texts(CAPTIONS)
    assert (trimmed - full).abs().max() < 1e-5
    siglip = HFAdapter(parse_model_spec(f"hf:{save_tiny_hf_model(tmp_path / 'siglip', 'siglip')}"))
    assert not siglip.trims_text_padding and siglip.padding == "max_length" and siglip.text_padding_mode == "max_length"


@pytest.mark.parametrize(
    "text_cfg",
    [
        {"no_causal_mask": True, "pool_type": "last"},  # SigLIP-style: bidirectional, last token
        {"pool_type": "last"},  # causal, but pooled at the last (padding) position
        {"pool_type": "first"},
    ],
)
def test_towers_that_see_padding_or_pool_elsewhere_are_never_trimmed(tiny_model, text_cfg):
    from open_clip.model import CLIP

    text = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1, **text_cfg}
    model = CLIP(16, {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16}, text)
    assert openclip_causal_tower(model, tiny_model.tokenizer) is None
    assert openclip_causal_tower(model, object()) is None  # an unknown tokenizer: unsure, so untrimmed
