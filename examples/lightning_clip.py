"""vlbench as a PyTorch Lightning callback: fine-tune an open_clip model, evaluated every N steps.

    python examples/lightning_clip.py --train-csv pairs.tsv --model ViT-B-32 --pretrained laion2b_s34b_b79k \
        --tasks imagenet1k,sugarcrepe --data-root ~/data --eval-every 1000

The metrics reach the trainer's loggers as ``vlbench/<task>/<metric>`` and ``trainer.callback_metrics``
(so a ``ModelCheckpoint`` can monitor one). Under ``strategy="ddp"`` the callback's evaluator shares the
work between the ranks. Needs ``pip install 'vlbench[lightning]'``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import lightning
import torch

from open_clip_loop import CsvPairs, build_model, parser as loop_parser
from vlbench.api.lightning import VLBenchCallback


class ClipModule(lightning.LightningModule):
    def __init__(self, model: Any, lr: float):
        super().__init__()
        import open_clip

        self.model, self.lr, self.loss = model, lr, open_clip.ClipLoss()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, texts = batch
        image_features, text_features, logit_scale = self.model(images, texts)[:3]
        loss = self.loss(image_features, text_features, logit_scale)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def parser() -> argparse.ArgumentParser:
    p = loop_parser()
    p.add_argument("--logs", type=Path, default=Path("lightning_logs"))
    return p


def main(argv: list[str] | None = None) -> tuple[Any, VLBenchCallback]:
    args = parser().parse_args(argv)
    model, preprocess_train, preprocess_val, tokenizer = build_model(args)
    loader = torch.utils.data.DataLoader(CsvPairs(args.train_csv, preprocess_train, tokenizer), batch_size=args.batch_size, shuffle=True,
                                         drop_last=True)
    callback = VLBenchCallback(args.tasks.split(","), preprocess=preprocess_val, tokenizer=tokenizer, every_n_steps=args.eval_every,
                               data_root=args.data_root, limit=args.limit, log=args.log)
    trainer = lightning.Trainer(max_steps=args.steps, callbacks=[callback], logger=lightning.pytorch.loggers.CSVLogger(args.logs),
                                accelerator="auto", devices=1, enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, log_every_n_steps=min(50, args.steps))
    trainer.fit(ClipModule(model, args.lr), loader)
    return trainer, callback


if __name__ == "__main__":
    main()
