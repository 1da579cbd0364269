"""Do vlbench's DataComp tasks equal DataComp's evaluation code (CLIP_benchmark 1.4.0) where it differs from 1.6.2?

One webdataset in CLIP_benchmark's layout, drawn from the shapes world, whose ``classnames.txt`` has a blank
line (as CLEVR distance's): 1.4.0 drops it, so the names after it move up one; 1.6.2 keeps it. Both sides get
the same open_clip model and shards:

- vlbench: ``vlbench run`` on two task files over the folder, one as the CLIP_benchmark tasks are (1.6.2)
  and one including ``tasks/datacomp/_classification.yaml`` (the ``datacomp-*`` tasks' protocol);
- CLIP_benchmark: DataComp's own sequence (eval_utils/wds_eval.py): ``build_dataset("wds/...")``,
  ``zero_shot_classifier`` with its default amp (1.6.2: amp off, fp32 as vlbench's default precision),
  ``run_classification(amp=False)``, ``accuracy`` and ``balanced_accuracy_score`` of the argmax, once with
  1.4.0 and once with 1.6.2, each in a process of its own.

    pip install --no-deps --target /tmp/cb14 clip_benchmark==1.4.0
    pip install clip_benchmark==1.6.2 --no-deps && pip install webdataset
    python benchmarks/agreement_datacomp.py --clip-benchmark-1-4 /tmp/cb14

On the CPU 1.4.0's ``torch.cuda.amp.autocast`` does nothing, and vlbench's ``cuda_fp16`` autocast neither;
on a GPU both encode the class prompts in fp16. Exits 1 when a metric differs by more than --tolerance.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["red circle", "", "green square", "blue triangle", "yellow star"]  # a blank line, as CLEVR distance's list

# DataComp's eval_utils/wds_eval.py sequence, run in a process whose path puts one CLIP_benchmark version first
CLIP_BENCHMARK_SIDE = r"""
import json, sys
import numpy as np, torch
from clip_benchmark.datasets.builder import build_dataset
from clip_benchmark.metrics import zeroshot_classification as zsc
from sklearn.metrics import balanced_accuracy_score
from vlbench.spec.catalog import Catalog
from vlbench.models import MODEL_ADAPTERS

zsc.float = lambda value: float(np.asarray(value).item())  # 1.x calls float() on an array, which NumPy 2 refuses
spec = Catalog.load().resolve_model(sys.argv[1])
adapter = MODEL_ADAPTERS.get(spec.adapter)(spec, device="cpu")
dataset = build_dataset(dataset_name="wds/shapes", root=sys.argv[2], transform=adapter.image_transform, split="test", download=False)
loader = torch.utils.data.DataLoader(dataset.batched(64), batch_size=None, shuffle=False)
amp = {"amp": False} if sys.argv[3] == "off" else {}  # DataComp: the default (on); 1.6.2's torch.autocast would give bf16 on a CPU
classifier = zsc.zero_shot_classifier(adapter.model, adapter.tokenizer, dataset.classes, dataset.templates, "cpu", **amp)
logits, target = zsc.run_classification(adapter.model, classifier, loader, "cpu", amp=False)
acc1, = zsc.accuracy(logits, target, topk=(1,))
print(json.dumps({"classes": len(dataset.classes), "acc1": acc1,
                  "mean_per_class_recall": float(balanced_accuracy_score(target, logits.argmax(axis=1)))}))
"""


def write_webdataset(folder: Path, n: int, seed: int) -> None:
    from vlbench.datasets.shapes import classification_scene, object_classes

    names = object_classes()
    wanted = [c for c in CLASSES if c]
    (folder / "test").mkdir(parents=True)
    with tarfile.open(folder / "test" / "0.tar", "w") as tar:
        index = count = 0
        while count < n:
            scene, label = classification_scene(seed, index)
            index += 1
            if names[label] not in wanted:
                continue
            buffer = io.BytesIO()
            scene.render().save(buffer, format="PNG")
            for extension, payload in (("png", buffer.getvalue()), ("cls", str(CLASSES.index(names[label])).encode())):
                info = tarfile.TarInfo(f"s{count:06d}.{extension}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            count += 1
    (folder / "test" / "nshards.txt").write_text("1")
    (folder / "classnames.txt").write_text("\n".join(CLASSES) + "\n")
    (folder / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\na drawing of a {c}.\n")


def vlbench_side(model: str, folder: Path, work: Path) -> dict[str, dict[str, float]]:
    from vlbench.results import schema as result_schema

    tasks = work / "tasks"
    tasks.mkdir()
    base = f"include: {REPO / 'tasks/classification/standard/_wds.yaml'}\nhelp: generated\ndataset:\n  sources:\n    - {{format: wds, path: {folder}, split: test}}\n"
    (tasks / "shapes-1.6.yaml").write_text("task: shapes-1.6\n" + base)
    (tasks / "shapes-datacomp.yaml").write_text(f"task: shapes-datacomp\ninclude: [shapes-1.6.yaml, {REPO / 'tasks/datacomp/_classification.yaml'}]\n")
    out = work / "results"
    subprocess.run([sys.executable, "-m", "vlbench", "run", "--model", model, "--tasks", "shapes-1.6,shapes-datacomp", "--tasks-dir", str(tasks),
                    "--output", str(out), "--device", "cpu", "--no-cache"], check=True, capture_output=True, text=True)
    return {result.task.name: result.metrics for _, result in result_schema.scan(out)}


def clip_benchmark_side(model: str, folder: Path, path: str | None, amp: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (path, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-c", CLIP_BENCHMARK_SIDE, model, str(folder), amp], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"CLIP_benchmark ({path or 'installed'}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="openclip:vlbench-tiny")
    parser.add_argument("--clip-benchmark-1-4", required=True, help="a folder where clip_benchmark==1.4.0 is installed (pip install --target)")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "wds_shapes"
        write_webdataset(folder, args.images, args.seed)
        ours = vlbench_side(args.model, folder, Path(tmp))
        old = clip_benchmark_side(args.model, folder, args.clip_benchmark_1_4, "default")  # DataComp's call
        new = clip_benchmark_side(args.model, folder, None, "off")  # fp32, as vlbench's default precision
    worst = 0.0
    print(f"model {args.model}, {args.images} images, class list {CLASSES}")
    print(f"{'pair':40} {'metric':24} {'vlbench':>9} {'CLIP_bench':>10} {'|diff|':>8}")
    for label, task, theirs in (("datacomp-* vs 1.4.0 (DataComp)", "shapes-datacomp", old), ("CLIP_benchmark tasks vs 1.6.2", "shapes-1.6", new)):
        for metric in ("acc1", "mean_per_class_recall"):
            diff = abs(ours[task][metric] - theirs[metric])
            worst = max(worst, diff)
            print(f"{label:40} {metric:24} {ours[task][metric]:9.6f} {theirs[metric]:10.6f} {diff:8.1e}")
    print(f"1.4.0 read {old['classes']} class names, 1.6.2 {new['classes']}; largest absolute difference: {worst:.2e}")
    sys.exit(0 if worst <= args.tolerance and np.isfinite(worst) else 1)


if __name__ == "__main__":
    main()
