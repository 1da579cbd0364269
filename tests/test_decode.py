"""--decode gpu: the tensor transform read from the model's own, its fallbacks, and the benchmark's CPU path."""

import importlib.util
import threading

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image
from torchvision import transforms as T

from vlbench.datasets.images import FileImage
from vlbench.encoding.gpu_decode import TensorTransform, decode_on_cpu, encoded_jpeg, fast_images, in_background
from vlbench.encoding.encoder import Encoder


def _photo(path, size=(150, 100), seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    pixels = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) % 256], -1) + rng.integers(0, 20, (size[1], size[0], 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
    return path


def test_tensor_transform_reads_the_model_transform(tiny_model):
    fast = TensorTransform.from_transform(tiny_model.image_transform)
    assert fast is not None and fast.mean == pytest.approx(tiny_model.pixel_mean_std[0]) and fast.std == pytest.approx(tiny_model.pixel_mean_std[1])
    assert [type(step) for step in fast.geometry] == [T.Resize, T.CenterCrop]
    assert TensorTransform.from_transform(lambda image: image) is None  # e.g. a transformers processor
    assert TensorTransform.from_transform(T.Compose([T.Resize(8), T.ColorJitter(), T.ToTensor()])) is None
    assert TensorTransform.from_transform(T.Compose([T.Resize(8), T.CenterCrop(8)])) is None  # no ToTensor


def test_fast_pixels_are_close_to_pil_and_other_inputs_take_the_pil_path(tmp_path, tiny_model):
    jpeg = _photo(tmp_path / "a.jpg")
    png = _photo(tmp_path / "b.png", seed=1)
    transform = tiny_model.image_transform
    fast = TensorTransform.from_transform(transform)(decode_on_cpu(encoded_jpeg(FileImage(str(jpeg)))))
    reference = transform(Image.open(jpeg).convert("RGB"))
    assert fast.shape == reference.shape and (fast - reference).abs().max() < 0.1  # a few grey levels / std
    assert encoded_jpeg(FileImage(str(png))) is None and encoded_jpeg(FileImage(str(jpeg), box=(0, 0, 50, 50))) is None

    refs = [FileImage(str(jpeg)), FileImage(str(png)), FileImage(str(jpeg), box=(10, 10, 90, 80))]
    pil = Encoder(tiny_model, batch_size=2).images(refs)
    gpu = Encoder(tiny_model, batch_size=2, decode="gpu").images(refs)
    assert torch.equal(gpu[1:], pil[1:])  # PNG and crop: the PIL path, bit for bit
    assert not torch.equal(gpu[0], pil[0]) and (gpu[0] - pil[0]).abs().max() < 0.02


def test_benchmark_agreement_on_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_pipeline", REPO / "benchmarks" / "gpu_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stats = module.agreement(tmp_path / "jpegs", 12, batch_size=8)
    assert len(list((tmp_path / "jpegs").glob("*.jpg"))) == 12
    with Image.open(tmp_path / "jpegs" / "000000.jpg") as first:
        assert first.size == (500, 375)
    assert stats["top1_agreement"] >= 11 / 12 and stats["acc1_pil"] >= 0.75  # the shipped model knows its shapes
    assert 0 < stats["max_abs_embedding_difference"] < 0.02 and stats["min_cosine"] > 0.999
    assert stats["acc1_difference"] == pytest.approx(stats["acc1_fast"] - stats["acc1_pil"])


def test_batched_decoding_of_packed_jpegs_matches_decoding_in_workers(tmp_path, tiny_model):
    # the CUDA path's batch layout (payloads packed per batch, decoded together), run on the CPU
    refs = [FileImage(str(_photo(tmp_path / f"{i}.jpg", size=(120 + 10 * (i // 2), 90), seed=i))) for i in range(5)]  # pairs of one size
    refs.insert(2, FileImage(str(_photo(tmp_path / "p.png", seed=9))))  # a fallback between JPEGs
    fast = fast_images(tiny_model, batch_size=4, num_workers=1)
    packed = torch.cat(list(fast.batches(refs, decode_in_workers=False)))
    in_workers = torch.cat(list(fast.batches(refs, decode_in_workers=True)))
    assert packed.shape == (6, 3, *in_workers.shape[2:]) and torch.equal(packed, in_workers)
    assert torch.equal(packed[2], tiny_model.image_transform(Image.open(tmp_path / "p.png").convert("RGB")))


def test_background_batches_keep_order_raise_errors_and_stop_when_closed():
    cpu = torch.device("cpu")
    assert [int(t) for t in in_background(iter(torch.arange(7)), cpu)] == list(range(7))

    def failing():
        yield torch.tensor(1)
        raise RuntimeError("bad batch")

    stream = in_background(failing(), cpu)
    assert int(next(stream)) == 1
    with pytest.raises(RuntimeError, match="bad batch"):
        next(stream)

    produced, closed = [], []

    def endless():
        try:
            while True:
                produced.append(len(produced))
                yield torch.tensor(produced[-1])
        finally:
            closed.append(True)

    source = endless()  # held here: only an explicit close ends it
    stream = in_background(source, cpu, depth=2)
    assert int(next(stream)) == 0
    stream.close()  # the producer thread stops instead of running on, and closes its source
    count = len(produced)
    threading.Event().wait(0.3)
    assert len(produced) == count <= 4 and closed == [True]


def test_asynchronous_copies_are_read_only_after_their_event(tmp_path, tiny_model, monkeypatch):
    # what a CUDA run does: each batch's copy to the host completes behind the next batch's launch
    import vlbench.encoding.encoder as encoding

    class Copy:
        def __init__(self):
            self.done = False

        def synchronize(self):
            self.done = True

    copies = []

    def copy_later(embeddings):
        copies.append(Copy())
        return embeddings, copies[-1]

    refs = [FileImage(str(_photo(tmp_path / f"{i}.jpg", seed=i))) for i in range(5)]
    expected = Encoder(tiny_model, batch_size=2).images(refs)
    monkeypatch.setattr(encoding, "_copy_to_host", copy_later)
    encoder = Encoder(tiny_model, batch_size=2)
    seen = []
    for indices, embeddings in encoder.iter_images(refs):
        seen.append(indices)
        assert all(copy.done for copy in copies[: len(seen)])
        assert len(copies) == min(len(seen) + 1, 3)  # the next batch was launched before this one was read
    assert seen == [[0, 1], [2, 3], [4]] and encoder.stats.images_encoded == 5
    assert torch.equal(encoder.images(refs), expected)


def test_a_synchronous_batch_after_an_asynchronous_one_loses_nothing(tmp_path, tiny_model, monkeypatch):
    import vlbench.encoding.encoder as encoding

    class Copy:
        def synchronize(self):
            pass

    calls = []

    def alternate(embeddings):  # async, sync, async, ...
        calls.append(len(calls))
        return embeddings, (Copy() if len(calls) % 2 else None)

    refs = [FileImage(str(_photo(tmp_path / f"{i}.jpg", seed=i))) for i in range(7)]
    expected = Encoder(tiny_model, batch_size=2).images(refs)
    monkeypatch.setattr(encoding, "_copy_to_host", alternate)
    encoder = Encoder(tiny_model, batch_size=2)
    seen = [indices for indices, _ in encoder.iter_images(refs)]
    assert sorted(i for chunk in seen for i in chunk) == list(range(7)) and encoder.stats.images_encoded == 7
    assert torch.equal(encoder.images(refs), expected)


def test_prefetched_images_are_the_ones_iterated_and_a_stale_prefetch_is_dropped(tmp_path, tiny_model, monkeypatch):
    refs = [FileImage(str(_photo(tmp_path / f"{i}.jpg", seed=i))) for i in range(5)]
    others = refs[:3]
    expected = Encoder(tiny_model, batch_size=2).images(refs)
    encoder = Encoder(tiny_model, batch_size=2, num_workers=1)
    started = []
    original = Encoder._loader
    monkeypatch.setattr(Encoder, "_loader", lambda self, chosen, transform: started.append(len(chosen)) or original(self, chosen, transform))
    encoder.prefetch_images(refs)
    assert started == [5]  # the loader (and its worker) started before anything was iterated
    assert torch.equal(encoder.images(refs), expected) and started == [5] and encoder.stats.images_encoded == 5
    encoder.prefetch_images(refs)  # all in the run's cache now: nothing to start
    assert started == [5]
    fresh = Encoder(tiny_model, batch_size=2, num_workers=1)
    fresh.prefetch_images(refs)
    alone = Encoder(tiny_model, batch_size=2).images(others)
    assert torch.equal(fresh.images(list(others)), alone) and fresh._prefetched is None  # other refs: their own loader
