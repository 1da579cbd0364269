"""``vlbench.Evaluator`` in a training loop against a fresh ``vlbench run`` and the raw model forward.

For each task (shapes_cls, and the generic image-folder task over N generated JPEGs), with one
open_clip model (random init: the cost of trained weights):

- fresh run: ``python -m vlbench run`` on a checkpoint of the same weights, from process start to exit
  (``--no-cache``: a training loop's weights are new at every evaluation);
- evaluator: the time to build it (task files checked, data read, images decoded and held), then the
  wall time of each call on the in-memory model, its weights changed between calls; the first call and
  the median of the later ones;
- raw forward: the images transformed beforehand (untimed), then only ``encode_image`` on the batches
  and the task's class prompts through the adapter's text path (sorted by length, batches of 256,
  padding trimmed as vlbench does): the bound for any harness.

    python benchmarks/evaluator_speed.py --arch vlbench-tiny --images 2000 --calls 3

All runs use the same batch size, threads and bootstrap replicates (default 0: the numbers only).
"""

from __future__ import annotations

import argparse
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
        Image.fromarray(rng.integers(0, 255, (size, size * 4 // 3, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)


def open_clip_model(arch: str):
    from vlbench.models.openclip import _open_clip, _quiet_open_clip

    open_clip = _open_clip()
    torch.manual_seed(0)
    with _quiet_open_clip():
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
    return model.eval(), preprocess, open_clip.get_tokenizer(arch)


def fresh_run(checkpoint: Path, arch: str, task: str, overrides: list[str], data_root: Path, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "vlbench", "run", "--model", f"openclip:{checkpoint}?arch={arch}", "--tasks", task, "--output", out,
                   "--no-cache", "--batch-size", str(args.batch_size), "--bootstrap-replicates", str(args.bootstrap_replicates),
                   "--data-root", str(data_root), *[part for item in overrides for part in ("--set", item)]]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True)
        return time.perf_counter() - started


def evaluator_calls(model, preprocess, tokenizer, task: str, settings: dict, data_root: Path, args: argparse.Namespace) -> tuple[float, list[float], dict]:
    import vlbench

    started = time.perf_counter()
    evaluator = vlbench.Evaluator([task], data_root=data_root, settings=settings, batch_size=args.batch_size,
                                  bootstrap_replicates=args.bootstrap_replicates)
    built = time.perf_counter() - started
    calls = []
    for step in range(args.calls):
        started = time.perf_counter()
        metrics = evaluator(model, preprocess=preprocess, tokenizer=tokenizer, step=step)
        calls.append(time.perf_counter() - started)
        with torch.no_grad():  # a training step's worth of change
            for p in model.parameters():
                p.add_(1e-3 * torch.randn_like(p))
    held = evaluator.held
    evaluator.close()
    return built, calls, {"metrics": metrics, "held_images": held.held, "held_mb": held.bytes / 2**20}


def raw_forward(model, preprocess, tokenizer, task: str, settings: dict, data_root: Path, batch_size: int) -> tuple[float, int]:
    """Seconds for encode_image over the task's transformed images plus encode_text over its class prompts."""
    from vlbench.kinds import TASK_KINDS
    from vlbench.kinds.base import RunContext
    from vlbench.kinds.classification import fill_template
    from vlbench.models.openclip import OpenClipAdapter
    from vlbench.spec.catalog import Catalog
    from vlbench.spec.model_spec import parse_model_spec

    spec = Catalog.load().load_task(task, settings)
    kind = TASK_KINDS.get(spec.kind)()
    data, _ = kind.load(spec, RunContext(data_root, None))  # type: ignore[arg-type]
    pixels = torch.stack([preprocess(ref.load()) for ref in data.images])
    classnames = data.classnames or spec.read_lines("classnames") or []
    templates = data.templates or spec.read_lines("templates") or ["a photo of a {c}."]
    texts = sorted((fill_template(t, c) for c in classnames for t in templates), key=len)
    # texts through the adapter's own text path (padding trimmed to each batch's longest, exactly), as vlbench encodes them
    adapter = OpenClipAdapter.from_model(model, preprocess, tokenizer, parse_model_spec("openclip:raw"), "cpu")
    with torch.inference_mode():
        model.encode_image(pixels[:2])
        started = time.perf_counter()
        for i in range(0, len(pixels), batch_size):
            model.encode_image(pixels[i : i + batch_size])
        for i in range(0, len(texts), 256):
            adapter.encode_texts(texts[i : i + 256])
        return time.perf_counter() - started, len(pixels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vlbench-tiny")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bootstrap-replicates", type=int, default=0)
    args = parser.parse_args()
    model, preprocess, tokenizer = open_clip_model(args.arch)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), model {args.arch} (random init), "
          f"batch size {args.batch_size}, bootstrap replicates {args.bootstrap_replicates}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_images(root / "data" / "images", args.images)
        checkpoint = root / "weights.pt"
        cases = [("shapes_cls", {}), ("imagefolder", {"dataset.path": str(root / "data" / "images")})]
        for task, settings in cases:
            built, calls, info = evaluator_calls(model, preprocess, tokenizer, task, settings, root / "data", args)
            torch.save(model.state_dict(), checkpoint)
            fresh = fresh_run(checkpoint, args.arch, task, [f"{k}={v}" for k, v in settings.items()], root / "data", args)
            raw, n = raw_forward(model, preprocess, tokenizer, task, settings, root / "data", args.batch_size)
            later = statistics.median(calls[1:]) if len(calls) > 1 else calls[0]
            print(f"\n{task}: {n} images, {info['held_images']} held in memory ({info['held_mb']:.0f} MB)")
            print(f"  fresh vlbench run (process start to exit): {fresh:7.2f} s")
            print(f"  Evaluator: built in {built:.2f} s; first call {calls[0]:.2f} s; later calls (median of {len(calls) - 1}) {later:.2f} s")
            print(f"  raw forward (images + class prompts):      {raw:7.2f} s")
            print(f"  later call vs fresh run: {fresh / later:.2f}x faster; raw forward / later call: {raw / later:.2f} of the bound")


if __name__ == "__main__":
    main()
