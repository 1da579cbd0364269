"""The training-loop examples run as a user would run them: a tiny open_clip model, two steps, vlbench
evaluating after each (examples/open_clip_loop.py, examples/lightning_clip.py)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from tracker_readers import tensorboard_scalars

EXAMPLES = REPO / "examples"
COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 20)}


@pytest.fixture
def tiny_run_args(tmp_path, monkeypatch):
    """A tab-separated training file of generated images and the arguments that train the shipped tiny model on it."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        name = list(COLORS)[i % 4]
        pixels = np.clip(np.array(COLORS[name]) + rng.integers(-20, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        rows.append({"filepath": f"{i}.png", "title": f"a {name} background."})
    with open(tmp_path / "pairs.tsv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["filepath", "title"], delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    from vlbench.models.openclip import CONFIG_DIR, shipped_weights

    return ["--train-csv", str(tmp_path / "pairs.tsv"), "--model", "vlbench-tiny", "--model-config", str(CONFIG_DIR / "vlbench-tiny.json"),
            "--pretrained", str(shipped_weights("vlbench-tiny", "shapes")), "--tasks", "shapes_cls", "--limit", "30", "--steps", "2",
            "--eval-every", "1", "--batch-size", "4", "--lr", "1e-3"]


def test_the_open_clip_loop_example_evaluates_after_each_step_and_logs(tiny_run_args, tmp_path):
    import open_clip_loop

    history = open_clip_loop.main([*tiny_run_args, "--log", f"tensorboard:{tmp_path / 'tb'}"])
    assert [step for step, _ in history] == [1, 2]
    assert all(0 <= metrics["shapes_cls/acc1"] <= 1 for _, metrics in history)
    logged = tensorboard_scalars(tmp_path / "tb" / "open_clip_loop")["shapes_cls/acc1"]
    assert logged == [(step, pytest.approx(metrics["shapes_cls/acc1"], abs=1e-6)) for step, metrics in history]


def test_the_lightning_callback_logs_to_the_trainers_loggers_at_the_global_step(tiny_run_args, tmp_path):
    import lightning_clip

    trainer, callback = lightning_clip.main([*tiny_run_args, "--logs", str(tmp_path / "logs")])
    assert [step for step, _ in callback.history] == [1, 2] and callback.evaluator is None  # closed at teardown
    with open(next((tmp_path / "logs").rglob("metrics.csv")), newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("vlbench/shapes_cls/acc1")]
    assert [(int(row["step"]), float(row["vlbench/shapes_cls/acc1"])) for row in rows] == \
        [(step, pytest.approx(metrics["shapes_cls/acc1"])) for step, metrics in callback.history]
    assert float(trainer.callback_metrics["vlbench/shapes_cls/acc1"]) == pytest.approx(callback.history[-1][1]["shapes_cls/acc1"])
    assert trainer.lightning_module.training, "the model is back in training mode"
