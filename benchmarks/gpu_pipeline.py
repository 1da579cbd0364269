"""How far ``--decode gpu`` moves results, and how fast each decode path feeds the model.

(a) Agreement, on any machine: generated JPEGs of the shapes world (one coloured shape per image,
ImageNet-like 500x375 canvases, 30 classes) classified zero-shot by the shipped vlbench-tiny model
through the PIL path and through the fast path (torchvision.io decoding, tensor resize / crop /
normalisation; on the CPU without CUDA). Reports item-level agreement of the top-1 predictions,
both accuracies, and the largest embedding difference.

(b) Throughput, when CUDA is present: ViT-B-32 (random init; same cost as trained weights) in bf16
over >= 20k generated 500x375 JPEGs with film grain (about 90 KB each, so decoding costs what it
costs on photographs); images/s end to end (files on disk -> embeddings, through
vlbench's Encoder) for both decode paths, against the forward-only ceiling (the same batches,
already decoded, transformed and on the GPU; only ``encode_images`` timed).

    python benchmarks/gpu_pipeline.py                      # (a), and (b) when CUDA is present
    python benchmarks/gpu_pipeline.py --agreement-n 600 --throughput-n 20000 --batch-size 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlbench.spec.catalog import Catalog  # noqa: E402
from vlbench.datasets.images import FileImage  # noqa: E402
from vlbench.datasets.shapes import classification_scene, object_classes  # noqa: E402
from vlbench.encoding.encoder import Encoder  # noqa: E402
from vlbench.kinds.classification import zero_shot_classifier  # noqa: E402
from vlbench.models import MODEL_ADAPTERS  # noqa: E402
from vlbench.paths import builtin_tasks_dir  # noqa: E402

CANVAS = (500, 375)
SEED = 7
GRAIN = 18.0  # film grain strength of the throughput JPEGs (about 90 KB each, as ImageNet's)


def _grain(seed: int) -> np.ndarray:
    """A fixed field of film grain; shifted per image, it gives the JPEGs the entropy (and the file
    size, about 90 KB at 500x375) of photographs, so that decoding costs what it costs on ImageNet."""
    return np.random.default_rng(seed).normal(0.0, 1.0, (CANVAS[1], 2 * CANVAS[0], 3)).astype(np.float32)


_GRAIN: dict[int, np.ndarray] = {}


def _write_one(args: tuple[Path, int, float]) -> tuple[str, int]:
    root, index, grain = args
    scene, label = classification_scene(SEED, index, size=CANVAS[1])
    canvas = Image.new("RGB", CANVAS, (128 + index % 64, 120, 110))
    canvas.paste(scene.render(), ((CANVAS[0] - CANVAS[1]) // 2, 0))
    if grain:
        field = _GRAIN.setdefault(SEED, _grain(SEED))
        shift = (index * 37) % CANVAS[0]
        noisy = np.asarray(canvas, dtype=np.float32) + grain * field[:, shift : shift + CANVAS[0]]
        canvas = Image.fromarray(noisy.clip(0, 255).astype(np.uint8))
    path = root / f"{index:06d}.jpg"
    canvas.save(path, quality=90)
    return str(path), label


def write_jpegs(root: Path, n: int, workers: int = 1, grain: float = 0.0) -> list[tuple[str, int]]:
    """n JPEGs of 500x375 with one shape each (and film grain of this strength); (path, label) in order."""
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(root, i, grain) for i in range(n)]
    if workers > 1:
        with Pool(workers) as pool:
            return pool.map(_write_one, jobs, chunksize=64)
    return [_write_one(job) for job in jobs]


def load_model(spec_text: str, device: str, precision: str = "fp32"):
    spec = Catalog.load().resolve_model(spec_text)
    return MODEL_ADAPTERS.get(spec.adapter)(spec, device=device, precision=precision)


def agreement(root: Path, n: int, device: str = "cpu", batch_size: int = 64, num_workers: int = 0,
              model_spec: str = "openclip:vlbench-tiny", grain: float = 0.0) -> dict[str, float]:
    """Top-1 agreement, accuracies and embedding differences of the PIL and fast paths."""
    items = write_jpegs(root, n, workers=num_workers, grain=grain)
    refs = [FileImage(path) for path, _ in items]
    labels = torch.tensor([label for _, label in items])
    model = load_model(model_spec, device)
    templates = (builtin_tasks_dir() / "shapes" / "templates.txt").read_text().splitlines()
    results = {}
    for decode in ("pil", "gpu"):
        encoder = Encoder(model, batch_size=batch_size, num_workers=num_workers, decode=decode)
        classifier = zero_shot_classifier(encoder, object_classes(), [t for t in templates if t.strip()])
        results[decode] = encoder.images(refs)
        results[decode + "_top1"] = (results[decode] @ classifier.T).argmax(1)
    pil, fast = results["pil"], results["gpu"]
    acc_pil = (results["pil_top1"] == labels).float().mean().item()
    acc_fast = (results["gpu_top1"] == labels).float().mean().item()
    return {
        "n": n,
        "mean_file_kb": float(np.mean([os.path.getsize(path) for path, _ in items]) / 1e3),
        "top1_agreement": (results["pil_top1"] == results["gpu_top1"]).float().mean().item(),
        "acc1_pil": acc_pil,
        "acc1_fast": acc_fast,
        "acc1_difference": acc_fast - acc_pil,
        "max_abs_embedding_difference": (pil - fast).abs().max().item(),
        "min_cosine": (pil * fast).sum(1).min().item(),
    }


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def throughput(root: Path, n: int, batch_size: int, num_workers: int, device: str = "cuda",
               model_spec: str = "openclip:ViT-B-32@random", precision: str = "bf16", grain: float = GRAIN) -> list[tuple[str, float, float]]:
    """(path, images/s end to end, images/s forward-only on the same batches) for both decode paths."""
    refs = [FileImage(path) for path, _ in write_jpegs(root, n, workers=max(1, num_workers), grain=grain)]
    model = load_model(model_spec, device, precision)
    rows = []
    for decode in ("pil", "gpu"):
        encoder = Encoder(model, batch_size=batch_size, num_workers=num_workers, decode=decode)
        encoder.images(refs[: batch_size * 4])  # warm-up: workers, cuDNN/cuBLAS, nvJPEG
        encoder = Encoder(model, batch_size=batch_size, num_workers=num_workers, decode=decode)
        _sync()
        started = time.perf_counter()
        encoder.images(refs)
        _sync()
        end_to_end = n / (time.perf_counter() - started)
        batches = [pixels.to(device, non_blocking=True) for pixels in encoder._loader(refs, model.image_transform)]
        _sync()
        started = time.perf_counter()
        for pixels in batches:
            model.encode_images(pixels)
        _sync()
        ceiling = n / (time.perf_counter() - started)
        del batches
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        rows.append((decode, end_to_end, ceiling))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agreement-n", type=int, default=600)
    parser.add_argument("--throughput-n", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=max(0, (os.cpu_count() or 1) - 1))
    parser.add_argument("--model", action="append", default=None, help="model spec(s) for (b); default openclip:ViT-B-32@random")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the generated JPEGs (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    report: dict = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__, "agreement": {}, "throughput": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        device = "cuda" if cuda else "cpu"
        for grain in (0.0, GRAIN):
            stats = agreement(work / f"agreement-{grain:g}", args.agreement_n, device, min(args.batch_size, 64), args.num_workers, grain=grain)
            report["agreement"][f"grain={grain:g}"] = stats
            print(f"(a) PIL path vs fast path ({'GPU' if cuda else 'CPU'} decoding), vlbench-tiny, {stats['n']} generated 500x375 JPEGs, grain {grain:g}", flush=True)
            for key, value in stats.items():
                if key != "n":
                    print(f"  {key:30s} {value:.6f}")
        if not cuda:
            print("(b) skipped: no CUDA device")
        else:
            for model_spec in args.model or ["openclip:ViT-B-32@random"]:
                rows = throughput(work / "throughput", args.throughput_n, args.batch_size, args.num_workers, model_spec=model_spec)
                print(f"(b) {model_spec} bf16, {args.throughput_n} JPEGs 500x375 (grain {GRAIN:g}), batch {args.batch_size}, {args.num_workers} workers, {report['device']}")
                print(f"  {'decode':8s} {'end-to-end img/s':>18s} {'forward-only img/s':>20s} {'ratio':>7s}", flush=True)
                for decode, end_to_end, ceiling in rows:
                    print(f"  {decode:8s} {end_to_end:18.0f} {ceiling:20.0f} {end_to_end / ceiling:7.2f}", flush=True)
                    report["throughput"].append({"model": model_spec, "decode": decode, "end_to_end": end_to_end, "forward_only": ceiling,
                                                 "n": args.throughput_n, "batch_size": args.batch_size, "workers": args.num_workers})
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
