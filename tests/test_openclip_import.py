"""open_clip imported without transformers / timm when the architecture needs neither, and made whole
again when a later model in the same process builds a Hugging Face text tower or a timm vision tower."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlbench.models.openclip_import import OPTIONAL_TOWER_LIBRARIES, architecture_needs_towers, config_needs_towers, withheld_libraries

TOWERS_ARCH = "towers-tiny"


def write_towers_model(folder: Path) -> tuple[Path, Path]:
    """An open_clip architecture with a timm ViT image tower and a BERT text tower (both tiny, from
    local configs), and a checkpoint of it: a checkpoint keeps open_clip from fetching either tower's
    pretrained weights."""
    import open_clip
    from transformers import BertConfig, BertModel

    bert = folder / "bert"
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=49408, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=80)).save_pretrained(bert)
    config = folder / f"{TOWERS_ARCH}.json"
    config.write_text(json.dumps({
        "embed_dim": 16,
        "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224", "timm_model_pretrained": False, "timm_pool": "token",
                       "timm_proj": "linear", "image_size": 224},
        "text_cfg": {"hf_model_name": str(bert), "hf_model_pretrained": False, "hf_pooler_type": "mean_pooler",
                     "hf_proj_type": "linear", "context_length": 16},
    }))
    open_clip.add_model_config(config)
    torch.manual_seed(1)
    model = open_clip.create_model(TOWERS_ARCH, pretrained_image=False, pretrained_hf=False)
    checkpoint = folder / "towers.pt"
    torch.save(model.state_dict(), checkpoint)
    return config, checkpoint


def features(spec: str) -> dict[str, list]:
    from vlbench.models.base import parse_model_spec
    from vlbench.models.openclip import OpenClipAdapter

    adapter = OpenClipAdapter(parse_model_spec(spec))
    pixels = torch.linspace(-1, 1, 2 * 3 * 224 * 224).reshape(2, 3, 224, 224)
    with torch.inference_mode():
        return {"image": adapter.image_features(pixels).tolist(), "text": adapter.text_features(["a red square", "two blue circles"]).tolist()}


SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from vlbench.models.base import parse_model_spec
from vlbench.models.openclip import OpenClipAdapter
from vlbench.models.openclip_import import allow_lean_import
allow_lean_import()  # as the run command does
OpenClipAdapter(parse_model_spec("openclip:vlbench-tiny@shapes"))
lean = {{name: name in sys.modules for name in ("open_clip", "transformers", "timm")}}
from test_openclip_import import features
print(json.dumps({{"lean": lean, "features": features({spec!r})}}))
"""


def test_open_clip_is_imported_lean_for_plain_towers_and_made_whole_for_a_later_model(tmp_path):
    config, checkpoint = write_towers_model(tmp_path)
    spec = f"openclip:{checkpoint}?arch={TOWERS_ARCH}&config={config}"
    script = SCRIPT.format(tests=str(Path(__file__).parent), spec=spec)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["lean"] == {"open_clip": True, "transformers": False, "timm": False}
    # built after the lean import, the towers model gives what this process (imported however) gives
    here = features(spec)
    for kind in ("image", "text"):
        assert torch.equal(torch.tensor(report["features"][kind]), torch.tensor(here[kind])), kind


def test_which_architectures_need_the_tower_libraries(tmp_path):
    assert not architecture_needs_towers("ViT-B-32")
    assert not architecture_needs_towers("vlbench-tiny", [Path(__file__).parents[1] / "vlbench" / "models" / "openclip_configs"])
    assert architecture_needs_towers("ViT-B-16-SigLIP")  # a timm vision tower
    assert architecture_needs_towers("xlm-roberta-base-ViT-B-32")  # a Hugging Face text tower
    assert architecture_needs_towers("hf-hub:org/repo") and architecture_needs_towers(None)
    assert architecture_needs_towers("no-such-architecture")
    custom = tmp_path / "mine.json"
    custom.write_text(json.dumps({"vision_cfg": {"width": 8}, "text_cfg": {"width": 8}}))
    assert not architecture_needs_towers("mine", extra_files=[custom])
    custom.write_text("{not json")
    assert architecture_needs_towers("mine", extra_files=[custom])
    assert config_needs_towers({"text_cfg": {"hf_model_name": "bert"}}) and not config_needs_towers({})


def test_only_a_run_imports_lean_and_never_withholds_what_is_loaded():
    assert withheld_libraries(False, [], allowed=False) == []  # a program using vlbench as a library gets the full open_clip
    assert withheld_libraries(True, [], allowed=True) == []
    assert withheld_libraries(False, [], allowed=True) == list(OPTIONAL_TOWER_LIBRARIES)
    assert withheld_libraries(False, ["transformers"], allowed=True) == ["timm"]


def test_a_run_makes_open_clip_whole_before_another_adapter_loads(monkeypatch, tmp_path):
    import types

    from vlbench.errors import VLBenchError
    from vlbench.run import loading
    from vlbench.run.settings import RunSettings

    events = []

    class Adapter:
        def __init__(self, spec, device, precision):
            events.append(f"built {spec.adapter}")
            raise VLBenchError("stop here")

    monkeypatch.setattr(loading, "make_whole", lambda: events.append("made whole"))
    catalog = types.SimpleNamespace(adapter_class=lambda name: Adapter)
    loader = loading.ModelLoader(catalog, RunSettings(data_root=tmp_path, output=tmp_path), log=lambda line: None)
    for adapter in ("openclip", "myplugin"):
        with pytest.raises(VLBenchError):
            loader.load(types.SimpleNamespace(adapter=adapter, id=f"{adapter}:x"))
    assert events == ["built openclip", "made whole", "built myplugin"]
