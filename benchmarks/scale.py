"""Where vlbench's time goes at scale: fixed costs, work shared between tasks, the embedding cache.

One invocation, one model, generated data, and these measurements with their ratios:

(a) one classification task (an image folder of generated JPEGs): the raw model forward on
    preprocessed batches and on the task's class prompts against the predict phase of ``vlbench run``
    with a cold cache (decoding included; vlbench decodes images while it encodes the prompts, so
    the images alone are no fair measure), and the time from process start to the first encoded
    batch, with the import cost of the heavy libraries and which of them ``vlbench run`` loads;
(b) the seven SugarCrepe subsets (the real annotation files, with generated placeholder images
    named as the COCO val2017 files they cite): ``vlbench run --tasks sugarcrepe`` against
    CLIP_benchmark's own evaluation (``clip_benchmark eval --dataset sugar_crepe``) on the same
    files, with accuracies side by side;
(c) the same suite run again from a warm embedding cache;
(d) 1 against 2 data-parallel CPU processes, when this vlbench has torchrun support.

Both harnesses load the same weights: a random-init checkpoint of ``--arch`` saved here (random
weights cost the same as trained ones). ``--sugarcrepe-images K`` keeps the items whose image is
among K distinct images (taken from the seven files in turn, so every subset keeps items); the
images stay shared across subsets as in the full set (1,560 images, 7,511 items).

    pip install clip_benchmark==1.6.2 --no-deps   # plus requests and pycocoevalcap, which its CLI imports
    python benchmarks/scale.py --arch ViT-S-32 --images 256 --sugarcrepe-images 120
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# the shared annotation folder beside the checkout (or beside the folder holding it)
SUGARCREPE = next((p for p in (REPO.parent / "shared" / "data" / "sugarcrepe", REPO.parents[1] / "shared" / "data" / "sugarcrepe") if p.is_dir()), REPO.parent / "shared" / "data" / "sugarcrepe")
SUBSETS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
HEAVY = ("torch", "torchvision", "open_clip", "timm", "transformers", "datasets", "pandas", "scipy", "sklearn")

# Runs the vlbench CLI, printing the wall-clock time at which the model returns its first batch.
TRACED_CLI = r"""
import sys, time
import vlbench.models.base as base
seen = []
def traced(name):
    original = getattr(base.ModelAdapter, name)
    def wrapper(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if not seen:
            seen.append(1)
            loaded = ",".join(m for m in HEAVY if m in sys.modules)
            print(f"FIRST_BATCH {time.time()!r} {loaded}", file=sys.stderr, flush=True)
        return out
    setattr(base.ModelAdapter, name, wrapper)
traced("encode_images"); traced("encode_texts")
from vlbench.cli import main
sys.argv = ["vlbench", *sys.argv[1:]]
main()
""".replace("HEAVY", repr(HEAVY))


def log(message: str) -> None:
    print(message, flush=True)


def write_jpegs(paths: list[Path], height: int, width: int, seed: int = 0) -> None:
    """Smooth random pictures (coarse noise, upsampled): JPEG sizes and decode costs of photos."""
    rng = np.random.default_rng(seed)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 255, (height // 16, width // 16, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((width, height), Image.BILINEAR).save(path, quality=90)


def env_with_repo() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def vlbench(args: list[str]) -> dict:
    """Run the CLI in a fresh process: wall seconds, seconds to the first encoded batch, modules loaded."""
    started = time.time()
    done = subprocess.run([sys.executable, "-c", TRACED_CLI, "run", *args], capture_output=True, text=True, env=env_with_repo())
    wall = time.time() - started
    if done.returncode != 0:
        raise SystemExit(f"vlbench failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    first = next((line.split() for line in done.stderr.splitlines() if line.startswith("FIRST_BATCH")), None)
    return {
        "wall_s": wall,
        "first_batch_s": float(first[1]) - started if first else None,
        "modules": first[2].split(",") if first and len(first) > 2 else [],
    }


def import_seconds(module: str, after: str | None) -> float:
    code = (f"import {after}\n" if after else "") + f"import time\nt = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_with_repo())
    return float(done.stdout.strip() or "nan")


def save_random_checkpoint(arch: str, path: Path) -> None:
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model(arch, pretrained=None)
    torch.save(model.state_dict(), path)


def load_adapter(spec_text: str):
    from vlbench.spec.catalog import Catalog
    from vlbench.models import MODEL_ADAPTERS

    spec = Catalog.load().resolve_model(spec_text)
    return MODEL_ADAPTERS.get(spec.adapter)(spec, device="cpu")


def class_prompts(classnames: list[str]) -> list[str]:
    """The prompts vlbench encodes for the image-folder task: the 80 OpenAI templates per class."""
    from vlbench.kinds.classification import fill_template

    templates = [t for t in (REPO / "tasks" / "_shared" / "openai_imagenet_templates.txt").read_text().splitlines() if t.strip()]
    return [fill_template(t, c) for c in classnames for t in templates]


def raw_forward(spec_text: str, files: list[Path], batch_size: int, prompts: list[str]) -> tuple[float, float]:
    """(images/s of model.encode_image alone on batches transformed beforehand, seconds to encode
    the class prompts as vlbench's adapter does: sorted by length, batches of 256)."""
    import torch

    adapter = load_adapter(spec_text)
    pixels = torch.stack([adapter.image_transform(Image.open(f).convert("RGB")) for f in files])
    batches = [pixels[i : i + batch_size] for i in range(0, len(pixels), batch_size)]
    texts = sorted(prompts, key=len)
    with torch.inference_mode():
        adapter.model.encode_image(batches[0][:4])  # warm-up
        started = time.perf_counter()
        for batch in batches:
            adapter.model.encode_image(batch)
        image_rate = len(files) / (time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(0, len(texts), 256):
            adapter.encode_texts(texts[i : i + 256])
        text_seconds = time.perf_counter() - started
    return image_rate, text_seconds


def result_json(out: Path, task: str) -> dict:
    """The one result of ``task`` under a results folder (``<slug>/<task>/<config hash>.json``)."""
    return json.loads(next(out.glob(f"*/{task}/*.json")).read_text())


def section_classification(work: Path, spec: str, args: argparse.Namespace, report: dict) -> None:
    tree = work / "imagefolder"
    files = [tree / f"class_{i % 8}" / f"{i:05d}.jpg" for i in range(args.images)]
    write_jpegs(files, 360, 480)
    log(f"(a) {args.images} JPEGs in 8 classes; raw forward ...")
    raw, raw_text_s = raw_forward(spec, files, args.batch_size, class_prompts([f"class {i}" for i in range(8)]))
    log("(a) vlbench run, cold cache ...")
    out = work / "out_cls"
    run = vlbench(["--model", spec, "--tasks", "imagefolder", "--set", f"dataset.path={tree}", "--output", str(out),
                   "--cache-dir", str(work / "cache_cls"), "--batch-size", str(args.batch_size), "--num-workers", str(args.num_workers)])
    timing = result_json(out, "imagefolder")["timing"]
    imports = {m: import_seconds(m, None if m in ("torch", "pandas") else "torch") for m in ("torch", "torchvision", "open_clip", "transformers", "datasets", "pandas")}
    raw_predict_s = args.images / raw + raw_text_s
    report["classification"] = {
        "raw_images_per_s": raw,
        "raw_prompts_s": raw_text_s,
        "vlbench_images_per_s": timing["images_per_s"],
        # images are decoded while the prompts encode, so the fair comparison is the whole predict
        # phase: raw forward of the same images and prompts vs vlbench's (decode included)
        "raw_predict_s": raw_predict_s,
        "vlbench_predict_s": timing["predict_s"],
        "ratio": raw_predict_s / timing["predict_s"],
        "vlbench_wall_s": run["wall_s"],
        "first_batch_s": run["first_batch_s"],
        "modules_loaded_at_first_batch": run["modules"],
        "import_s (torch alone; others after torch)": imports,
    }


def sugarcrepe_tree(work: Path, images: int) -> tuple[Path, int, int]:
    """<root>/sugarcrepe/<subset>.json + <root>/coco/val2017/*.jpg, and root/sugarcrepe/val2017 beside them."""
    items = {s: json.loads((SUGARCREPE / f"{s}.json").read_text()) for s in SUBSETS}
    columns = [[item["filename"] for item in content.values()] for content in items.values()]
    interleaved = [name for row in zip(*(c[: min(map(len, columns))] for c in columns)) for name in row]
    names = list(dict.fromkeys(interleaved + [n for c in columns for n in c]))  # every subset keeps some items
    keep = set(names[:images]) if images else set(names)
    root = work / "sc_data"
    (root / "sugarcrepe").mkdir(parents=True)
    count = 0
    for subset, content in items.items():
        kept = {k: v for k, v in content.items() if v["filename"] in keep}
        count += len(kept)
        (root / "sugarcrepe" / f"{subset}.json").write_text(json.dumps(kept))
    write_jpegs([root / "coco" / "val2017" / name for name in sorted(keep)], 480, 640, seed=1)
    (root / "sugarcrepe" / "val2017").symlink_to(root / "coco" / "val2017")
    return root, len(keep), count


def section_sugarcrepe(work: Path, spec: str, checkpoint: Path, args: argparse.Namespace, report: dict) -> None:
    root, n_images, n_items = sugarcrepe_tree(work, args.sugarcrepe_images)
    log(f"(b) SugarCrepe: {n_items} items over {n_images} shared images; vlbench cold ...")
    out = work / "out_sc"
    common = ["--model", spec, "--tasks", "sugarcrepe", "--data-root", str(root), "--output", str(out), "--cache-dir", str(work / "cache_sc"),
              "--batch-size", str(args.batch_size), "--num-workers", str(args.num_workers)]
    cold = vlbench(common)
    ours = {p.parent.name.removeprefix("sugarcrepe_"): json.loads(p.read_text())["metrics"]["accuracy"] for p in out.glob("*/sugarcrepe_*/*.json")}
    log("(c) vlbench again, warm cache ...")
    warm = vlbench([*common, "--overwrite"])
    entry = {"items": n_items, "images": n_images, "vlbench_cold_s": cold["wall_s"], "vlbench_warm_s": warm["wall_s"],
             "warm_speedup": cold["wall_s"] / warm["wall_s"], "vlbench_accuracy": ours}
    if args.skip_clip_benchmark:
        entry["clip_benchmark"] = "skipped (--skip-clip-benchmark)"
    else:
        log("(b) CLIP_benchmark eval --dataset sugar_crepe ...")
        theirs_dir = work / "out_cb"
        theirs_dir.mkdir()
        command = [sys.executable, "-m", "clip_benchmark.cli", "eval", "--dataset", "sugar_crepe", "--dataset_root", str(root / "sugarcrepe"),
                   "--model", args.arch, "--pretrained", str(checkpoint), "--batch_size", str(args.batch_size),
                   "--num_workers", str(args.num_workers), "--no_amp", "--output", str(theirs_dir / "{dataset}.json")]
        started = time.time()
        done = subprocess.run(command, capture_output=True, text=True)
        theirs_s = time.time() - started
        if done.returncode != 0:
            raise SystemExit(f"clip_benchmark failed:\n{done.stderr[-3000:]}")
        theirs = {}
        for path in theirs_dir.glob("*.json"):
            subset = next(s for s in SUBSETS if path.stem.endswith(s))
            theirs[subset] = json.loads(path.read_text())["metrics"]["acc"]
        entry.update({"clip_benchmark_s": theirs_s, "speedup_vs_clip_benchmark": theirs_s / cold["wall_s"], "clip_benchmark_accuracy": theirs,
                      "largest_accuracy_difference": max(abs(ours[s] - theirs[s]) for s in SUBSETS)})
    report["sugarcrepe"] = entry


def has_torchrun_support() -> bool:
    return any("torch.distributed" in p.read_text(encoding="utf-8") for p in (REPO / "vlbench").rglob("*.py"))


def section_data_parallel(work: Path, spec: str, args: argparse.Namespace, report: dict) -> None:
    if not has_torchrun_support():
        report["data_parallel"] = "skipped: this vlbench has no torchrun (torch.distributed) support"
        return
    tree = work / "imagefolder"
    times, metrics = {}, {}
    for nproc in (1, 2):
        out = work / f"out_dp{nproc}"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), "-m", "vlbench", "run",
                   "--model", spec, "--tasks", "imagefolder", "--set", f"dataset.path={tree}", "--output", str(out), "--no-cache",
                   "--batch-size", str(args.batch_size), "--num-workers", "0"]
        started = time.time()
        done = subprocess.run(command, capture_output=True, text=True, env={**env_with_repo(), "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // nproc))})
        times[nproc] = time.time() - started
        if done.returncode != 0:
            report["data_parallel"] = f"failed with {nproc} process(es): {done.stderr.strip().splitlines()[-1:]}"
            return
        metrics[nproc] = result_json(out, "imagefolder")["metrics"]
    report["data_parallel"] = {"1_process_s": times[1], "2_processes_s": times[2], "speedup": times[1] / times[2], "identical_metrics": metrics[1] == metrics[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ViT-S-32", help="open_clip architecture, random init (saved as a checkpoint both harnesses load)")
    parser.add_argument("--images", type=int, default=256, help="images in the classification task")
    parser.add_argument("--sugarcrepe-images", type=int, default=120, help="distinct COCO images kept (0: all 1,560)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--skip-clip-benchmark", action="store_true")
    parser.add_argument("--sections", default="a,b,d", help="which of a (classification), b (SugarCrepe, with c: warm), d (data parallel)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if not SUGARCREPE.is_dir() and "b" in args.sections:
        raise SystemExit(f"SugarCrepe annotation files not found at {SUGARCREPE}")
    report: dict = {"machine": f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", "arch": args.arch}
    work = Path(tempfile.mkdtemp(prefix="vlbench-scale-"))
    try:
        checkpoint = work / f"{args.arch}-random.pt"
        save_random_checkpoint(args.arch, checkpoint)
        spec = f"openclip:{checkpoint}?arch={args.arch}"
        started = time.time()
        if "a" in args.sections or "d" in args.sections:
            section_classification(work, spec, args, report)
        if "b" in args.sections:
            section_sugarcrepe(work, spec, checkpoint, args, report)
        if "d" in args.sections:
            section_data_parallel(work, spec, args, report)
        report["benchmark_s"] = time.time() - started
        report["load_average_at_end"] = round(os.getloadavg()[0], 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def print_report(report: dict) -> None:
    log(f"\nmachine: {report['machine']}; model: {report['arch']} random init, fp32, CPU")
    cls = report.get("classification")
    if cls:
        log(f"(a) raw forward: images {cls['raw_images_per_s']:.1f} img/s + class prompts {cls['raw_prompts_s']:.2f} s = {cls['raw_predict_s']:.2f} s; "
            f"vlbench cold predict phase (decoding included) {cls['vlbench_predict_s']:.2f} s; ratio {cls['ratio']:.2f} (target >= 0.95)")
        log(f"    process start -> first encoded batch: {cls['first_batch_s']:.2f} s (target <= 3 s); whole run {cls['vlbench_wall_s']:.1f} s")
        log(f"    loaded by then: {', '.join(cls['modules_loaded_at_first_batch'])}")
        log("    import seconds (torch alone, the others after torch): " + ", ".join(f"{k} {v:.2f}" for k, v in cls["import_s (torch alone; others after torch)"].items()))
    sc = report.get("sugarcrepe")
    if sc:
        log(f"(b) SugarCrepe {sc['items']} items / {sc['images']} images: vlbench cold {sc['vlbench_cold_s']:.1f} s")
        if "clip_benchmark_s" in sc:
            log(f"    CLIP_benchmark {sc['clip_benchmark_s']:.1f} s; speed-up {sc['speedup_vs_clip_benchmark']:.2f}x (target >= 4x); "
                f"largest accuracy difference {sc['largest_accuracy_difference']:.4f}")
            for subset in SUBSETS:
                log(f"      {subset:12s} vlbench {sc['vlbench_accuracy'][subset]:.4f}  CLIP_benchmark {sc['clip_benchmark_accuracy'][subset]:.4f}")
        else:
            log(f"    CLIP_benchmark: {sc['clip_benchmark']}")
        log(f"(c) warm re-run {sc['vlbench_warm_s']:.1f} s; cold/warm {sc['warm_speedup']:.1f}x (target >= 20x)")
    dp = report.get("data_parallel")
    if isinstance(dp, dict):
        log(f"(d) 1 process {dp['1_process_s']:.1f} s, 2 processes {dp['2_processes_s']:.1f} s: {dp['speedup']:.2f}x; identical metrics: {dp['identical_metrics']}")
    elif dp:
        log(f"(d) {dp}")
    log(f"benchmark took {report.get('benchmark_s', float('nan')):.0f} s; load average at the end {report.get('load_average_at_end')}")


if __name__ == "__main__":
    main()
