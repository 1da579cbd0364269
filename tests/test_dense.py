"""Dense patch features: 'plain' equals the models' own projected tokens; the variants do what they say."""

import pytest
import torch
from hf_fixtures import save_tiny_hf_model

from vlbench.errors import CapabilityError
from vlbench.models import parse_model_spec
from vlbench.models.dense import (
    DENSE_VARIANTS,
    clearclip,
    maskclip,
    naclip,
    neighbourhood_bias,
)
from vlbench.models.hf import HFAdapter


def test_plain_equals_open_clip_projected_tokens(tiny_model):
    visual = tiny_model.model.visual
    pixels = torch.randn(2, 3, 64, 64)
    visual.output_tokens = True
    try:
        with torch.no_grad():
            _, tokens = visual(pixels)
    finally:
        visual.output_tokens = False
    expected = torch.nn.functional.normalize(tokens @ visual.proj, dim=-1).reshape(2, 8, 8, -1)
    dense = tiny_model.dense_features(pixels, "plain")
    assert dense.shape == (2, 8, 8, 128)
    assert torch.allclose(dense, expected, atol=1e-5)


def test_plain_equals_transformers_projected_tokens(tmp_path):
    adapter = HFAdapter(parse_model_spec(f"hf:{save_tiny_hf_model(tmp_path / 'clip')}"))
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        hidden = adapter.model.vision_model(pixel_values=pixels).last_hidden_state
        expected = adapter.model.visual_projection(adapter.model.vision_model.post_layernorm(hidden))[:, 1:]
    expected = torch.nn.functional.normalize(expected, dim=-1).reshape(1, 4, 4, -1)
    assert torch.allclose(adapter.dense_features(pixels, "plain"), expected, atol=1e-5)
    assert adapter.patch_size == 8 and adapter.input_size == 32


@pytest.mark.parametrize("variant", sorted(DENSE_VARIANTS.names()))
def test_every_variant_works_at_other_sizes(tiny_model, variant):
    features = tiny_model.dense_features(torch.randn(1, 3, 96, 80), variant)  # 12 x 10 patches, interpolated positions
    assert features.shape == (1, 12, 10, 128)
    assert torch.allclose(features.norm(dim=-1), torch.ones(1, 12, 10), atol=1e-5)


def test_variants_differ_from_each_other(tiny_model):
    pixels = torch.randn(1, 3, 64, 64)
    outputs = {v: tiny_model.dense_features(pixels, v) for v in DENSE_VARIANTS.names()}
    names = sorted(outputs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not torch.allclose(outputs[a], outputs[b], atol=1e-4), (a, b)


def test_maskclip_tokens_see_only_themselves_and_clearclip_on_one_token_is_the_value_path(tiny_model):
    block = tiny_model.vit_parts().last
    x = torch.randn(1, 5, 128)
    with torch.no_grad():
        together = maskclip(block, x, (2, 2))
        alone = torch.cat([maskclip(block, x[:, [i]], (1, 1)) for i in range(5)], dim=1)
        assert torch.allclose(together, alone, atol=1e-5)
        single = x[:, :1]
        value_path = block.out_proj(block.qkv(block.ln_1(single))[2])
        assert torch.allclose(clearclip(block, single, (1, 1)), value_path, atol=1e-5)  # no residual, no FFN
        assert naclip(block, x, (2, 2)).shape == x.shape


def test_naclip_gaussian_bias_formula():
    bias = neighbourhood_bias((3, 4), 5.0, torch.device("cpu"), torch.float32)
    assert bias.shape == (13, 13)
    assert torch.all(bias[0] == 0) and torch.all(bias[:, 0] == 0)  # no bias to or from CLS
    # patch (0,0) is token 1, patch (2,3) is token 1 + 2*4 + 3 = 12: squared distance 4 + 9
    assert bias[1, 12].item() == pytest.approx(torch.exp(torch.tensor(-13 / 50)).item(), rel=1e-6)
    assert bias[5, 5].item() == 1.0


def test_models_without_patch_tokens_cannot_segment(tmp_path):
    siglip = HFAdapter(parse_model_spec(f"hf:{save_tiny_hf_model(tmp_path / 'siglip', 'siglip')}"))
    with pytest.raises(CapabilityError, match="this model cannot do segmentation"):
        siglip.dense_features(torch.randn(1, 3, 32, 32))
