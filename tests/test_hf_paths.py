"""Hugging Face paths: SigLIP 2 lowercasing, SigLIP's SentencePiece tokenizer, NaFlex refusal, image backend."""

import string
from pathlib import Path

import pytest
import torch
from PIL import Image

from hf_fixtures import save_tiny_hf_model
from vlbench.errors import ModelLoadError
from vlbench.models import parse_model_spec
from vlbench.models.hf import HFAdapter


def save_siglip(folder: Path, tokenizer) -> Path:
    """A random-init SiglipModel with the given tokenizer and a CLIP image processor, saved like a checkpoint."""
    from transformers import CLIPImageProcessor, SiglipConfig, SiglipModel

    torch.manual_seed(0)
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=16, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def gemma_tokenizer():
    from transformers import GemmaTokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for char in string.ascii_letters + string.digits + ".,'-▁":
        vocab[char] = len(vocab)
    return GemmaTokenizer(vocab=vocab, merges=[])


def test_siglip2_text_is_lowercased_as_it_was_trained(tmp_path):
    adapter = HFAdapter(parse_model_spec(f"hf:{save_siglip(tmp_path / 'siglip2', gemma_tokenizer())}"))
    assert adapter.lowercase and adapter.fingerprint()["text_lowercase"] is True
    assert adapter.tokenizer("A")["input_ids"] != adapter.tokenizer("a")["input_ids"]  # the tokenizer alone does not
    upper, lower = adapter.encode_texts(["A Red Circle", "a red circle"])
    assert torch.equal(upper, lower)
    kept = HFAdapter(parse_model_spec(f"hf:{tmp_path / 'siglip2'}?lowercase=0"))
    upper, lower = kept.encode_texts(["A Red Circle", "a red circle"])
    assert not torch.allclose(upper, lower)


def test_siglip1_sentencepiece_tokenizer_loads_and_keeps_case(tmp_path):
    import sentencepiece as spm
    from transformers import SiglipTokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["a red circle", "A Blue Square", "the green triangle"] * 10))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "spm"), vocab_size=30, model_type="char",
                                   bos_id=-1, pad_id=0, eos_id=1, unk_id=2, minloglevel=2)
    adapter = HFAdapter(parse_model_spec(f"hf:{save_siglip(tmp_path / 'siglip', SiglipTokenizer(str(tmp_path / 'spm.model')))}"))
    assert type(adapter.tokenizer).__name__ == "SiglipTokenizer" and not adapter.lowercase
    assert adapter.padding == "max_length" and adapter.encode_texts(["a red circle"]).shape[0] == 1


def test_naflex_siglip2_checkpoints_are_refused_clearly(tmp_path):
    from transformers import Siglip2Config

    Siglip2Config().save_pretrained(tmp_path / "naflex")
    with pytest.raises(ModelLoadError, match="NaFlex SigLIP 2.*pixel_attention_mask, spatial_shapes.*siglip2-base-patch16-224"):
        HFAdapter(parse_model_spec(f"hf:{tmp_path / 'naflex'}"))


def test_image_processor_backend_is_pinned_and_recorded(tmp_path):
    folder = save_tiny_hf_model(tmp_path / "clip", "clip")
    default = HFAdapter(parse_model_spec(f"hf:{folder}"))
    fast = HFAdapter(parse_model_spec(f"hf:{folder}?image_backend=torchvision"))
    assert default.fingerprint()["image_backend"] == "pil" and fast.fingerprint()["image_backend"] == "torchvision"
    assert default.fingerprint()["image_processor"] != fast.fingerprint()["image_processor"]
    image = Image.new("RGB", (50, 40), (200, 10, 10))
    assert torch.allclose(default.image_transform(image), fast.image_transform(image), atol=0.05)
    with pytest.raises(ModelLoadError, match="image_backend must be one of pil, torchvision"):
        HFAdapter(parse_model_spec(f"hf:{folder}?image_backend=fastest"))
