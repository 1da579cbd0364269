"""Experiment trackers: `vlbench run --log`, and `log=` of evaluate and Evaluator, read back with the
trackers' own readers (TensorBoard's event reader, W&B's offline run file)."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import invoke, result_file
from tracker_readers import tensorboard_scalars, tensorboard_texts, wandb_offline_run

import vlbench
from vlbench.errors import VLBenchError

SHIPPED = "openclip:vlbench-tiny@shapes"
SLUG = "openclip__vlbench-tiny@shapes"


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("logged")
    done = invoke(["run", "--model", SHIPPED, "--tasks", "shapes_cls,shapes_attribute_swap", "--limit", "120", "--bootstrap-replicates", "100",
                   "--no-cache", "-o", str(folder), "--log", "tensorboard", "--log", "wandb:vlbench-tests"])
    assert done.returncode == 0, done.stderr
    return folder


def test_vlbench_run_logs_every_metric_with_its_interval_and_the_settings_to_tensorboard(logged_run):
    scalars = tensorboard_scalars(logged_run / "tensorboard" / SLUG)
    for task in ("shapes_cls", "shapes_attribute_swap"):
        result = json.loads(result_file(logged_run / SLUG, task).read_text())
        for metric, value in result["metrics"].items():
            assert scalars[f"{task}/{metric}"] == [(0, pytest.approx(value, abs=1e-6))]  # event files hold float32
            if result["ci"].get(metric):
                low, high = result["ci"][metric]
                assert scalars[f"{task}/{metric}/ci_low"][0][1] == pytest.approx(low, abs=1e-6)
                assert scalars[f"{task}/{metric}/ci_high"][0][1] == pytest.approx(high, abs=1e-6)
        assert scalars[f"{task}/n"] == [(0, 120.0)]
    settings = json.loads(tensorboard_texts(logged_run / "tensorboard" / SLUG)["vlbench/settings"].strip("`json\n"))
    assert settings["model"] == SHIPPED and settings["limit"] == 120 and settings["bootstrap_replicates"] == 100


def test_vlbench_run_logs_a_wandb_run_per_model_with_the_same_numbers(logged_run):
    config, history = wandb_offline_run(logged_run)
    assert (config["_name"], config["_project"]) == (SHIPPED, "vlbench-tests")
    assert config["vlbench"]["model"] == SHIPPED and config["vlbench"]["limit"] == 120
    [row] = history
    result = json.loads(result_file(logged_run / SLUG, "shapes_cls").read_text())
    assert row["shapes_cls/acc1"] == result["metrics"]["acc1"]  # JSON: exact
    assert [row["shapes_cls/acc1/ci_low"], row["shapes_cls/acc1/ci_high"]] == result["ci"]["acc1"]


def test_the_evaluator_logs_each_call_at_its_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # W&B's local files go to the working directory without an output folder
    from test_api import shipped_open_clip

    model, preprocess, tokenizer = shipped_open_clip()
    with vlbench.Evaluator("shapes_cls", limit=60, num_workers=0, bootstrap_replicates=20, log=[f"tensorboard:{tmp_path / 'tb'}", "wandb"],
                           run_name="pretraining") as evaluator:
        returned = [evaluator(model, preprocess=preprocess, tokenizer=tokenizer, step=step) for step in (100, 200)]
    scalars = tensorboard_scalars(tmp_path / "tb" / "pretraining")
    assert scalars["shapes_cls/acc1"] == [(100, pytest.approx(returned[0]["shapes_cls/acc1"], abs=1e-6)),
                                          (200, pytest.approx(returned[1]["shapes_cls/acc1"], abs=1e-6))]
    config, history = wandb_offline_run(tmp_path)
    assert (config["_name"], config["_project"]) == ("pretraining", "vlbench")
    assert [(row["_step"], row["shapes_cls/acc1"]) for row in history] == [(100, returned[0]["shapes_cls/acc1"]), (200, returned[1]["shapes_cls/acc1"])]


def test_inside_a_wandb_run_the_evaluator_logs_into_it_and_leaves_it_open(tmp_path):
    import wandb

    from test_api import shipped_open_clip

    model, preprocess, tokenizer = shipped_open_clip()
    run = wandb.init(project="training", name="my-run", dir=str(tmp_path), config={"lr": 0.1})
    try:
        with vlbench.Evaluator("shapes_cls", limit=30, num_workers=0, bootstrap_replicates=0, log="wandb") as evaluator:
            metrics = evaluator(model, preprocess=preprocess, tokenizer=tokenizer, step=7)
        assert wandb.run is run, "the user's run stays open"
        run.log({"train/loss": 1.5}, step=8)
    finally:
        run.finish()
    config, history = wandb_offline_run(tmp_path)
    assert (config["_name"], config["lr"]) == ("my-run", 0.1)
    assert config["vlbench"]["model"] == "vlbench-evaluator"
    assert [(row["_step"], row.get("shapes_cls/acc1")) for row in history] == [(7, metrics["shapes_cls/acc1"]), (8, None)]


def test_an_unknown_tracker_or_a_missing_client_is_refused_before_any_work(tmp_path, monkeypatch):
    done = invoke(["run", "--model", SHIPPED, "--tasks", "shapes_cls", "-o", str(tmp_path), "--log", "tensorbord"])
    assert done.returncode != 0 and "unknown experiment tracker 'tensorbord'" in done.stderr and "tensorboard" in done.stderr
    assert "Traceback" not in done.stderr and not any(tmp_path.iterdir())
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if it were not installed
    with pytest.raises(VLBenchError, match=r"needs the wandb package: pip install 'vlbench\[wandb\]'"):
        vlbench.evaluate(SHIPPED, "shapes_cls", log="wandb")
    with pytest.raises(VLBenchError, match="log=3"):
        vlbench.Evaluator("shapes_cls", log=[3])
