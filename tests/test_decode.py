"""--decode gpu: the tensor transform read from the model's own, its fallbacks, and the benchmark's CPU path."""

import importlib.util

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image
from torchvision import transforms as T

from vlbench.datasets.images import FileImage
from vlbench.decode import TensorTransform, decode_on_cpu, encoded_jpeg
from vlbench.encoding import Encoder


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
