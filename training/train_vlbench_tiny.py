"""Train ``vlbench-tiny``, the small CLIP-style model vlbench ships, on the shapes world.

    python training/train_vlbench_tiny.py            # writes vlbench/models/weights/vlbench-tiny@shapes.*
    python training/train_vlbench_tiny.py --check    # retrain and compare with the shipped weights

An open_clip model built from ``vlbench/models/openclip_configs/vlbench-tiny.json`` (4-layer ViT on
64 px images, 4-layer text transformer), trained from scratch with the symmetric contrastive (CLIP)
loss on scenes and captions generated on the fly. Captions name one object with a template ("a photo
of a red circle.", also by shape or colour alone), list 2-3 objects left to right, relate two of them
("a red circle to the left of a blue star"), or describe an empty scene ("a plain background.").
Every caption in a batch that is true of an image is a positive for it (a caption's meaning is
checked against each scene), so true captions of other images are not pushed apart.

Training scenes use TRAIN_SEED only; the built-in evaluation tasks use other seeds (see
tasks/shapes/), which the tests check. The run is deterministic: the same torch version and
--threads reproduce the weights bit for bit. The weights are stored as float16 safetensors (< 10 MB)
and load with the ordinary open_clip adapter as ``openclip:vlbench-tiny``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vlbench.datasets.shapes import (
    COLORS,
    SHAPES,
    list_caption,
    make_scene,
    random_kinds,
    relation_caption,
    scene_rng,
)

REPO = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = REPO / "vlbench" / "models" / "weights"
ARCH, TAG = "vlbench-tiny", "shapes"
TRAIN_SEED = 1
SINGLE_TEMPLATES = ("a photo of a {}.", "a drawing of a {}.", "a {}.", "a picture of a {}.", "{}", "a {} shape.", "one {}.")
EMPTY_CAPTIONS = ("background", "a plain background.", "an empty background.", "a photo of the background.", "nothing but background.")


def caption_for(rng: np.random.Generator, size: int) -> tuple[object, str, tuple]:
    """A scene, one caption for it, and the caption's meaning (what must hold in a scene for it to be true)."""
    kind = rng.random()
    if kind < 0.05:
        scene = make_scene(rng, [], size=size)
        return scene, EMPTY_CAPTIONS[int(rng.integers(len(EMPTY_CAPTIONS)))], ("empty",)
    if kind < 0.40:
        color = list(COLORS)[int(rng.integers(len(COLORS)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        scene = make_scene(rng, [(color, shape)], size=size, min_frac=0.3, max_frac=0.7)
        template = SINGLE_TEMPLATES[int(rng.integers(len(SINGLE_TEMPLATES)))]
        naming = rng.random()
        if naming < 0.7:
            return scene, template.format(f"{color} {shape}"), ("one", color, shape)
        if naming < 0.85:
            return scene, template.format(shape), ("one", None, shape)
        return scene, template.format(f"{color} shape"), ("one", color, None)
    n = int(rng.integers(2, 4))
    scene = make_scene(rng, random_kinds(rng, n), size=size)
    ordered = scene.left_to_right()
    if kind < 0.68:
        return scene, list_caption(ordered), ("list", *(o.name for o in ordered))
    i, j = sorted(rng.choice(n, size=2, replace=False).tolist())
    left, right = ordered[i], ordered[j]
    phrasing = "left" if rng.random() < 0.5 else "right"
    return scene, relation_caption(left, right, phrasing), ("left-of", left.name, right.name)


def holds(meaning: tuple, scene) -> bool:
    """Whether a caption's meaning is true of a scene (so a caption can be positive for other images)."""
    objects = scene.left_to_right()
    names = [o.name for o in objects]
    if meaning[0] == "empty":
        return not objects
    if meaning[0] == "one":
        _, color, shape = meaning
        return len(objects) == 1 and color in (None, objects[0].color) and shape in (None, objects[0].shape)
    if meaning[0] == "list":
        return tuple(names) == meaning[1:]
    _, left, right = meaning
    return left in names and right in names and names.index(left) < names.index(right)


def batch(step: int, batch_size: int, transform, tokenizer, size: int):
    """Images, tokens, and truth[i, j]: caption j is true of image i."""
    images, texts, scenes, meanings = [], [], [], []
    for j in range(batch_size):
        rng = scene_rng(TRAIN_SEED, step * batch_size + j)
        scene, caption, meaning = caption_for(rng, size)
        images.append(transform(scene.render()))
        texts.append(caption)
        scenes.append(scene)
        meanings.append(meaning)
    truth = torch.tensor([[holds(m, scene) for m in meanings] for scene in scenes], dtype=torch.float32)
    return torch.stack(images), tokenizer(texts), truth


def contrastive_loss(image_emb, text_emb, logit_scale, truth):
    """Symmetric cross-entropy; each image's (caption's) target is spread over every caption (image) that is true of it."""
    logits = logit_scale * image_emb @ text_emb.T
    image_to_text = -(truth / truth.sum(1, keepdim=True) * logits.log_softmax(dim=1)).sum(1).mean()
    text_to_image = -(truth / truth.sum(0, keepdim=True) * logits.log_softmax(dim=0)).sum(0).mean()
    return (image_to_text + text_to_image) / 2


def train(args: argparse.Namespace) -> tuple[dict, dict]:
    import open_clip

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.use_deterministic_algorithms(True)
    open_clip.add_model_config(REPO / "vlbench" / "models" / "openclip_configs")
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH)
    tokenizer = open_clip.get_tokenizer(ARCH)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, args.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, args.steps - warmup)))
    )
    model.train()
    started = time.time()
    losses = []
    for step in range(args.steps):
        images, tokens, truth = batch(step, args.batch_size, preprocess, tokenizer, args.scene_size)
        image_emb = F.normalize(model.encode_image(images), dim=-1)
        text_emb = F.normalize(model.encode_text(tokens), dim=-1)
        loss = contrastive_loss(image_emb, text_emb, model.logit_scale.exp(), truth)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if step % args.log_every == 0 or step == args.steps - 1:
            recent = np.mean(losses[-args.log_every:])
            print(f"step {step:5d}/{args.steps}  loss {recent:.4f}  scale {model.logit_scale.exp().item():6.2f}  {time.time() - started:6.0f}s", flush=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "architecture": ARCH,
        "tag": TAG,
        "train_seed_namespace": TRAIN_SEED,
        "scenes_seen": args.steps * args.batch_size,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "scene_size": args.scene_size,
        "init_seed": args.seed,
        "threads": args.threads,
        "final_loss": float(np.mean(losses[-args.log_every:])),
        "seconds": round(time.time() - started, 1),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "dtype_stored": "float16",
    }
    return state, metadata


def main() -> None:
    parser = argparse.ArgumentParser(description="Train vlbench-tiny on the shapes world.")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--scene-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--check", action="store_true", help="retrain and compare with the shipped weights instead of writing")
    args = parser.parse_args()
    from safetensors.torch import load_file, save_file

    state, metadata = train(args)
    target = args.out / f"{ARCH}@{TAG}.safetensors"
    if args.check:
        shipped = load_file(str(target))
        same = shipped.keys() == state.keys() and all(torch.equal(shipped[k], state[k]) for k in state)
        print("reproduced the shipped weights bit for bit" if same else "DIFFERS from the shipped weights")
        raise SystemExit(0 if same else 1)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(target))
    metadata["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    (args.out / f"{ARCH}@{TAG}.json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
