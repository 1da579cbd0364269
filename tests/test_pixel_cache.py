"""The pixel cache: a second checkpoint of the same architecture reads every transformed image instead of
decoding it, with bit-identical embeddings and metrics; damage, torn records, concurrent writers and the size
budget never leave a trusted wrong crop."""

import gzip
import json
import multiprocessing
import os
import time

import pytest
import torch
from conftest import TINY
from typer.testing import CliRunner

from vlbench.cli import app
from vlbench.datasets.shapes import ShapesImage
from vlbench.encoding.cache import key_digest
from vlbench.encoding.pixel_cache import PixelStore, decode_crop, encode_crop, geometry_identity
from vlbench.encoding.transport import SplitTransform
from vlbench.run.runner import Runner
from vlbench.run.settings import RunSettings
from vlbench.spec.catalog import Catalog

OTHER = "openclip:vlbench-tiny@random?seed=1"  # another checkpoint of the same architecture and transform


def run_shapes(tmp_path, output, model, cache_dir, pixel_cache=True, task="shapes_cls", limit=32, workers=0):
    options = RunSettings(data_root=tmp_path, output=tmp_path / output, num_workers=workers, limit=limit, batch_size=16, cache_dir=cache_dir,
                          pixel_cache=pixel_cache, bootstrap_replicates=0)
    _, outcomes = Runner(Catalog.load(), options).run(model, [task])
    result = json.loads(outcomes[0].result_file.read_text())
    with gzip.open(outcomes[0].result_file.parent / result["samples"], "rt") as samples:
        return result, samples.read()


def test_a_second_checkpoint_reads_the_crops_and_gets_bit_identical_numbers(tmp_path):
    cache = tmp_path / "cache"
    first, _ = run_shapes(tmp_path, "first", TINY, cache)
    assert first["timing"]["images_decoded"] == {"pil": 32}
    warm, warm_samples = run_shapes(tmp_path, "warm", OTHER, cache)
    assert warm["timing"]["images_decoded"] == {"pixel_cache": 32} and warm["timing"]["images_encoded"] == 32
    off, off_samples = run_shapes(tmp_path, "off", OTHER, tmp_path / "other_cache", pixel_cache=False)
    assert off["timing"]["images_decoded"] == {"pil": 32}
    assert warm["metrics"] == off["metrics"] and warm_samples == off_samples


def test_segmentation_reads_its_resized_images_from_the_pixel_cache(tmp_path):
    cache = tmp_path / "cache"
    first, first_samples = run_shapes(tmp_path, "first", TINY, cache, task="shapes_seg", limit=6, workers=2)
    assert first["timing"]["images_decoded"] == {"pil": 6}
    warm, warm_samples = run_shapes(tmp_path, "warm", TINY, cache, task="shapes_seg", limit=6)
    assert warm["timing"]["images_decoded"] == {"pixel_cache": 6}
    off, off_samples = run_shapes(tmp_path, "off", TINY, tmp_path / "other_cache", pixel_cache=False, task="shapes_seg", limit=6)
    assert off["timing"]["images_decoded"] == {"pil": 6}
    assert warm["metrics"] == off["metrics"] == first["metrics"] and warm_samples == off_samples == first_samples
    assert any("segmentation resize_short_side" in row["steps"] for row in PixelStore(cache).info())


def scenes(n=6):
    return [ShapesImage("single", 7, i, 64) for i in range(n)]


def crops_through(store, split, refs, decoded_log):
    def decode(todo):
        decoded_log.extend(ref.index for ref in todo)
        return [torch.stack([split.to_uint8(ref.load()) for ref in todo[i:i + 4]]) for i in range(0, len(todo), 4)]

    stats: dict[str, int] = {}
    out = torch.cat(list(store.batches(refs, split, 4, decode, stats)))
    return out, stats


@pytest.fixture
def split(tiny_model):
    return SplitTransform.from_transform(tiny_model.image_transform)


def test_crops_read_back_exactly_and_a_damaged_one_is_decoded_again(tmp_path, split):
    store = PixelStore(tmp_path)
    first, stats = crops_through(store, split, scenes(), [])
    store.close()
    assert stats == {"pixel_cache": 0, "pil": 6}
    assert torch.equal(first, torch.stack([split.to_uint8(ref.load()) for ref in scenes()]))
    data_file = next(store.base.glob("*/*.dat"))
    payload = bytearray(data_file.read_bytes())
    payload[20] ^= 0xFF  # inside the first crop
    data_file.write_bytes(bytes(payload))
    warnings, decoded = [], []
    again, stats = crops_through(PixelStore(tmp_path, warn=warnings.append), split, scenes(), decoded)
    assert stats == {"pixel_cache": 5, "pil": 1}
    assert decoded == []  # found damaged when its batch is built: decoded there, not by the loader
    assert len(warnings) == 1 and "1 damaged pixel cache entry" in warnings[0]
    assert torch.equal(first, again)
    third, stats = crops_through(PixelStore(tmp_path), split, scenes(), decoded)
    assert stats == {"pixel_cache": 6, "pil": 0} and torch.equal(first, third)  # and stored again


def test_stored_crops_are_read_as_their_batch_is_built(tmp_path, split, monkeypatch):
    store = PixelStore(tmp_path)
    crops_through(store, split, scenes(), [])
    store.close()
    from vlbench.encoding.cache import CacheNamespace

    reads = []
    original = CacheNamespace.get_payload
    monkeypatch.setattr(CacheNamespace, "get_payload", lambda self, key: reads.append(key) or original(self, key))
    batches = PixelStore(tmp_path).batches(scenes(), split, 4, lambda todo: iter(()), {})
    assert reads == []
    assert len(next(batches)) == 4 and len(reads) == 4  # resident memory: one batch, not the dataset


def test_a_torn_index_record_is_ignored(tmp_path, split):
    store = PixelStore(tmp_path)
    namespace = store.namespace(geometry_identity(split))
    crop = torch.arange(12, dtype=torch.uint8).view(3, 2, 2)
    namespace.put_payloads([key_digest("a")], [encode_crop(crop)])
    namespace.close()
    with open(next(store.base.glob("*/*.idx")), "ab") as f:  # a writer killed half-way through its next record
        f.write(key_digest("b") + b"\x00" * 7)
    found = PixelStore(tmp_path, warn=pytest.fail).namespace(geometry_identity(split)).get_payloads([key_digest("a"), key_digest("b")])
    assert sorted(found) == [0] and torch.equal(decode_crop(found[0]), crop)


def synthetic_crop(i):
    return (torch.arange(3 * 8 * 8, dtype=torch.int64).view(3, 8, 8) * (i + 1) % 251).to(torch.uint8)


def _writer(root, split, worker):
    torch.set_num_threads(1)  # a forked child must not wait on the parent's intra-op thread pool
    namespace = PixelStore(root).namespace(geometry_identity(split))
    for start in range(0, 60, 5):
        keys = [f"k{i}" for i in range(start, start + 5)] + [f"w{worker}-{start}"]
        crops = [synthetic_crop(i) for i in range(start, start + 5)] + [synthetic_crop(1000 * worker + start)]
        namespace.put_payloads([key_digest(k) for k in keys], [encode_crop(c) for c in crops])
    namespace.close()


def test_two_processes_writing_at_once_leave_a_consistent_cache(tmp_path, split):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(tmp_path, split, w)) for w in (1, 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    reader = PixelStore(tmp_path, warn=pytest.fail).namespace(geometry_identity(split))
    shared = reader.get_payloads([key_digest(f"k{i}") for i in range(60)])
    assert all(torch.equal(decode_crop(shared[i]), synthetic_crop(i)) for i in range(60))
    own = reader.get_payloads([key_digest(f"w{w}-{s}") for w in (1, 2) for s in range(0, 60, 5)])
    assert len(own) == 24 and torch.equal(decode_crop(own[12]), synthetic_crop(2000))
    assert len(list(PixelStore(tmp_path).base.glob("*/*.idx"))) == 2 and PixelStore(tmp_path).info()[0]["entries"] == 84


def test_the_budget_evicts_the_least_recently_used_files(tmp_path, split):
    old, new = PixelStore(tmp_path), PixelStore(tmp_path)
    crops_through(old, split, scenes(4), [])
    old.close()
    crops_through(new, split, [ShapesImage("single", 8, i, 64) for i in range(4)], [])
    new.close()
    (old_file, *_), (new_file, *_) = PixelStore(tmp_path).writer_files()
    past = time.time() - 3600
    os.utime(new_file, (past, past))  # the second file was last used an hour ago...
    reader = PixelStore(tmp_path)
    crops_through(reader, split, scenes(4), [])  # ...and the first is read now: its mtime is renewed
    reader.budget_bytes = os.path.getsize(old_file) + os.path.getsize(old_file.with_suffix(".idx"))
    reader.close()
    assert [row[0] for row in PixelStore(tmp_path).writer_files()] == [old_file]


def test_cache_info_shows_both_caches_and_clear_pixels_empties_the_pixel_cache(tmp_path):
    run_shapes(tmp_path, "first", TINY, tmp_path / "cache")
    runner = CliRunner()
    def said(*args):
        done = runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "cache")])
        assert done.exit_code == 0, done.output
        return " ".join(done.output.split())

    info = said("cache", "info")  # the 32 images and the class prompts' texts; the 32 crops
    assert "152 entries" in info and "32 transformed images" in info and "MaybeConvertMode" in info
    assert "removed 1 transform geometry" in said("cache", "clear", "--pixels")
    info = said("cache", "info")
    assert "152 entries" in info and "0 transformed images" in info
