"""The pixel cache: image throughput of a cold run (empty pixel cache: decode, resize, crop) and of a
second checkpoint of the same architecture (warm pixel cache, cold embedding cache), against the raw
forward; and the time from process start to the first encoded batch.

    python benchmarks/pixel_cache_speed.py --arch ViT-B-32 --images 2000
    python benchmarks/pixel_cache_speed.py --arch vlbench-tiny --images 2000 --device cuda

Over N generated 427x320 JPEGs in class folders (the generic imagefolder task), with two random-init
checkpoints of ``--arch`` saved to disk (the cost of trained weights): each vlbench run is a fresh
``python -m vlbench run`` into a new output folder, sharing one cache folder; images/s is N over the
result's ``timing.image_encoding_s`` (the wall time producing image embeddings, waiting for decoded
batches included), so the class prompts and start-up are not in it. The raw forward is
``encode_image`` alone on batches transformed beforehand (untimed). The first batch: a subprocess
timestamps process start and the moment ``encode_images`` returns for the first time, in a warm-pixel
run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

FIRST_BATCH = """
import time, sys
started = {started}
from vlbench.models.base import ModelAdapter
original = ModelAdapter.encode_images
def timed(self, *args, **kwargs):
    out = original(self, *args, **kwargs)
    if not getattr(timed, "done", False):
        timed.done = True
        print("FIRST_BATCH", time.time() - started, flush=True)
    return out
ModelAdapter.encode_images = timed
from vlbench.cli import app
sys.argv = ["vlbench"] + {argv!r}
app()
"""


def make_images(root: Path, n: int, classes: int = 10) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (320, 427, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)


def checkpoint(arch: str, seed: int, path: Path) -> tuple[torch.nn.Module, object]:
    from vlbench.models.openclip import _open_clip, _quiet_open_clip

    open_clip = _open_clip()
    torch.manual_seed(seed)
    with _quiet_open_clip():
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
    torch.save(model.state_dict(), path)
    return model.eval(), preprocess


def vlbench_run(spec: str, images: Path, cache: Path, args: argparse.Namespace, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        argv = ["run", "--model", spec, "--tasks", "imagefolder", "--set", f"dataset.path={images}", "--output", out, "--cache-dir", str(cache),
                "--batch-size", str(args.batch_size), "--bootstrap-replicates", "0", "--device", args.device, "--precision", args.precision, *extra]
        subprocess.run([sys.executable, "-m", "vlbench", *argv], check=True, capture_output=True, text=True)
        result = next(Path(out).rglob("imagefolder/*.json"))
        return json.loads(result.read_text())["timing"]


def first_batch_seconds(spec: str, images: Path, cache: Path, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as out:
        argv = ["run", "--model", spec, "--tasks", "imagefolder", "--set", f"dataset.path={images}", "--output", out, "--cache-dir", str(cache),
                "--batch-size", str(args.batch_size), "--bootstrap-replicates", "0", "--device", args.device, "--precision", args.precision,
                "--overwrite"]
        code = "import time; started = time.time()\n" + FIRST_BATCH.replace("{started}", "started").replace("{argv!r}", repr(argv))
        done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        return float(next(line for line in done.stdout.splitlines() if line.startswith("FIRST_BATCH")).split()[1])


def raw_forward(model: torch.nn.Module, preprocess, images: Path, n: int, args: argparse.Namespace) -> float:
    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    files = sorted(images.rglob("*.jpg"))[:n]
    pixels = torch.stack([preprocess(Image.open(f).convert("RGB")) for f in files])
    model = model.to(device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    autocast = torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        model.encode_image(pixels[:2].to(device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for i in range(0, len(pixels), args.batch_size):
            model.encode_image(pixels[i : i + args.batch_size].to(device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        return len(pixels) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="as vlbench run --precision (autocast)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), {args.arch} (random init) {args.precision}, "
          f"batch {args.batch_size}, device {args.device}, {args.images} JPEGs 427x320")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = root / "images"
        make_images(images, args.images)
        model, preprocess = checkpoint(args.arch, 0, root / "a.pt")
        checkpoint(args.arch, 1, root / "b.pt")
        spec = lambda name: f"openclip:{root / name}?arch={args.arch}"  # noqa: E731
        forward = raw_forward(model, preprocess, images, args.images, args)
        cache = root / "cache"
        cold = vlbench_run(spec("a.pt"), images, cache, args, [])
        warm = vlbench_run(spec("b.pt"), images, cache, args, [])
        off = vlbench_run(spec("b.pt"), images, root / "cache_off", args, ["--no-pixel-cache"])
        first = first_batch_seconds(spec("b.pt"), images, root / "cache_first", args)
        rows = [("raw forward", forward, None), ("vlbench cold (empty pixel cache)", None, cold),
                ("vlbench warm pixel cache (2nd checkpoint)", None, warm), ("vlbench --no-pixel-cache (2nd checkpoint)", None, off)]
        for name, rate, timing in rows:
            if timing is not None:
                rate = args.images / timing["image_encoding_s"]
                print(f"{name:44} {rate:9.1f} images/s   {rate / forward:5.2f} x forward   decoded: {timing['images_decoded']}")
            else:
                print(f"{name:44} {rate:9.1f} images/s")
        print(f"process start to the first encoded batch (a fresh cache): {first:.2f} s")


if __name__ == "__main__":
    main()
