"""The persistent embedding cache: warm runs encode nothing, numbers are bit-identical, damage and
concurrent writers never leave a trusted wrong entry, identities change when inputs may have."""

import gzip
import json
import multiprocessing
import os
import tarfile

import pytest
import torch
from conftest import TINY
from typer.testing import CliRunner

from vlbench.spec.catalog import Catalog
from vlbench.cli import app
from vlbench.datasets.images import FileImage, TarMemberImage
from vlbench.datasets.shapes import ShapesImage
from vlbench.encoding.cache import EmbeddingStore, key_digest
from vlbench.encoding.encoder import Encoder
from vlbench.run.runner import Runner
from vlbench.run.settings import RunSettings

FINGERPRINT = {"id": "test:model", "precision": "fp32", "weights_sha256": "ab" * 32}


def run_shapes(tmp_path, output, cache_dir):
    options = RunSettings(data_root=tmp_path, output=tmp_path / output, num_workers=0, limit=32, batch_size=16, cache_dir=cache_dir)
    _, outcomes = Runner(Catalog.load(), options).run(TINY, ["shapes_cls"])
    result = json.loads(outcomes[0].result_file.read_text())
    with gzip.open(outcomes[0].result_file.parent / result["samples"], "rt") as samples:
        return result, samples.read()


def test_warm_run_encodes_nothing_and_all_three_runs_are_bit_identical(tmp_path):
    cache = tmp_path / "cache"
    cold, cold_samples = run_shapes(tmp_path, "cold", cache)
    warm, warm_samples = run_shapes(tmp_path, "warm", cache)
    off, off_samples = run_shapes(tmp_path, "off", None)
    assert (cold["timing"]["images_encoded"], cold["timing"]["images_from_cache"]) == (32, 0)
    assert cold["timing"]["texts_encoded"] > 0
    assert (warm["timing"]["images_encoded"], warm["timing"]["images_from_cache"]) == (0, 32)
    assert (warm["timing"]["texts_encoded"], warm["timing"]["texts_from_cache"]) == (0, cold["timing"]["texts_encoded"])
    assert cold["metrics"] == warm["metrics"] == off["metrics"]
    assert cold_samples == warm_samples == off_samples  # scores rounded to 1e-6, top-5 orders: identical


def encode_scenes(tiny_model, cache, n=6):
    encoder = Encoder(tiny_model, batch_size=4, cache=cache)
    refs = [ShapesImage("single", 7, i, 64) for i in range(n)]
    return encoder, encoder.images(refs), encoder.texts(["a red circle", "a blue square"])


def test_cached_values_are_the_exact_floats_and_a_damaged_entry_is_recomputed(tiny_model, tmp_path):
    store = EmbeddingStore(tmp_path)
    first, images, texts = encode_scenes(tiny_model, store.namespace(FINGERPRINT, "cpu"))
    first.cache.close()
    assert first.stats.images_encoded == 6 and first.stats.texts_encoded == 2
    data_file = next((tmp_path / "v1").glob("*/*.dat"))
    payload = bytearray(data_file.read_bytes())
    payload[5] ^= 0xFF  # damage the first image entry
    data_file.write_bytes(bytes(payload))
    warnings = []
    second, images_again, texts_again = encode_scenes(tiny_model, EmbeddingStore(tmp_path, warn=warnings.append).namespace(FINGERPRINT, "cpu"))
    assert second.stats.images_encoded == 1 and second.stats.images_from_cache == 5 and second.stats.texts_encoded == 0
    assert len(warnings) == 1 and "1 damaged embedding cache entry" in warnings[0] and "recomputing" in warnings[0]
    assert torch.equal(images[1:], images_again[1:]) and torch.equal(texts, texts_again)  # read back exactly
    assert torch.allclose(images[0], images_again[0], atol=1e-6)  # recomputed alone: another batch shape


def test_a_torn_index_record_is_ignored(tmp_path):
    namespace = EmbeddingStore(tmp_path).namespace(FINGERPRINT, "cpu")
    namespace.put_many([key_digest("a"), key_digest("b")], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    namespace.close()
    index_file = next((tmp_path / "v1").glob("*/*.idx"))
    with open(index_file, "ab") as f:  # a writer killed half-way through its next record
        f.write(key_digest("c") + b"\x00" * 7)
    reader = EmbeddingStore(tmp_path, warn=pytest.fail).namespace(FINGERPRINT, "cpu")
    found = reader.get_many([key_digest("a"), key_digest("b"), key_digest("c")])
    assert sorted(found) == [0, 1] and found[1].tolist() == [3.0, 4.0]


def _writer(root, worker):
    namespace = EmbeddingStore(root).namespace(FINGERPRINT, "cpu")
    for start in range(0, 60, 5):
        keys = [f"k{i}" for i in range(start, start + 5)] + [f"w{worker}-{start}"]
        values = torch.tensor([[float(i), float(-i)] for i in range(start, start + 5)] + [[float(worker), float(start)]])
        namespace.put_many([key_digest(k) for k in keys], values)
    namespace.close()


def test_two_processes_writing_at_once_leave_a_consistent_cache(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(tmp_path, w)) for w in (1, 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    reader = EmbeddingStore(tmp_path, warn=pytest.fail).namespace(FINGERPRINT, "cpu")
    shared = reader.get_many([key_digest(f"k{i}") for i in range(60)])
    assert [shared[i].tolist() for i in range(60)] == [[float(i), float(-i)] for i in range(60)]
    own = reader.get_many([key_digest(f"w{w}-{s}") for w in (1, 2) for s in range(0, 60, 5)])
    assert len(own) == 24 and own[12].tolist() == [2.0, 0.0]
    assert EmbeddingStore(tmp_path).info()[0]["entries"] == 60 + 24


def test_input_identities_change_when_the_input_may_have(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"x" * 10)
    before = FileImage(str(image)).cache_id
    assert FileImage(str(image), box=(0, 0, 1, 1)).cache_id != before
    image.write_bytes(b"y" * 11)
    assert FileImage(str(image)).cache_id != before
    assert FileImage(str(tmp_path / "missing.png")).cache_id is None
    shard = tmp_path / "0.tar"
    with tarfile.open(shard, "w") as tar:
        tar.add(image, "s1.png")
    member = TarMemberImage(str(shard), "s1.png", 512, 11)
    stamp = member.cache_id
    assert "|512|11" in stamp and str(os.stat(shard).st_size) in stamp
    os.utime(shard, ns=(1, 1))
    assert member.cache_id != stamp
    assert ShapesImage("single", 1, 2, 64).cache_id != ShapesImage("single", 1, 3, 64).cache_id


def test_cache_info_and_clear_by_model(tmp_path):
    store = EmbeddingStore(tmp_path)
    for model in ("openclip:vlbench-tiny@shapes", "openclip:vlbench-tiny@random"):
        store.namespace({**FINGERPRINT, "id": model}, "cpu").put_many([key_digest("t")], torch.ones(1, 4))
    runner = CliRunner()
    info = runner.invoke(app, ["cache", "info", "--cache-dir", str(tmp_path)])
    assert info.exit_code == 0 and "vlbench-tiny@random" in info.output and "2 entries" in info.output
    cleared = runner.invoke(app, ["cache", "clear", "--model", "openclip:vlbench-tiny@random", "--cache-dir", str(tmp_path)])
    assert cleared.exit_code == 0 and "removed 1" in cleared.output
    assert [row["model"] for row in store.info()] == ["openclip:vlbench-tiny@shapes"]
    assert runner.invoke(app, ["cache", "clear", "--cache-dir", str(tmp_path)]).exit_code == 0
    assert store.info() == []
