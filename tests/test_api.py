"""The library face: vlbench.evaluate on every kind of model, vlbench.Evaluator in a loop, load_results."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
from conftest import invoke, result_file
from data_fixtures import write_karpathy
from hf_fixtures import save_tiny_hf_model

import vlbench
from vlbench.errors import VLBenchError

TASKS = ["shapes_cls", "shapes_attribute_swap"]
SHIPPED = "openclip:vlbench-tiny@shapes"


def cli_results(folder: Path, model_folder: str, tasks=TASKS) -> dict:
    """{task: (metrics, ci, samples)} of results `vlbench run` wrote."""
    out = {}
    for task in tasks:
        path = result_file(folder / model_folder, task)
        result = json.loads(path.read_text())
        with gzip.open(path.parent / result["samples"], "rt") as f:
            samples = [json.loads(line) for line in f]
        out[task] = (result["metrics"], result["ci"], samples)
    return out


def api_results(results, tasks=TASKS) -> dict:
    return {t: (results[t].result.metrics, results[t].result.ci, results[t].samples) for t in tasks}


def shipped_open_clip():
    from vlbench.models.openclip import _open_clip, shipped_weights

    open_clip = _open_clip()
    model, _, preprocess = open_clip.create_model_and_transforms("vlbench-tiny", pretrained=str(shipped_weights("vlbench-tiny", "shapes")))
    return model, preprocess, open_clip.get_tokenizer("vlbench-tiny")


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLBENCH_CACHE", str(folder / "cache"))
        done = invoke(["run", "--model", SHIPPED, "--tasks", ",".join(TASKS), "-o", str(folder / "results")])
    assert done.returncode == 0, done.stderr
    return cli_results(folder / "results", "openclip__vlbench-tiny@shapes")


def test_evaluate_a_spec_string_gives_what_vlbench_run_writes(cli_run, tmp_path):
    results = vlbench.evaluate(SHIPPED, TASKS, output=None)
    assert api_results(results) == cli_run
    assert results.output is None and all(t.path is None for t in results)
    frame = results.to_pandas()
    assert list(frame.columns) == ["model", "task", "metric", "value", "ci_low", "ci_high", "n", "settings"]
    row = frame[(frame.task == "shapes_cls") & (frame.metric == "acc1")].iloc[0]
    assert (row.value, [row.ci_low, row.ci_high], row.n) == (cli_run["shapes_cls"][0]["acc1"], cli_run["shapes_cls"][1]["acc1"], 600)
    assert results.metrics()["shapes_cls/acc1"] == cli_run["shapes_cls"][0]["acc1"]


def test_evaluate_an_adapter_instance_and_an_open_clip_model_object_gives_the_same(cli_run, tmp_path):
    from vlbench.models.openclip import OpenClipAdapter
    from vlbench.spec.model_spec import parse_model_spec

    adapter = OpenClipAdapter(parse_model_spec(SHIPPED))
    assert api_results(vlbench.evaluate(adapter, TASKS)) == cli_run
    model, preprocess, tokenizer = shipped_open_clip()
    model.train()
    results = vlbench.evaluate(model, TASKS, preprocess=preprocess, tokenizer=tokenizer)
    assert api_results(results) == cli_run
    assert model.training, "the model's own mode is restored after the call"
    assert results.tasks[0].model.startswith("openclip:in-memory:CLIP@sha256-")
    fingerprint = results["shapes_cls"].result.model.fingerprint
    assert fingerprint["weights_sha256"] == adapter.weights_sha256()  # the same weights, named by their hash


def test_an_in_memory_models_name_follows_its_weights_and_its_results_are_reused_only_for_the_same_weights(tmp_path):
    model, preprocess, tokenizer = shipped_open_clip()
    first = vlbench.evaluate(model, ["shapes_cls"], preprocess=preprocess, tokenizer=tokenizer, output=tmp_path / "r", limit=20)
    again = vlbench.evaluate(model, ["shapes_cls"], preprocess=preprocess, tokenizer=tokenizer, output=tmp_path / "r", limit=20)
    assert first["shapes_cls"].status == "done" and again["shapes_cls"].status == "skipped"
    assert again["shapes_cls"].samples == first["shapes_cls"].samples
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    changed = vlbench.evaluate(model, ["shapes_cls"], preprocess=preprocess, tokenizer=tokenizer, output=tmp_path / "r", limit=20)
    assert changed["shapes_cls"].status == "done" and changed.tasks[0].model != first.tasks[0].model
    unhashed = vlbench.evaluate(model, ["shapes_cls"], preprocess=preprocess, tokenizer=tokenizer, limit=20, hash_weights=False)
    assert "@unhashed-" in unhashed.tasks[0].model and unhashed["shapes_cls"].result.model.fingerprint["weights_sha256"] is None
    assert unhashed["shapes_cls"].metrics == changed["shapes_cls"].metrics


def test_evaluate_a_transformers_model_with_its_processor_gives_what_vlbench_run_writes(tmp_path, monkeypatch):
    from transformers import AutoImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = save_tiny_hf_model(tmp_path / "clip")
    monkeypatch.setenv("VLBENCH_CACHE", str(tmp_path / "cache"))
    done = invoke(["run", "--model", f"hf:{folder}", "--tasks", "shapes_cls", "-o", str(tmp_path / "results"), "--limit", "60"])
    assert done.returncode == 0, done.stderr
    (slug,) = [p.name for p in (tmp_path / "results").iterdir()]
    expected = cli_results(tmp_path / "results", slug, ["shapes_cls"])
    # hf: specs use the PIL image processor (the reference numbers' backend); given the same, the same numbers
    pil = CLIPProcessor(image_processor=AutoImageProcessor.from_pretrained(folder, backend="pil"), tokenizer=CLIPTokenizer.from_pretrained(folder))
    results = vlbench.evaluate(CLIPModel.from_pretrained(folder), "shapes_cls", processor=pil, limit=60)
    assert api_results(results, ["shapes_cls"]) == expected
    assert results.tasks[0].model.startswith("hf:in-memory:CLIPModel@sha256-")
    # the processor as given is part of the model's name and of what the result records
    default = vlbench.evaluate(CLIPModel.from_pretrained(folder), "shapes_cls", processor=CLIPProcessor.from_pretrained(folder), limit=60)
    assert default.tasks[0].model != results.tasks[0].model
    assert default["shapes_cls"].result.model.fingerprint["image_backend"] == "torchvision"


def test_any_object_with_encode_image_and_encode_text_can_be_evaluated(cli_run):
    model, preprocess, tokenizer = shipped_open_clip()

    class MyModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.clip = model

        def encode_image(self, pixels):
            return self.clip.encode_image(pixels)

        def encode_text(self, texts):
            return self.clip.encode_text(tokenizer(texts))

    results = vlbench.evaluate(MyModel(), ["shapes_cls"], preprocess=preprocess)
    assert results.tasks[0].model.startswith("object:in-memory:MyModel@sha256-")
    assert results["shapes_cls"].metrics == cli_run["shapes_cls"][0]  # full padding here, trimmed there: the same numbers


def test_models_evaluate_cannot_use_get_one_line_errors():
    with pytest.raises(VLBenchError, match="cannot evaluate a dict"):
        vlbench.evaluate({}, ["shapes_cls"])
    model, preprocess, _ = shipped_open_clip()
    with pytest.raises(VLBenchError, match="needs tokenizer="):
        vlbench.evaluate(model, ["shapes_cls"], preprocess=preprocess)


def test_the_evaluator_follows_changing_weights_and_reads_no_image_after_it_is_built(tmp_path, monkeypatch):
    from PIL import Image

    write_karpathy(tmp_path / "data" / "flickr30k", "dataset_flickr30k.json", images_dir="flickr30k-images")
    model, preprocess, tokenizer = shipped_open_clip()
    tasks = ["shapes_cls", "flickr30k"]
    evaluator = vlbench.Evaluator(tasks, data_root=tmp_path / "data", limit=40, num_workers=0, bootstrap_replicates=50)
    assert evaluator.held.held == 40 + 3 and evaluator.held.left == 0
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    seen = []
    for step in range(2):
        metrics = evaluator(model, preprocess=preprocess, tokenizer=tokenizer, step=step)
        seen.append(metrics)
        assert set(metrics) >= {"shapes_cls/acc1", "flickr30k/mean_recall@1"} and evaluator.step == step
        decoded = {t: evaluator.results[t].result.timing["images_decoded"] for t in tasks}
        # the first call transforms the held images, later ones take the crops kept from it
        assert decoded == ({"shapes_cls": {"pil": 40}, "flickr30k": {"pil": 3}} if step == 0 else {"shapes_cls": {"memory": 40}, "flickr30k": {"memory": 3}})
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02 * torch.randn_like(p))
    assert opened == [], "no image file is read once the evaluator is built"
    assert seen[0] != seen[1]
    torch.save(model.state_dict(), tmp_path / "now.pt")
    now = evaluator(model, preprocess=preprocess, tokenizer=tokenizer, step=2)
    monkeypatch.setattr(Image, "open", real_open)
    fresh = vlbench.evaluate(f"openclip:{tmp_path / 'now.pt'}?arch=vlbench-tiny", tasks, data_root=tmp_path / "data", limit=40,
                             bootstrap_replicates=50, no_cache=True)
    assert now == fresh.metrics()
    for task in tasks:  # intervals and per-sample records too
        assert evaluator.results[task].result.ci == fresh[task].result.ci
        assert evaluator.results[task].samples == fresh[task].samples
    evaluator.close()


def test_load_results_gives_every_metric_of_every_result_in_long_format(shapes_suite_run):
    results_dir, _ = shapes_suite_run
    frame = vlbench.load_results(results_dir)
    result = json.loads(result_file(results_dir / "openclip__vlbench-tiny@shapes", "shapes_seg").read_text())
    rows = frame[frame.task == "shapes_seg"].set_index("metric")
    assert set(rows.index) == set(result["metrics"])
    assert rows.loc["mIoU", "value"] == result["metrics"]["mIoU"] and bool(rows.loc["mIoU", "main"])
    assert [rows.loc["mIoU", "ci_low"], rows.loc["mIoU", "ci_high"]] == result["ci"]["mIoU"]
    assert not frame.partial.any() and set(frame.settings) == {""}
    with pytest.raises(VLBenchError, match="no results folder"):
        vlbench.load_results(results_dir / "nothing")


def test_import_vlbench_stays_cheap_and_names_the_api_lazily():
    import subprocess
    import sys

    code = "import sys, vlbench; print('torch' in sys.modules, callable(vlbench.evaluate), 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "True", "True"], done.stderr[-500:]
    with pytest.raises(AttributeError, match="no attribute 'evalute'"):
        vlbench.evalute  # noqa: B018


def test_held_images_are_the_decoded_pixels_and_a_budget_leaves_the_rest_on_disk(tmp_path):
    import numpy as np
    from PIL import Image

    from vlbench.api.held_images import hold
    from vlbench.datasets.classification import ClassificationData
    from vlbench.datasets.images import FileImage

    paths = []
    for i, mode in enumerate(("RGB", "L", "RGBA")):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 30, len(mode)), dtype=np.uint8).squeeze()).convert(mode).save(paths[-1])
    data = ClassificationData([FileImage(str(p)) for p in paths], [0, 1, 0], classnames=["a", "b"])
    held, stats = hold(data, budget_bytes=10**9)
    assert (stats.held, stats.left) == (3, 0) and held.labels == data.labels and held.classnames == data.classnames
    for original, kept in zip(data.images, held.images):
        assert kept.key == original.key and kept.cache_id == original.cache_id
        assert kept.load().mode == original.load().mode and np.array_equal(np.asarray(kept.load()), np.asarray(original.load()))
    partly, stats = hold(data, budget_bytes=2 * 20 * 30 * 3)  # decoded to RGB (as the reader loads them): two fit
    assert (stats.held, stats.left) == (2, 1) and partly.images[2] is data.images[2] and stats.bytes == 2 * 20 * 30 * 3
