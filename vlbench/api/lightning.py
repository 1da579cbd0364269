"""A PyTorch Lightning callback that runs a ``vlbench.Evaluator`` during training.

    from vlbench.api.lightning import VLBenchCallback

    trainer = Trainer(callbacks=[VLBenchCallback(["imagenet1k", "sugarcrepe"], preprocess=preprocess_val,
                                                 tokenizer=tokenizer, every_n_steps=1000)])

The evaluator is built once, when fitting starts (inside the job's process group, so under DDP each rank
encodes its share), and called on the model every ``every_n_steps`` optimiser steps and/or at the end of
every ``every_n_epochs``-th epoch. Its metrics go to every logger of the trainer as ``vlbench/task/metric``
at the trainer's global step, and into ``trainer.callback_metrics``, so ``ModelCheckpoint(monitor=
"vlbench/imagenet1k/acc1", mode="max")`` can keep the best checkpoint. ``model``: the attribute of the
LightningModule that holds the CLIP-like model, or a function of the module (default: the module
itself if it has ``encode_image``, else its ``model``). The remaining keywords are the Evaluator's.
Needs ``lightning`` (or ``pytorch_lightning``): ``pip install 'vlbench[lightning]'``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from vlbench.api.evaluator import Evaluator
from vlbench.errors import VLBenchError

try:
    from lightning.pytorch import Callback
except ImportError:  # the older package name
    try:
        from pytorch_lightning import Callback
    except ImportError:
        raise VLBenchError("vlbench.api.lightning needs Lightning: pip install 'vlbench[lightning]' (or pip install lightning)") from None


def _default_model(module: Any) -> Any:
    return module if callable(getattr(module, "encode_image", None)) else getattr(module, "model")


class VLBenchCallback(Callback):
    def __init__(self, tasks: str | Sequence[str], *, preprocess: Any = None, tokenizer: Any = None, processor: Any = None,
                 model: str | Callable[[Any], Any] | None = None, every_n_steps: int | None = None, every_n_epochs: int | None = 1,
                 prefix: str = "vlbench/", **evaluator_options: Any):
        if not every_n_steps and not every_n_epochs:
            raise VLBenchError("VLBenchCallback: set every_n_steps and/or every_n_epochs, else it never evaluates")
        self.tasks, self.options = tasks, evaluator_options
        self.transforms = {"preprocess": preprocess, "tokenizer": tokenizer, "processor": processor}
        self.pick = (lambda module: getattr(module, model)) if isinstance(model, str) else model or _default_model
        self.every_n_steps, self.every_n_epochs, self.prefix = every_n_steps, every_n_epochs, prefix
        self.evaluator: Evaluator | None = None
        self.history: list[tuple[int, dict[str, float | None]]] = []  # (global step, metrics) of every evaluation

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if self.evaluator is None:
            self.evaluator = Evaluator(self.tasks, **self.options)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0 and (not self.history or self.history[-1][0] != step):
            self.evaluate(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0 and (
                not self.history or self.history[-1][0] != trainer.global_step):
            self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: Any, pl_module: Any) -> dict[str, float | None]:
        """The tasks' metrics on the module's model now, logged at the trainer's global step."""
        import torch

        if self.evaluator is None:
            self.evaluator = Evaluator(self.tasks, **self.options)
        step = trainer.global_step
        metrics = self.evaluator(self.pick(pl_module), step=step, **self.transforms)
        logged = {f"{self.prefix}{name}": value for name, value in metrics.items() if value is not None}
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(logged, step=step)
        trainer.callback_metrics.update({name: torch.tensor(value) for name, value in logged.items()})
        self.history.append((step, metrics))
        return metrics

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.evaluator is not None:
            self.evaluator.close()
            self.evaluator = None
