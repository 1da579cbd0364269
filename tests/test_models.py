"""Model specs, aliases, the open_clip and transformers adapters, fingerprints."""

import pytest
import torch
from hf_fixtures import save_tiny_hf_model
from PIL import Image

from vlbench.spec.catalog import Catalog
from vlbench.errors import ModelLoadError, UnknownNameError, VLBenchError
from vlbench.models import parse_model_spec
from vlbench.models.hf import HFAdapter
from vlbench.models.openclip import OpenClipAdapter, resolve_openclip


def test_spec_parsing():
    spec = parse_model_spec("openclip:ViT-B-32@laion2b_s34b_b79k")
    assert (spec.adapter, spec.name, spec.tag) == ("openclip", "ViT-B-32", "laion2b_s34b_b79k")
    spec = parse_model_spec("openclip:/ckpt/epoch_32.pt?arch=ViT-B-32")
    assert (spec.name, spec.tag, spec.options) == ("/ckpt/epoch_32.pt", None, {"arch": "ViT-B-32"})
    spec = parse_model_spec("hf:openai/clip-vit-base-patch32@main")
    assert (spec.adapter, spec.name, spec.tag) == ("hf", "openai/clip-vit-base-patch32", "main")
    assert parse_model_spec("hf:org/name@v1?trust_remote_code=1").id == "hf:org/name@v1?trust_remote_code=1"
    assert "/" not in parse_model_spec("openclip:/a/b/c.pt?arch=X").slug
    with pytest.raises(VLBenchError, match="<adapter>:<name>"):
        parse_model_spec("ViT-B-32")


def test_aliases_give_openai_weights_the_quickgelu_architecture():
    catalog = Catalog.load()
    assert catalog.resolve_model("openclip:ViT-B-32").id == "openclip:ViT-B-32-quickgelu@openai"
    assert catalog.resolve_model("openclip:ViT-B-16").id == "openclip:ViT-B-16-quickgelu@openai"
    with pytest.raises(UnknownNameError, match="did you mean: openclip"):
        catalog.resolve_model("opencilp:ViT-B-32")


def test_explicit_openai_tag_on_a_plain_arch_forces_quickgelu():
    import open_clip

    arch, kwargs, _ = resolve_openclip(parse_model_spec("openclip:ViT-B-32@openai"), open_clip)
    assert arch == "ViT-B-32" and kwargs == {"pretrained": "openai", "force_quick_gelu": True}
    arch, kwargs, _ = resolve_openclip(parse_model_spec("openclip:ViT-B-32@laion2b_s34b_b79k"), open_clip)
    assert "force_quick_gelu" not in kwargs


@pytest.mark.parametrize(
    "spec, message",
    [
        ("openclip:ViT-B-32", "names no pretrained tag"),
        ("openclip:ViT-B-32@laion2b_s34b_b97k", "did you mean: laion2b_s34b_b79k"),
        ("openclip:ViT-B-23@openai", "unknown open_clip architecture 'ViT-B-23'"),
        ("openclip:/nowhere/ckpt.pt?arch=ViT-B-32", "checkpoint not found"),
    ],
)
def test_openclip_spec_errors(spec, message):
    import open_clip

    with pytest.raises(ModelLoadError, match=message):
        resolve_openclip(parse_model_spec(spec), open_clip)


def test_openclip_adapter_encodes_unit_vectors(tiny_model):
    images = torch.stack([tiny_model.image_transform(Image.new("RGB", (100, 80), c)) for c in ("red", "blue")])
    image_emb = tiny_model.encode_images(images)
    text_emb = tiny_model.encode_texts(["a red circle", "a blue square", "x"])
    assert image_emb.shape == (2, 128) and text_emb.shape == (3, 128)
    assert image_emb.dtype == torch.float32
    assert torch.allclose(image_emb.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(text_emb.norm(dim=1), torch.ones(3), atol=1e-5)
    # the adapter is the model: its outputs equal open_clip's own, normalised
    with torch.no_grad():
        raw = tiny_model.model.encode_text(tiny_model.tokenizer(["a red circle"]))
    assert torch.allclose(text_emb[0], torch.nn.functional.normalize(raw, dim=-1)[0], atol=1e-5)


def test_fingerprint_records_weights_and_versions(tiny_model):
    fingerprint = tiny_model.fingerprint()
    assert fingerprint["id"] == "openclip:vlbench-tiny@random"
    assert len(fingerprint["weights_sha256"]) == 64
    assert fingerprint["dtype"] == "float32" and fingerprint["precision"] == "fp32"
    assert fingerprint["libraries"]["torch"] and fingerprint["libraries"]["open_clip_torch"]
    other_seed = OpenClipAdapter(parse_model_spec("openclip:vlbench-tiny@random?seed=1"))
    assert other_seed.fingerprint()["weights_sha256"] != fingerprint["weights_sha256"]


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_checkpoint_loads_the_same_weights(tiny_model, tmp_path, suffix):
    path = tmp_path / f"ckpt{suffix}"
    state = {k: v.clone() for k, v in tiny_model.model.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "epoch": 3}, path)
    loaded = OpenClipAdapter(parse_model_spec(f"openclip:{path}?arch=vlbench-tiny"))
    assert loaded.fingerprint()["weights_sha256"] == tiny_model.fingerprint()["weights_sha256"]
    assert torch.allclose(loaded.encode_texts(["a red star"]), tiny_model.encode_texts(["a red star"]), atol=1e-6)
    with pytest.raises(ModelLoadError, match=r"\?arch="):
        OpenClipAdapter(parse_model_spec(f"openclip:{path}"))


def test_checkpoint_with_code_is_refused(tiny_model, tmp_path):
    """torch.load runs with weights_only=True: a pickle that builds arbitrary objects does not load."""

    class Payload:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": tiny_model.model.state_dict(), "x": Payload()}, path)
    with pytest.raises(ModelLoadError, match="cannot load"):
        OpenClipAdapter(parse_model_spec(f"openclip:{path}?arch=vlbench-tiny"))


@pytest.mark.parametrize("model_type", ["clip", "siglip"])
def test_hf_adapter_matches_the_model_own_features(tmp_path, model_type):
    folder = save_tiny_hf_model(tmp_path / model_type, model_type)
    adapter = HFAdapter(parse_model_spec(f"hf:{folder}"))
    assert adapter.fingerprint()["model_type"] == model_type
    assert adapter.padding == ("max_length" if model_type == "siglip" else "longest")
    image = Image.new("RGBA", (50, 40), (200, 10, 10, 128))  # RGBA is converted to RGB
    pixels = adapter.image_transform(image).unsqueeze(0)
    assert pixels.shape == (1, 3, 32, 32)
    emb = adapter.encode_images(pixels)
    with torch.no_grad():
        raw = adapter.model.get_image_features(pixel_values=pixels)
        raw = raw if isinstance(raw, torch.Tensor) else raw.pooler_output
    assert torch.allclose(emb, torch.nn.functional.normalize(raw, dim=-1), atol=1e-5)
    texts = adapter.encode_texts(["a red circle", "a much longer caption about a blue square"])
    assert texts.shape[0] == 2 and torch.allclose(texts.norm(dim=1), torch.ones(2), atol=1e-5)


def test_hf_adapter_missing_model_is_one_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match=r"cannot load hf:"):
        HFAdapter(parse_model_spec(f"hf:{tmp_path / 'nothing-here'}"))


def test_bf16_autocast_gives_close_unit_vectors(tiny_model):
    from vlbench.spec.catalog import Catalog

    half = OpenClipAdapter(Catalog.load().resolve_model("openclip:vlbench-tiny@random"), precision="bf16")
    texts = ["a red circle", "a blue square to the left of a green star"]
    full, low = tiny_model.encode_texts(texts), half.encode_texts(texts)
    assert low.dtype == torch.float32 and torch.allclose(low.norm(dim=1), torch.ones(2), atol=1e-5)
    assert (full * low).sum(dim=1).min() > 0.99
    assert half.fingerprint()["precision"] == "bf16"
    with pytest.raises(VLBenchError, match="unknown precision"):
        OpenClipAdapter(Catalog.load().resolve_model("openclip:vlbench-tiny@random"), precision="fp8")
