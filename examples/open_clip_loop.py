"""vlbench inside a plain open_clip training loop: the tasks are prepared once, evaluated every N steps.

    python examples/open_clip_loop.py --train-csv pairs.tsv --model ViT-B-32 --pretrained laion2b_s34b_b79k \
        --tasks imagenet1k,sugarcrepe --data-root ~/data --eval-every 1000 --log tensorboard:runs

``--train-csv`` is open_clip's CSV layout (``--csv-img-key filepath --csv-caption-key title``, tab
separated). The same three lines fit open_clip's own ``training/main.py``: build the evaluator after the
model (``vlbench.Evaluator(tasks, data_root=..., log="tensorboard:" + args.logs)``), and in
``training/train.py``'s ``evaluate(model, data, epoch, args, tb_writer, tokenizer)`` call
``evaluator(unwrap_model(model), preprocess=preprocess_val, tokenizer=tokenizer, step=step)`` on every
rank (under DDP each rank encodes its share; every rank gets the metrics).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import torch
from PIL import Image

import vlbench


class CsvPairs(torch.utils.data.Dataset):
    """(image, tokenized caption) pairs from a tab-separated file with ``filepath`` and ``title`` columns."""

    def __init__(self, path: Path, transform: Any, tokenizer: Any, image_key: str = "filepath", caption_key: str = "title"):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        self.images = [str(Path(path).parent / row[image_key]) for row in rows]
        self.captions = [row[caption_key] for row in rows]
        self.transform, self.tokenizer = transform, tokenizer

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(Image.open(self.images[i]).convert("RGB")), self.tokenizer([self.captions[i]])[0]


def build_model(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """open_clip's model, its train and eval transforms and its tokenizer (``--model-config``: a config of one's own)."""
    import open_clip

    if args.model_config:
        open_clip.add_model_config(args.model_config)
    model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(args.model, pretrained=args.pretrained)
    return model, preprocess_train, preprocess_val, open_clip.get_tokenizer(args.model)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-csv", type=Path, required=True)
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--pretrained", default=None, help="an open_clip pretrained tag or a checkpoint file")
    p.add_argument("--model-config", default=None, help="a model config .json of one's own (open_clip.add_model_config)")
    p.add_argument("--tasks", default="shapes_cls,shapes_attribute_swap")
    p.add_argument("--data-root", default=None)
    p.add_argument("--limit", type=int, default=None, help="the first N items of each task (quick checks)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--log", default=None, help="tensorboard[:DIR] or wandb[:PROJECT]")
    return p


def main(argv: list[str] | None = None) -> list[tuple[int, dict[str, float | None]]]:
    import open_clip

    args = parser().parse_args(argv)
    model, preprocess_train, preprocess_val, tokenizer = build_model(args)
    loader = torch.utils.data.DataLoader(CsvPairs(args.train_csv, preprocess_train, tokenizer), batch_size=args.batch_size, shuffle=True,
                                         drop_last=True)
    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    evaluator = vlbench.Evaluator(args.tasks.split(","), data_root=args.data_root, limit=args.limit, log=args.log, run_name="open_clip_loop")
    history, step = [], 0
    try:
        while step < args.steps:
            for images, texts in loader:
                model.train()
                image_features, text_features, logit_scale = model(images, texts)[:3]
                loss = loss_fn(image_features, text_features, logit_scale)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                if step % args.eval_every == 0 or step == args.steps:
                    metrics = evaluator(model, preprocess=preprocess_val, tokenizer=tokenizer, step=step)
                    history.append((step, metrics))
                    print(f"step {step}: loss {loss.item():.4f} " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if v is not None))
                if step >= args.steps:
                    break
    finally:
        evaluator.close()
    return history


if __name__ == "__main__":
    main()
