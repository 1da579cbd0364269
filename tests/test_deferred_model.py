"""A model whose identity the cache recorded is loaded only when a run needs more than cached
embeddings; a record that no longer matches the loaded model stops the run."""

import json
import os

import pytest
import torch
from conftest import TINY

from vlbench.spec.catalog import Catalog
from vlbench.encoding.cache import EmbeddingStore
from vlbench.errors import StaleModelRecordError
from vlbench.models import MODEL_ADAPTERS, ModelAdapter
from vlbench.models.deferred import identity_pin, same_identity
from vlbench.run.loading import ModelLoader
from vlbench.run.runner import Runner
from vlbench.run.settings import RunSettings


@pytest.fixture
def loads(monkeypatch):
    """The model ids the runner loads, in order."""
    seen = []
    original = ModelLoader.load

    def counting(self, spec):
        seen.append(spec.id)
        return original(self, spec)

    monkeypatch.setattr(ModelLoader, "load", counting)
    return seen


def run(tmp_path, output, cache, tasks, **settings):
    options = RunSettings(data_root=tmp_path, output=tmp_path / output, num_workers=0, limit=24, batch_size=8, cache_dir=cache, **settings)
    _, outcomes = Runner(Catalog.load(), options).run(TINY, tasks)
    return {o.task: json.loads(o.result_file.read_text())["metrics"] for o in outcomes}


def records(cache):
    return sorted((cache / "v1" / "model-records").glob("*.json"))


def test_a_warm_run_never_loads_the_model_and_a_new_input_loads_it_once(tmp_path, loads):
    cache = tmp_path / "cache"
    cold = run(tmp_path, "cold", cache, ["shapes_cls"])
    assert loads == [TINY] and len(records(cache)) == 1
    warm = run(tmp_path, "warm", cache, ["shapes_cls"])
    assert loads == [TINY] and warm == cold  # every embedding cached: no load, the same numbers
    assert run(tmp_path, "gpu-decode", cache, ["shapes_cls"], decode="gpu") and loads == [TINY, TINY]  # its own cache keys
    assert run(tmp_path, "gpu-decode-warm", cache, ["shapes_cls"], decode="gpu") and loads == [TINY, TINY]  # then warm too
    more = run(tmp_path, "more", cache, ["shapes_cls", "shapes_retrieval"])
    assert loads == [TINY] * 3  # the retrieval images were not cached: loaded then, once
    assert more == {**cold, "shapes_retrieval": run(tmp_path, "off", None, ["shapes_retrieval"])["shapes_retrieval"]}


def test_a_record_that_the_loaded_model_contradicts_stops_the_run_and_removes_what_it_wrote(tmp_path, loads):
    cache = tmp_path / "cache"
    run(tmp_path, "cold", cache, ["shapes_cls"])
    [path] = records(cache)
    record = json.loads(path.read_text())
    record["attributes"]["logit_scale"] += 1.0  # as if the record had been written for other weights
    path.write_text(json.dumps(record))
    with pytest.raises(StaleModelRecordError, match=r"another identity than the embedding cache recorded.*replaced\): shapes_cls"):
        # shapes_cls is all cached and written first; shapes_retrieval needs the model, which contradicts the record
        run(tmp_path, "stale", cache, ["shapes_cls", "shapes_retrieval"])
    assert records(cache) == [] and list((tmp_path / "stale").rglob("*.json")) == []
    assert run(tmp_path, "again", cache, ["shapes_cls"]) and len(records(cache)) == 1
    EmbeddingStore(cache).clear([TINY])
    assert records(cache) == []


def test_memory_addresses_in_a_transform_repr_do_not_count():
    record = {"fingerprint": {"id": "m"}, "attributes": {"transform_id": "Compose(<function _convert_to_rgb at 0x7f00aa>)"}}
    again = {"fingerprint": {"id": "m"}, "attributes": {"transform_id": "Compose(<function _convert_to_rgb at 0x7f11bb>)"}}
    assert same_identity(record, again) and not same_identity(record, {**again, "fingerprint": {"id": "n"}})


def test_weights_are_hashed_once_per_load(tmp_path, monkeypatch):
    import vlbench.models.weights_hash as weights_hash

    calls = []
    original = weights_hash.state_dict_sha256
    monkeypatch.setattr(weights_hash, "state_dict_sha256", lambda model: calls.append(1) or original(model))
    run(tmp_path, "cold", tmp_path / "cache", ["shapes_cls"])
    assert len(calls) == 1


def test_pins_change_with_what_decides_the_model(tmp_path, monkeypatch):
    catalog = Catalog.load()
    adapter = MODEL_ADAPTERS.get("openclip")
    cpu = torch.device("cpu")

    def pin(text, device=cpu, precision="fp32", trimming=True):
        return identity_pin(adapter, catalog.resolve_model(text), device, precision, trimming)

    assert pin("openclip:ViT-B-32@openai") is None  # a hub tag not in the Hugging Face cache: only loading tells
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ViT-B-32").mkdir()  # folders named like hub models do not pin hub weights
    (tmp_path / "hf-hub:org" / "repo").mkdir(parents=True)
    assert pin("openclip:ViT-B-32@openai") is None and pin("openclip:hf-hub:org/repo") is None
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "model.safetensors").write_bytes(b"w")
    hf = MODEL_ADAPTERS.get("hf")
    assert hf.pinned_weights(catalog.resolve_model("hf:google/siglip-base-patch16-224")) is None
    assert hf.pinned_weights(catalog.resolve_model(f"hf:{saved}")) is not None

    class ThirdParty(ModelAdapter):  # deferral is opt-in: an adapter that says nothing is always loaded
        image_transform = image_features = text_features = None

    assert identity_pin(ThirdParty, catalog.resolve_model(TINY), cpu, "fp32", True) is None
    base = pin(TINY)
    assert base is not None and base == pin(TINY)
    assert len({base, pin(TINY + "?seed=1"), pin(TINY, precision="bf16"), pin(TINY, trimming=False), pin(TINY, torch.device("meta"))}) == 5
    checkpoint = tmp_path / "w.pt"
    checkpoint.write_bytes(b"weights")
    local = pin(f"openclip:{checkpoint}?arch=ViT-S-32")
    random_tagged = pin(f"openclip:{checkpoint}@random?arch=ViT-S-32")  # the checkpoint loads, not a random init
    os.utime(checkpoint, ns=(1, 1))
    assert local is not None and pin(f"openclip:{checkpoint}?arch=ViT-S-32") not in (None, local)
    assert random_tagged is not None and pin(f"openclip:{checkpoint}@random?arch=ViT-S-32") not in (None, random_tagged)


def test_a_deferred_model_takes_no_settings(tmp_path, loads):
    cache = tmp_path / "cache"
    run(tmp_path, "cold", cache, ["shapes_cls"])
    options = RunSettings(data_root=tmp_path, output=tmp_path / "x", num_workers=0, cache_dir=cache)
    deferred = Runner(Catalog.load(), options).models.model(Catalog.load().resolve_model(TINY))
    assert type(deferred).__name__ == "DeferredModel" and loads == [TINY]
    with pytest.raises(AttributeError, match="cannot set 'allow_text_trimming'"):
        deferred.allow_text_trimming = False
    assert deferred.text_padding_mode == "trimmed" and loads == [TINY]  # from the record
    assert deferred.build().text_padding_mode == "trimmed" and loads == [TINY, TINY]


def write_snapshot(hub_cache, repo, commit, files, ref="main"):
    """A model repo's snapshot as huggingface_hub lays it out: the ref names the commit, the
    snapshot's files are links into blobs/ named by content."""
    import hashlib

    folder = hub_cache / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "blobs").mkdir(exist_ok=True)
    if ref:
        (folder / "refs" / ref).write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).unlink(missing_ok=True)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


def tiny_weights(seed):
    from safetensors.torch import save

    from vlbench.models.openclip import _open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _open_clip().create_model("vlbench-tiny", pretrained=None)
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, and a pretrained tag of vlbench-tiny that open_clip loads from it."""
    import huggingface_hub.constants

    from vlbench.models.openclip import _open_clip

    cache = tmp_path / "hf-hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setitem(_open_clip().pretrained._PRETRAINED, "vlbench-tiny", {"hubtest": {"hf_hub": "vlbench-test/tiny/"}})
    return cache


def test_hub_names_are_pinned_by_their_snapshot_in_the_local_cache(hub_cache, monkeypatch):
    import vlbench.hub_access as hub_access
    import vlbench.models.hub as hub

    catalog = Catalog.load()
    openclip, hf = MODEL_ADAPTERS.get("openclip"), MODEL_ADAPTERS.get("hf")
    tagged, hub_named, transformers_id = (catalog.resolve_model(s) for s in ("openclip:vlbench-tiny@hubtest", "openclip:hf-hub:org/repo", "hf:org/clip"))

    def pins():
        return [openclip.pinned_weights(tagged), openclip.pinned_weights(hub_named), hf.pinned_weights(transformers_id)]

    assert pins() == [None] * 3
    # snapshots without the weights a load reads (an interrupted download, a tokenizer fetched alone): no pin
    write_snapshot(hub_cache, "vlbench-test/tiny", "a" * 40, {"README.md": b"x"})
    write_snapshot(hub_cache, "org/repo", "b" * 40, {"open_clip_config.json": b"{}"})
    clip = write_snapshot(hub_cache, "org/clip", "c" * 40, {"config.json": b"{}"})
    assert pins() == [None] * 3
    write_snapshot(hub_cache, "vlbench-test/tiny", "a" * 40, {"open_clip_pytorch_model.bin": b"w1"})
    write_snapshot(hub_cache, "org/repo", "b" * 40, {"open_clip_model.safetensors": b"w"})
    write_snapshot(hub_cache, "org/clip", "c" * 40, {"model.safetensors": b"w"})
    first = pins()
    assert None not in first
    assert hf.pinned_weights(catalog.resolve_model("hf:org/clip@v2")) is None  # a revision the cache does not hold
    assert hf.pinned_weights(catalog.resolve_model(f"hf:org/clip@{'c' * 40}")) is not None  # a commit: no ref needed
    assert hf.pinned_weights(catalog.resolve_model("hf:org/clip?trust_remote_code=1")) is None  # its code runs from elsewhere
    (clip / "tokenizer.json").symlink_to("../../blobs/missing")  # a dangling link: not a file, no change
    assert pins() == first
    write_snapshot(hub_cache, "org/clip", "c" * 40, {"tokenizer.json": b"{}"})  # a file added to the snapshot
    write_snapshot(hub_cache, "org/repo", "b" * 40, {"open_clip_model.safetensors": b"w2"})  # a file replaced
    write_snapshot(hub_cache, "vlbench-test/tiny", "d" * 40, {"open_clip_model.safetensors": b"w1"})  # a new revision
    second = pins()
    assert None not in second and all(a != b for a, b in zip(first, second))
    # with the Hub reachable, a branch is pinned only while the Hub names the cached commit
    remote = {"org/clip": "c" * 40}
    monkeypatch.setattr(hub_access, "offline_by_setting", lambda: False)
    monkeypatch.setattr(hub_access, "hub_reachable", lambda: True)
    monkeypatch.setattr(hub, "remote_commit", lambda repo, revision: remote.get(repo))
    assert hf.pinned_weights(transformers_id) == second[2]
    remote["org/clip"] = "e" * 40  # published upstream, not downloaded: a load would fetch it
    assert hf.pinned_weights(transformers_id) is None
    assert hf.pinned_weights(catalog.resolve_model(f"hf:org/clip@{'c' * 40}")) is not None  # a commit cannot move


def run_one(tmp_path, spec, output):
    """shapes_cls with ``spec`` and a cache shared by the test's runs; the result file's content."""
    options = RunSettings(data_root=tmp_path, output=tmp_path / output, num_workers=0, limit=16, batch_size=8, cache_dir=tmp_path / "cache")
    [outcome] = Runner(Catalog.load(), options).run(spec, ["shapes_cls"])[1]
    return json.loads(outcome.result_file.read_text())


def test_a_warm_run_of_a_hub_model_does_not_load_it_until_its_snapshot_changes(tmp_path, hub_cache, loads):
    spec = "openclip:vlbench-tiny@hubtest"

    def run_hub(output):
        return run_one(tmp_path, spec, output)

    write_snapshot(hub_cache, "vlbench-test/tiny", "a" * 40, {"open_clip_model.safetensors": tiny_weights(1)})
    cold = run_hub("cold")
    assert loads == [spec] and len(records(tmp_path / "cache")) == 1
    warm = run_hub("warm")
    assert loads == [spec] and warm["metrics"] == cold["metrics"] and warm["model"]["fingerprint"] == cold["model"]["fingerprint"]
    write_snapshot(hub_cache, "vlbench-test/tiny", "e" * 40, {"open_clip_model.safetensors": tiny_weights(2)})  # new weights upstream, downloaded
    updated = run_hub("updated")
    assert loads == [spec, spec]  # another snapshot: loaded, and its weights hash recorded
    assert updated["model"]["fingerprint"]["weights_sha256"] != cold["model"]["fingerprint"]["weights_sha256"]
    assert len(records(tmp_path / "cache")) == 2


def test_a_transformers_hub_model_is_deferred_once_its_snapshot_is_cached(tmp_path, loads, private_hf_hub_cache):
    from hf_fixtures import save_tiny_hf_model

    spec = "hf:vlbench-test/tiny-clip"
    hub = private_hf_hub_cache  # the tests' own cache, which transformers reads too
    snapshot = write_snapshot(hub, "vlbench-test/tiny-clip", "9" * 40, {})
    save_tiny_hf_model(snapshot, seed=5)

    def run_hf(output):
        options = RunSettings(data_root=tmp_path, output=tmp_path / output, num_workers=0, limit=16, batch_size=8, cache_dir=tmp_path / "cache")
        [outcome] = Runner(Catalog.load(), options).run(spec, ["shapes_cls"])[1]
        return json.loads(outcome.result_file.read_text())["metrics"]

    cold = run_hf("cold")
    assert loads == [spec] and run_hf("warm") == cold and loads == [spec]


def test_the_record_is_kept_under_the_snapshot_the_load_completed(tmp_path, hub_cache, loads, monkeypatch):
    spec = "openclip:vlbench-tiny@hubtest"
    write_snapshot(hub_cache, "vlbench-test/tiny", "a" * 40, {"README.md": b"x"})  # not loadable: no pin before the load
    counting = ModelLoader.load

    def downloading(self, model_spec):  # what loading online does: the weights arrive in the snapshot
        write_snapshot(hub_cache, "vlbench-test/tiny", "a" * 40, {"open_clip_model.safetensors": tiny_weights(1)})
        return counting(self, model_spec)

    monkeypatch.setattr(ModelLoader, "load", downloading)
    cold = run_one(tmp_path, spec, "cold")
    assert loads == [spec] and len(records(tmp_path / "cache")) == 1
    assert run_one(tmp_path, spec, "warm")["metrics"] == cold["metrics"] and loads == [spec]


def test_an_hf_hub_name_without_weights_fails_instead_of_building_an_untrained_model(hub_cache):
    from safetensors.torch import load

    from vlbench.errors import ModelLoadError
    from vlbench.models.openclip import CONFIG_DIR, OpenClipAdapter

    spec = Catalog.load().resolve_model("openclip:hf-hub:vlbench-test/tiny-hub")
    config = {"model_cfg": json.loads((CONFIG_DIR / "vlbench-tiny.json").read_text()), "preprocess_cfg": {}}
    write_snapshot(hub_cache, "vlbench-test/tiny-hub", "f" * 40, {"open_clip_config.json": json.dumps(config).encode()})
    with pytest.raises(ModelLoadError, match="cannot load openclip:hf-hub:vlbench-test/tiny-hub"):
        OpenClipAdapter(spec)
    weights = tiny_weights(3)
    write_snapshot(hub_cache, "vlbench-test/tiny-hub", "f" * 40, {"open_clip_model.safetensors": weights})
    loaded = OpenClipAdapter(spec).model.state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in load(weights).items())
