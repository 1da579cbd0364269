"""Do vlbench's zero-shot classification and retrieval numbers equal LAION's CLIP_benchmark's?

Both sides get the same open_clip model and the same images on disk: an image-folder tree of
shapes-world scenes (classification) and a Karpathy-format JSON with its images (retrieval). The
vlbench side is the ordinary CLI (`vlbench run --tasks imagefolder,flickr30k`); the CLIP_benchmark
side calls `clip_benchmark.metrics.zeroshot_classification.evaluate` and
`clip_benchmark.metrics.zeroshot_retrieval.evaluate` on torchvision/PyTorch data loaders built here,
with the model's own transform and tokenizer and mixed precision off (as vlbench's fp32 default).

    pip install clip_benchmark --no-deps   # its metrics need only torch, scikit-learn and tqdm
    python benchmarks/agreement_clip_benchmark.py --model openclip:vlbench-tiny

Prints every metric from both sides and their largest absolute difference; exits 1 when any
difference exceeds --tolerance.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vlbench import result_schema
from vlbench.datasets.shapes import (
    classification_scene,
    multi_object_scene,
    object_classes,
    retrieval_captions,
)

REPO = Path(__file__).resolve().parents[1]
SHAPES_TEMPLATES = REPO / "tasks" / "shapes" / "templates.txt"


def write_classification_tree(root: Path, n: int, seed: int) -> None:
    for index in range(n):
        scene, label = classification_scene(seed, index)
        folder = root / object_classes()[label].replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        scene.render().save(folder / f"{index:05d}.png")


def write_karpathy_retrieval(root: Path, n: int, seed: int) -> None:
    images = root / "flickr30k" / "flickr30k-images"
    images.mkdir(parents=True)
    entries = []
    for index in range(n):
        scene = multi_object_scene(seed, index)
        scene.render().save(images / f"{index:05d}.png")
        entries.append({"filename": f"{index:05d}.png", "split": "test", "sentences": [{"raw": c} for c in retrieval_captions(scene)]})
    (root / "flickr30k" / "dataset_flickr30k.json").write_text(json.dumps({"images": entries}))


def vlbench_side(model: str, data_root: Path, tree: Path, batch_size: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "vlbench", "run", "--model", model, "--tasks", "imagefolder,flickr30k",
                   "--data-root", str(data_root), "--output", out, "--batch-size", str(batch_size),
                   "--set", f"imagefolder:dataset.path={tree}", "--set", f"imagefolder:files.templates={SHAPES_TEMPLATES}"]
        subprocess.run(command, check=True, capture_output=True, text=True)
        found = {result.task.name: result.metrics for _, result in result_schema.scan(Path(out))}
        return {task: found[task] for task in ("imagefolder", "flickr30k")}


class KarpathyTest(torch.utils.data.Dataset):
    def __init__(self, root: Path, transform):
        self.root = root / "flickr30k"
        self.entries = json.loads((self.root / "dataset_flickr30k.json").read_text())["images"]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        entry = self.entries[index]
        image = Image.open(self.root / "flickr30k-images" / entry["filename"]).convert("RGB")
        return self.transform(image), [s["raw"] for s in entry["sentences"]]


def clip_benchmark_side(model_text: str, data_root: Path, tree: Path, batch_size: int) -> dict[str, dict[str, float]]:
    import torchvision
    from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval

    from vlbench.catalog import Catalog
    from vlbench.models import MODEL_ADAPTERS

    # CLIP_benchmark 1.6 calls float() on a one-element array, which NumPy 2 refuses; this module-level
    # float accepts it and changes nothing else in their code.
    zeroshot_classification.float = lambda value: float(np.asarray(value).item())

    spec = Catalog.load().resolve_model(model_text)
    adapter = MODEL_ADAPTERS.get(spec.adapter)(spec, device="cpu")
    model, tokenizer, transform = adapter.model, adapter.tokenizer, adapter.image_transform

    folder = torchvision.datasets.ImageFolder(str(tree), transform=transform)
    classnames = [name.replace("_", " ") for name in folder.classes]
    templates = [line.rstrip("\n") for line in SHAPES_TEMPLATES.read_text(encoding="utf-8").splitlines() if line.strip()]
    loader = torch.utils.data.DataLoader(folder, batch_size=batch_size)
    classification = zeroshot_classification.evaluate(model, loader, tokenizer, classnames, templates, "cpu", amp=False)

    retrieval_loader = torch.utils.data.DataLoader(KarpathyTest(data_root, transform), batch_size=batch_size, collate_fn=lambda batch: (torch.stack([b[0] for b in batch]), [b[1] for b in batch]))
    retrieval = zeroshot_retrieval.evaluate(model, retrieval_loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
    return {"imagefolder": {k: float(v) for k, v in classification.items() if isinstance(v, float)}, "flickr30k": retrieval}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="openclip:vlbench-tiny")
    parser.add_argument("--images", type=int, default=300, help="images per task")
    parser.add_argument("--seed", type=int, default=777, help="shapes seed (not one the built-in model was trained on)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_root, tree = Path(tmp) / "data", Path(tmp) / "tree"
        write_classification_tree(tree, args.images, args.seed)
        write_karpathy_retrieval(data_root, args.images, args.seed + 1)
        ours = vlbench_side(args.model, data_root, tree, args.batch_size)
        theirs = clip_benchmark_side(args.model, data_root, tree, args.batch_size)
    worst = 0.0
    print(f"model {args.model}, {args.images} images per task, shapes seeds {args.seed}/{args.seed + 1}")
    print(f"{'task':12} {'metric':28} {'vlbench':>10} {'CLIP_benchmark':>15}")
    for task, metrics in theirs.items():
        for name, value in metrics.items():
            mine = ours[task].get(name)
            worst = max(worst, abs(mine - value) if mine is not None else float("inf"))
            print(f"{task:12} {name:28} {mine if mine is not None else float('nan'):10.6f} {value:15.6f}")
    print(f"largest absolute difference: {worst:.2e}")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
