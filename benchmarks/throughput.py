"""``vlbench run`` on a classification task against the raw model forward.

Both sides use the same model, batch size, images and class prompts. The raw side decodes and
transforms every image first (untimed) and then times only ``model.encode_image`` on the ready
batches, plus the encoding of the task's class prompts through the same adapter: the upper bound for
any harness. The vlbench side runs the full CLI code path (task file, data loading with workers,
encoding, scoring, writing results); its predict phase (from the result file) includes decoding,
which vlbench overlaps with the prompts, so the ratio compares whole predict phases.

    python benchmarks/throughput.py --model openclip:ViT-B-32@random --images 512 --batch-size 64

Random-init weights have the same cost as trained ones, so no download is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_images(root: Path, n: int, classes: int = 10, size: int = 320) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (size, size * 4 // 3, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)


def raw_prompts_seconds(model_spec: str, classes: int = 10) -> float:
    """Seconds to encode the image-folder task's class prompts (80 templates per class) as vlbench's
    adapter does: sorted by length, in batches of 256."""
    from vlbench.spec.catalog import Catalog
    from vlbench.kinds.classification import fill_template
    from vlbench.models import MODEL_ADAPTERS

    spec = Catalog.load().resolve_model(model_spec)
    adapter = MODEL_ADAPTERS.get(spec.adapter)(spec, device="cuda" if torch.cuda.is_available() else "cpu")
    repo = Path(__file__).resolve().parents[1]
    templates = [t for t in (repo / "tasks" / "_shared" / "openai_imagenet_templates.txt").read_text().splitlines() if t.strip()]
    texts = sorted((fill_template(t, f"class {c}") for c in range(classes) for t in templates), key=len)
    adapter.encode_texts(texts[:8])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), 256):
        adapter.encode_texts(texts[i : i + 256])
    if adapter.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def raw_forward(model_spec: str, root: Path, batch_size: int, repeats: int) -> float:
    from vlbench.spec.catalog import Catalog
    from vlbench.models import MODEL_ADAPTERS

    spec = Catalog.load().resolve_model(model_spec)
    adapter = MODEL_ADAPTERS.get(spec.adapter)(spec, device="cuda" if torch.cuda.is_available() else "cpu")
    files = sorted(root.rglob("*.jpg"))
    pixels = torch.stack([adapter.image_transform(Image.open(f).convert("RGB")) for f in files])
    batches = [pixels[i : i + batch_size].to(adapter.device) for i in range(0, len(pixels), batch_size)]
    rates = []
    with torch.inference_mode():
        adapter.model.encode_image(batches[0])  # warm-up
        for _ in range(repeats):
            if adapter.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for batch in batches:
                adapter.model.encode_image(batch)
            if adapter.device.type == "cuda":
                torch.cuda.synchronize()
            rates.append(len(files) / (time.perf_counter() - start))
    return statistics.median(rates)


def vlbench_run(model_spec: str, root: Path, batch_size: int, num_workers: int | None, repeats: int) -> tuple[float, float]:
    rates, end_to_end = [], []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(repeats):
            command = [sys.executable, "-m", "vlbench", "run", "--model", model_spec, "--tasks", "imagefolder",
                       "--set", f"dataset.path={root}", "--output", out, "--overwrite", "--no-cache", "--batch-size", str(batch_size)]
            if num_workers is not None:
                command += ["--num-workers", str(num_workers)]
            subprocess.run(command, check=True, capture_output=True, text=True)
            result = next(Path(out).glob("*/imagefolder/*.json"))  # <slug>/<task>/<config hash>.json
            timing = json.loads(result.read_text())["timing"]
            rates.append(timing["images_per_s"])
            end_to_end.append(timing["predict_s"])
    return statistics.median(rates), statistics.median(end_to_end)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="openclip:ViT-B-32@random")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        make_images(root, args.images)
        raw = raw_forward(args.model, root, args.batch_size, args.repeats)
        prompts_s = raw_prompts_seconds(args.model)
        ours, predict_s = vlbench_run(args.model, root, args.batch_size, args.num_workers, args.repeats)
    raw_predict_s = args.images / raw + prompts_s
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, cuda={torch.cuda.is_available()}")
    print(f"model {args.model}, {args.images} JPEG images, batch size {args.batch_size}, median of {args.repeats}")
    print(f"raw model forward on preprocessed batches: {raw:8.2f} images/s; class prompts {prompts_s:.2f} s")
    # vlbench decodes images while it encodes the prompts: compare whole predict phases
    print(f"predict phase, raw forward of images and prompts: {raw_predict_s:8.2f} s")
    print(f"predict phase, vlbench run (decoding included):   {predict_s:8.2f} s  ratio {raw_predict_s / predict_s:.3f}")
    print(f"vlbench run, images/s while encoding images (their decoding partly overlapped the prompts): {ours:8.2f}")


if __name__ == "__main__":
    main()
