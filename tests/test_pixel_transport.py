"""The PIL path's split transform: uint8 crops from the workers, ToTensor/Normalize by table lookup,
bit for bit the model's own transform."""

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from vlbench.encoding.transport import SplitTransform, level_table


def _images():
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (90, 140, 3), dtype=np.uint8))
    yield rgb
    yield Image.fromarray(rng.integers(0, 256, (300, 200), dtype=np.uint8), mode="L")
    yield Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8), mode="RGBA")
    yield rgb.convert("P")
    yield rgb.convert("CMYK")


def test_split_transform_gives_the_full_transform_bit_for_bit(tiny_model):
    transform = tiny_model.image_transform
    split = SplitTransform.from_transform(transform)
    assert split is not None
    for image in _images():
        crop = split.to_uint8(image)
        assert crop.dtype == torch.uint8 and crop.shape[0] == 3
        assert torch.equal(split.levels(crop.unsqueeze(0))[0], transform(image)), image.mode


def test_level_table_holds_every_level_of_every_channel():
    normalize = T.Normalize((0.5, 0.25, 0.0), (0.5, 2.0, 1.0))
    table = level_table(normalize)
    levels = torch.arange(256, dtype=torch.float32) / 255
    assert table.shape == (3, 256) and torch.equal(table[0], (levels - 0.5) / 0.5)
    assert torch.equal(table[1], (levels - 0.25) / 2.0) and torch.equal(table[2], levels)
    assert torch.equal(level_table(None)[1], levels)


def test_transforms_that_cannot_be_split_keep_the_full_path():
    rgb = lambda image: image.convert("RGB")  # noqa: E731
    rgb.__name__ = "_convert_to_rgb"
    assert SplitTransform.from_transform(lambda image: image) is None  # e.g. a transformers processor
    assert SplitTransform.from_transform(T.Compose([T.Resize(8), T.ToTensor()])) is None  # no RGB guarantee
    assert SplitTransform.from_transform(T.Compose([T.Resize(8), rgb, T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3), T.RandomErasing()])) is None
    assert SplitTransform.from_transform(T.Compose([T.Resize(8), rgb, T.ToTensor()])) is not None

    class Scaled(T.ToTensor):  # a ToTensor of its own: not what the table reproduces
        def __call__(self, pic):
            return super().__call__(pic) * 2

    assert SplitTransform.from_transform(T.Compose([T.Resize(8), rgb, Scaled()])) is None


def test_the_table_goes_to_workers_without_its_device_copies():
    import pickle

    table = SplitTransform.from_transform(T.Compose([T.Resize(8), _ConvertRGB(), T.ToTensor()])).levels
    pixels = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    looked_up = table(pixels)
    copy = pickle.loads(pickle.dumps(table))
    assert len(table._per_device) == 1 and copy._per_device == {} and torch.equal(copy(pixels), looked_up)


class _ConvertRGB:  # open_clip 3.x's MaybeConvertMode("RGB"), in short
    mode = "RGB"

    def __call__(self, image):
        return image.convert("RGB")


def test_the_encoder_s_uint8_transport_gives_the_same_embeddings(tmp_path, tiny_model, monkeypatch):
    # what the PIL path does on CUDA, run on the CPU: workers send uint8 crops, the table finishes them
    from vlbench.datasets.images import FileImage
    from vlbench.encoding.encoder import Encoder

    rng = np.random.default_rng(5)
    refs = []
    for i, mode in enumerate(["RGB", "L", "RGBA", "RGB", "P"]):
        path = tmp_path / f"{i}.{'png' if mode in ('RGBA', 'P') else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, (70 + 9 * i, 110, 3), dtype=np.uint8)).convert(mode).save(path)
        refs.append(FileImage(str(path)))
    full = Encoder(tiny_model, batch_size=2, num_workers=1, uint8_transport=False).images(refs)
    split = Encoder(tiny_model, batch_size=2, num_workers=1, uint8_transport=True).images(refs)
    assert torch.equal(split, full)
    crops = []
    original = SplitTransform.to_uint8
    monkeypatch.setattr(SplitTransform, "to_uint8", lambda self, image: crops.append(1) or original(self, image))
    in_process = Encoder(tiny_model, batch_size=2, num_workers=0, uint8_transport=True).images(refs)
    assert len(crops) == len(refs) and torch.equal(in_process, full)  # the split path did run
