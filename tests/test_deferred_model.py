"""A model whose identity the cache recorded is loaded only when a run needs more than cached
embeddings; a record that no longer matches the loaded model stops the run."""

import json
import os

import pytest
import torch
from conftest import TINY

from vlbench.catalog import Catalog
from vlbench.embedding_cache import EmbeddingStore
from vlbench.errors import VLBenchError
from vlbench.models import MODEL_ADAPTERS
from vlbench.models.deferred import identity_pin
from vlbench.runner import Runner, RunOptions


@pytest.fixture
def loads(monkeypatch):
    """The model ids the runner loads, in order."""
    seen = []
    original = Runner.load_model

    def counting(self, spec):
        seen.append(spec.id)
        return original(self, spec)

    monkeypatch.setattr(Runner, "load_model", counting)
    return seen


def run(tmp_path, output, cache, tasks):
    options = RunOptions(data_root=tmp_path, output=tmp_path / output, num_workers=0, limit=24, batch_size=8, cache_dir=cache)
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
    more = run(tmp_path, "more", cache, ["shapes_cls", "shapes_retrieval"])
    assert loads == [TINY, TINY]  # the retrieval images were not cached: loaded then, once
    assert more == {**cold, "shapes_retrieval": run(tmp_path, "off", None, ["shapes_retrieval"])["shapes_retrieval"]}


def test_a_record_that_the_loaded_model_contradicts_stops_the_run_and_is_removed(tmp_path, loads):
    cache = tmp_path / "cache"
    run(tmp_path, "cold", cache, ["shapes_cls"])
    [path] = records(cache)
    record = json.loads(path.read_text())
    record["fingerprint"]["weights_sha256"] = "0" * 64  # as if other weights had been recorded
    path.write_text(json.dumps(record))
    with pytest.raises(VLBenchError, match="another identity than the embedding cache recorded"):
        run(tmp_path, "stale", cache, ["shapes_cls"])  # nothing cached under that identity: the model loads
    assert records(cache) == []
    assert run(tmp_path, "again", cache, ["shapes_cls"]) and len(records(cache)) == 1
    EmbeddingStore(cache).clear([TINY])
    assert records(cache) == []


def test_pins_change_with_what_decides_the_model_and_hub_names_have_none(tmp_path):
    catalog = Catalog.load()
    adapter = MODEL_ADAPTERS.get("openclip")
    cpu = torch.device("cpu")

    def pin(text, device=cpu, precision="fp32", trimming=True):
        return identity_pin(adapter, catalog.resolve_model(text), device, precision, trimming)

    assert pin("openclip:ViT-B-32@openai") is None  # a hub tag: only loading tells which weights
    base = pin(TINY)
    assert base is not None and base == pin(TINY)
    assert len({base, pin(TINY + "?seed=1"), pin(TINY, precision="bf16"), pin(TINY, trimming=False), pin(TINY, torch.device("meta"))}) == 5
    checkpoint = tmp_path / "w.pt"
    checkpoint.write_bytes(b"weights")
    local = pin(f"openclip:{checkpoint}?arch=ViT-S-32")
    os.utime(checkpoint, ns=(1, 1))
    assert local is not None and pin(f"openclip:{checkpoint}?arch=ViT-S-32") not in (None, local)
