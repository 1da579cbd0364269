"""Nothing silently wrong: identities that see every input, ties counted and bounded, the references'
own conventions, and one-line errors for the inputs of the second fault-injection pass."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, TINY, read_result, result_file
from data_fixtures import color_image, write_imagefolder
from selection_fixtures import BLUE, RED, placeholder

from vlbench.spec.catalog import Catalog
from vlbench.run.runner import Runner
from vlbench.run.settings import RunSettings

sys.path.insert(0, str(REPO / "tests" / "plugins"))
import color_adapter  # noqa: E402

color_adapter.register_with_decorator("color-trust")
COLOR = "color-trust:v1"


def run(tmp_path: Path, tasks: list[str], task_dirs=(), model: str = COLOR, **options):
    options.setdefault("num_workers", 0)
    runner = Runner(Catalog.load(extra_task_dirs=list(task_dirs)), RunSettings(data_root=tmp_path, output=tmp_path / "res", **options))
    return {o.task: o for o in runner.run(model, tasks)[1]}


def write_records_task(tmp_path: Path, n: int) -> Path:
    """A records selection task over ``n`` items of one red and one blue picture."""
    bench = tmp_path / "bench"
    bench.mkdir(exist_ok=True)
    placeholder(bench / "red.png", color=RED)
    placeholder(bench / "blue.png", color=BLUE)
    rows = [{"img": "red.png" if i % 2 else "blue.png", "pos": "a red thing" if i % 2 else "a blue thing",
             "neg": "a blue thing" if i % 2 else "a red thing"} for i in range(n)]
    (bench / "items.json").write_text(json.dumps(rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / "pairs.yaml").write_text(
        "task: pairs\nkind: selection\nversion: 1\nhelp: generated in the test\n"
        f"dataset:\n  sources:\n    - {{format: records, path: {bench}, annotation: items.json,"
        " fields: {image: img, positives: pos, negatives: neg}}\n"
        "protocol: {rule: strict}\nmetrics: [accuracy]\nmain_metric: accuracy\n")
    return tasks


# -- 1. every file that decides the items is part of the result's identity -----------------------------
def test_a_records_file_cut_to_fewer_records_is_recomputed_and_listed_in_the_result(tmp_path):
    tasks = write_records_task(tmp_path, 20)
    first = run(tmp_path, ["pairs"], [tasks])["pairs"]
    assert first.status == "done" and first.n == 20
    assert run(tmp_path, ["pairs"], [tasks])["pairs"].status == "skipped"  # unchanged inputs: still valid
    rows = json.loads((tmp_path / "bench" / "items.json").read_text())
    (tmp_path / "bench" / "items.json").write_text(json.dumps(rows[:10]))
    again = run(tmp_path, ["pairs"], [tasks])["pairs"]
    assert again.status == "done" and again.n == 10
    listed = read_result(tmp_path / "res" / "color-trust__v1", "pairs")["task"]["inputs"]
    assert listed["files"] == {str(tmp_path / "bench" / "items.json"): "sha256:" + __import__("hashlib").sha256(
        (tmp_path / "bench" / "items.json").read_bytes()).hexdigest()}


def test_a_copied_dataset_with_the_same_annotation_keeps_its_result(tmp_path):
    tasks = write_records_task(tmp_path, 6)
    run(tmp_path, ["pairs"], [tasks])
    moved = tmp_path / "bench"
    os.utime(moved / "items.json")  # touched: new mtime and ctime, same bytes
    assert run(tmp_path, ["pairs"], [tasks])["pairs"].status == "skipped"


def test_an_image_folder_that_gains_an_image_is_recomputed(tmp_path):
    write_imagefolder(tmp_path / "colors", per_class=2)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "colors.yaml").write_text(
        f"task: colors\ninclude: {REPO / 'tasks/_shared/classification.yaml'}\nhelp: generated in the test\n"
        f"dataset:\n  sources:\n    - {{format: imagefolder, path: {tmp_path / 'colors'}}}\n")
    assert run(tmp_path, ["colors"], [tasks])["colors"].n == 6
    color_image("red", seed=9).save(tmp_path / "colors" / "red" / "9.png")
    assert run(tmp_path, ["colors"], [tasks])["colors"].n == 7


# -- 2. one stamp: a file replaced with the same size and its mtime restored is seen ----------------
def replace_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    stat = path.stat()
    assert len(data) == stat.st_size
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_an_image_rewritten_with_its_mtime_restored_is_encoded_again(tmp_path):
    write_imagefolder(tmp_path / "colors", per_class=1)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "colors.yaml").write_text(
        f"task: colors\ninclude: {REPO / 'tasks/_shared/classification.yaml'}\nhelp: generated in the test\n"
        f"dataset:\n  sources:\n    - {{format: imagefolder, path: {tmp_path / 'colors'}}}\n")
    cache = tmp_path / "cache"
    assert run(tmp_path, ["colors"], [tasks], cache_dir=cache)["colors"].metrics["acc1"] == 1.0
    red = tmp_path / "colors" / "red" / "0.png"
    blue = color_image("blue", seed=0)
    import io

    buffer = io.BytesIO()
    blue.save(buffer, format="PNG")
    data = buffer.getvalue()
    if len(data) != red.stat().st_size:  # same size: pad the PNG with bytes after its end
        assert len(data) < red.stat().st_size
        data += b"\0" * (red.stat().st_size - len(data))
    replace_keeping_size_and_mtime(red, data)
    again = run(tmp_path, ["colors"], [tasks], cache_dir=cache, overwrite=True)["colors"]
    assert again.metrics["acc1"] == pytest.approx(2 / 3)  # the red folder now holds a blue picture


def test_a_checkpoint_replaced_with_the_same_size_and_mtime_is_not_reused(tmp_path):
    from safetensors.torch import save_file

    from vlbench.models.openclip import _open_clip

    def checkpoint(seed: int) -> dict:
        torch.manual_seed(seed)
        model = _open_clip().create_model("vlbench-tiny", pretrained=None)
        return {k: v.contiguous() for k, v in model.state_dict().items()}

    weights = tmp_path / "tiny.safetensors"
    save_file(checkpoint(0), weights)
    spec = f"openclip:{weights}?arch=vlbench-tiny"
    first = run(tmp_path, ["shapes_cls"], model=spec, limit=20)["shapes_cls"]
    folder = first.result_file.parent.parent
    hash_before = read_result(folder, "shapes_cls")["model"]["fingerprint"]["weights_sha256"]
    replacement = tmp_path / "other.safetensors"
    save_file(checkpoint(1), replacement)
    assert replacement.stat().st_size == weights.stat().st_size
    replace_keeping_size_and_mtime(weights, replacement.read_bytes())
    again = run(tmp_path, ["shapes_cls"], model=spec, limit=20)["shapes_cls"]
    assert again.status == "done"
    assert read_result(folder, "shapes_cls")["model"]["fingerprint"]["weights_sha256"] != hash_before


# -- 3. identical inputs get identical scores, so an exact tie is counted as its rule says -------------
def test_similarities_give_identical_scores_to_identical_rows_where_a_matrix_product_does_not():
    from vlbench.metrics import similarities

    torch.manual_seed(0)
    broken = 0
    for _ in range(20):
        queries = torch.nn.functional.normalize(torch.randn(7, 32), dim=-1)
        candidates = torch.nn.functional.normalize(torch.randn(5, 32), dim=-1)
        candidates[-1] = candidates[0]
        queries[-1] = queries[0]
        broken += not torch.equal((queries @ candidates.T)[:, 0], (queries @ candidates.T)[:, -1])
        scores = similarities(queries, candidates)
        assert torch.equal(scores[:, 0], scores[:, -1]) and torch.equal(scores[0], scores[-1])
        assert torch.allclose(scores, queries @ candidates.T, atol=1e-6)
    assert broken > 0  # the plain product does break such ties on this machine's BLAS


def test_a_negative_caption_equal_to_the_positive_is_a_tie_and_counted_wrong(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        from PIL import Image

        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(bench / f"{i}.png")
        caption = f"picture number {i} of a {['red', 'blue', 'green'][i % 3]} thing"
        rows.append({"img": f"{i}.png", "pos": caption, "neg": caption})
    (bench / "items.json").write_text(json.dumps(rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "ties.yaml").write_text(
        "task: ties\nkind: selection\nversion: 1\nhelp: generated in the test\n"
        f"dataset:\n  sources:\n    - {{format: records, path: {bench}, annotation: items.json,"
        " fields: {image: img, positives: pos, negatives: neg}}\n"
        "protocol: {rule: strict}\nmetrics: [accuracy]\nmain_metric: accuracy\n")
    outcome = run(tmp_path, ["ties"], [tasks], model=TINY)["ties"]
    assert outcome.metrics["accuracy"] == 0.0  # strictly higher than an identical caption: never
    assert outcome.ties["items"] == 24 and outcome.ties["metrics"] == {}  # counted; the rule decides them


# -- 4. items a tie decides are counted, and the metrics bounded over the orders of tied scores ---------
def test_classification_ties_by_hand():
    from vlbench.kinds.classification import ClassificationKind
    from vlbench.spec.taskfile import TaskSpec

    spec = TaskSpec("t", "classification", Path("t.yaml"), {"metrics": ["acc1", "acc5", "mean_per_class_recall"]})
    records = [
        {"label": 0, "top": [0, 1, 2, 3, 4]},  # clear hit
        {"label": 1, "top": [0, 1, 2, 3, 4], "tie": [0, 2]},  # label 1 ties class 0 for first place: top-1 decided by the tie
        {"label": 2, "top": [0, 1, 2, 3, 4], "tie": [1, 3]},  # one class above, two tied with it: hit@1 never, hit@5 always
        {"label": 3, "top": [5, 6, 7, 8, 9], "tie": [4, 3]},  # four above, tied with two more: 1 of 3 places left in the top 5
    ]
    ties = ClassificationKind().ties(records, spec)
    assert ties["items"] == 2
    assert ties["metrics"]["acc1"] == {"low": 0.25, "high": 0.5, "expected": pytest.approx((1 + 0.5) / 4)}
    assert ties["metrics"]["acc5"] == {"low": 0.75, "high": 1.0, "expected": pytest.approx((1 + 1 + 1 + 1 / 3) / 4)}
    # one item per class: the per-class recalls are the items' own outcomes
    assert ties["metrics"]["mean_per_class_recall"]["expected"] == pytest.approx((1 + 0.5) / 4)


def test_retrieval_ties_by_hand():
    from vlbench.kinds.retrieval import RetrievalKind
    from vlbench.spec.taskfile import TaskSpec

    spec = TaskSpec("t", "retrieval", Path("t.yaml"), {"metrics": ["image_retrieval_recall@1", "text_retrieval_recall@1", "mean_recall@1"]})
    records = [
        {"type": "text", "i": 0, "image": 0, "rank": 0},
        {"type": "text", "i": 1, "image": 1, "rank": 1, "tie": [0, 2, 1]},  # its image ties another for first
        {"type": "image", "i": 0, "rank": 0, "tie": [0, 4, 2]},  # two own captions tied with two others: P(hit@1) = 1/2
        {"type": "image", "i": 1, "rank": 3},
    ]
    ties = RetrievalKind().ties(records, spec)
    assert ties["items"] == 2
    assert ties["metrics"]["image_retrieval_recall@1"] == {"low": 0.5, "high": 1.0, "expected": 0.75}
    assert ties["metrics"]["text_retrieval_recall@1"] == {"low": 0.0, "high": 0.5, "expected": 0.25}
    assert ties["metrics"]["mean_recall@1"] == {"low": 0.25, "high": 0.75, "expected": 0.5}


def test_multilabel_and_association_ties_by_hand():
    from vlbench.kinds.association import jaccard_bounds
    from vlbench.kinds.multilabel import MultilabelKind
    from vlbench.spec.taskfile import TaskSpec

    # one class; images 1 (positive) and 2 (negative) tie at 0.5 below image 0 (positive)
    records = [{"scores": [0.9], "targets": [0]}, {"scores": [0.5], "targets": [0]}, {"scores": [0.5], "targets": []}]
    ties = MultilabelKind().ties(records, TaskSpec("t", "multilabel_classification", Path("t.yaml"), {"metrics": ["mean_average_precision"]}))
    assert ties["items"] == 2
    assert ties["metrics"]["mean_average_precision"]["low"] == pytest.approx((1 + 2 / 3) / 2)
    assert ties["metrics"]["mean_average_precision"]["high"] == pytest.approx(1.0)
    # WinoGAViL: pick 2 of 5; candidates 1, 2 and 3 tie at the boundary, one of them (1) is a positive
    low, high, expected = jaccard_bounds([0.1, 0.5, 0.5, 0.5, 0.2], [1, 4])
    assert (low, high) == (0.0, pytest.approx(1 / 3)) and expected == pytest.approx(2 / 3 * 1 / 3)


def test_a_run_with_duplicate_class_names_records_its_tie_decided_items_and_says_so(tmp_path, cli):
    write_imagefolder(tmp_path / "colors", per_class=2)
    (tmp_path / "names.txt").write_text("blue\nred\nred\n")  # class 2 (red) has the name of class 1
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "dupes.yaml").write_text(
        f"task: dupes\ninclude: {REPO / 'tasks/_shared/classification.yaml'}\nhelp: generated in the test\n"
        f"dataset:\n  sources:\n    - {{format: imagefolder, path: {tmp_path / 'colors'}}}\nfiles: {{classnames: {tmp_path / 'names.txt'}}}\n")
    result = cli("run", "--model", COLOR, "--tasks", "dupes", "--tasks-dir", str(tasks), "--output", "res", "--num-workers", "0")
    assert result.returncode == 0, result.stderr
    stored = json.loads(result_file(tmp_path / "res" / "color-trust__v1", "dupes").read_text())
    # classes 1 (the green folder) and 2 (the red one) are both 'red': the red images' label ties class 1 for
    # first place (decided by the order); the green images' label is behind blue either way (not decided)
    assert stored["ties"]["items"] == 2
    assert stored["ties"]["metrics"]["acc1"]["low"] <= stored["metrics"]["acc1"] <= stored["ties"]["metrics"]["acc1"]["high"]
    assert stored["ties"]["metrics"]["acc1"]["high"] - stored["ties"]["metrics"]["acc1"]["low"] == pytest.approx(2 / 6)
    assert "dupes: 2 item(s) decided by an exact tie; acc1 from" in result.stdout + result.stderr


# -- 21. per-sample records in item order; intervals and comparisons independent of the cache's state ------
def test_a_cache_served_run_writes_its_samples_in_item_order_with_the_cold_runs_intervals(tmp_path, cli):
    from vlbench.results.io import read_samples

    write_imagefolder(tmp_path / "colors", per_class=5)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "colors.yaml").write_text(
        f"task: colors\ninclude: {REPO / 'tasks/_shared/classification.yaml'}\nhelp: generated in the test\n"
        f"dataset:\n  sources:\n    - {{format: imagefolder, path: {tmp_path / 'colors'}}}\n")
    common = ["--model", COLOR, "--tasks", "colors", "--tasks-dir", str(tasks), "--num-workers", "0", "--batch-size", "4",
              "--cache-dir", str(tmp_path / "cache")]
    assert cli("run", *common, "--output", "cold").returncode == 0
    os.utime(tmp_path / "colors" / "blue" / "0.png")  # a new stamp: this one image is encoded again, the rest come from the cache
    assert cli("run", *common, "--output", "warm").returncode == 0
    cold, warm = (json.loads(result_file(tmp_path / name / "color-trust__v1", "colors").read_text()) for name in ("cold", "warm"))
    assert warm["timing"]["images_from_cache"] == 14 and warm["timing"]["images_encoded"] == 1
    order = [[r["i"] for r in read_samples(tmp_path / name / "color-trust__v1" / "colors" / result["samples"])] for name, result in
             (("cold", cold), ("warm", warm))]
    assert order[0] == order[1] == list(range(15))
    assert warm["ci"] == cold["ci"] and warm["bootstrap"]["main_replicates"] == cold["bootstrap"]["main_replicates"]


def test_intervals_and_pairings_do_not_depend_on_the_order_of_records():
    from vlbench.results import intervals
    from vlbench.spec.taskfile import TaskSpec

    spec = TaskSpec("t", "classification", Path("t.yaml"), {"metrics": ["acc1", "acc5"]})
    rng = np.random.default_rng(0)
    records = [{"i": i, "key": f"k{i}", "label": int(rng.integers(3)), "top": [int(rng.integers(3)), 3, 4, 5, 6]} for i in range(40)]
    shuffled = [records[i] for i in rng.permutation(40)]
    assert intervals.confidence("classification", records, spec, ["acc1"], "acc1") == intervals.confidence("classification", shuffled, spec, ["acc1"], "acc1")
    paired = intervals.paired("classification", records, shuffled, spec, "acc1")
    assert paired.diff == 0 and paired.p_value == 1.0


# -- 7. the decode path a run actually took is recorded -----------------------------------------------
def jpeg_folder(root: Path, per_class: int = 2) -> None:
    for name in ("red", "green", "blue"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            color_image(name, size=48, seed=i).save(root / name / f"{i}.jpg", quality=95)
    color_image("red", seed=7).save(root / "red" / "extra.png")  # not a JPEG: the PIL path, image by image


def folder_task(tmp_path: Path, tree: Path) -> Path:
    tasks = tmp_path / "tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / "colors.yaml").write_text(
        f"task: colors\ninclude: {REPO / 'tasks/_shared/classification.yaml'}\nhelp: generated in the test\n"
        f"dataset:\n  sources:\n    - {{format: imagefolder, path: {tree}}}\n")
    return tasks


def test_decode_gpu_that_falls_back_to_pil_says_so(tmp_path):
    jpeg_folder(tmp_path / "jpegs")
    tasks = folder_task(tmp_path, tmp_path / "jpegs")
    outcome = run(tmp_path, ["colors"], [tasks], decode="gpu")["colors"]  # the colour adapter's transform is its own
    env = read_result(outcome.result_file.parent.parent, "colors")["env"]
    timing = read_result(outcome.result_file.parent.parent, "colors")["timing"]
    assert env["decode"] == "pil" and env["decode_requested"] == "gpu" and timing["images_decoded"] == {"pil": 7}


def test_decode_gpu_counts_the_images_each_decoder_took(tmp_path):
    jpeg_folder(tmp_path / "jpegs")
    tasks = folder_task(tmp_path, tmp_path / "jpegs")
    outcome = run(tmp_path, ["colors"], [tasks], model=TINY, decode="gpu")["colors"]
    payload = read_result(outcome.result_file.parent.parent, "colors")
    assert payload["env"]["decode"] == "gpu" and "decode_requested" not in payload["env"]
    assert payload["timing"]["images_decoded"] == {"torchvision.io": 6, "pil": 1}
    plain = run(tmp_path / "plain", ["colors"], [tasks], model=TINY)["colors"]
    assert read_result(plain.result_file.parent.parent, "colors")["env"]["decode"] == "pil"


# -- 8, 15. results with hostile values or wrong types are skipped with one warning line, everywhere ------
HOSTILE = {
    "nan": lambda p: p["metrics"].update(acc1=float("nan")),
    "infinity": lambda p: p["metrics"].update(acc1=float("-inf")),
    "huge": lambda p: p["metrics"].update(acc1=1e308),
    "five": lambda p: p["metrics"].update(acc1=5.0),
    "digits": lambda p: p["metrics"].update(acc1=int("9" * 400)),
    "created_int": lambda p: p.update(created=5),
    "files_list": lambda p: p["task"].update(files=[]),
    "config_list": lambda p: p["task"].update(config=[]),
    "replicates_lots": lambda p: p["bootstrap"].update(replicates_n="lots"),
    "replicate_nan": lambda p: p["bootstrap"].update(main_replicates=[float("nan")]),
}


def test_results_with_hostile_values_or_types_are_skipped_by_every_reader(tmp_path, cli):
    from result_fixtures import classification_records, write_classification_result

    results = tmp_path / "results"
    good = write_classification_result(results, "m:a", classification_records([True, False, True, True]))
    write_classification_result(results, "m:b", classification_records([True, True, False, True]))
    for name, change in HOSTILE.items():
        payload = json.loads(good.read_text())
        payload["model"]["id"] = f"m:hostile-{name}"
        change(payload)
        (results / f"hostile_{name}.json").write_text(json.dumps(payload))
    for args in (["leaderboard", str(results), "--out", "board.csv"], ["report", str(results), "--out", "site"],
                 ["rescore", str(results)], ["compare", str(results), "--models", "m:a", "--models", "m:b"]):
        outcome = cli(*args)
        assert outcome.returncode == 0, (args, outcome.stderr)
        assert "Traceback" not in outcome.stderr and "internal error" not in outcome.stderr, (args, outcome.stderr)
        for name in HOSTILE:
            assert sum(f"hostile_{name}.json" in line and "skipped" in line for line in outcome.stderr.splitlines()) == 1, (args, name, outcome.stderr)
    board = (tmp_path / "board.csv").read_text()
    assert "hostile" not in board and "m:a" in board and "m:b" in board


# -- 9. records image values that leave the image folders are refused ------------------------------------
def one_line(result, *fragments, code=2):
    assert result.returncode == code, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("value", ["../../../outside.png", "{abs}", {"path": "../outside.png"}])
def test_records_images_outside_the_image_folders_are_refused(tmp_path, cli, value):
    tasks = write_records_task(tmp_path, 4)
    placeholder(tmp_path / "outside.png", color=RED)
    rows = json.loads((tmp_path / "bench" / "items.json").read_text())
    rows[2]["img"] = str(tmp_path / "outside.png") if value == "{abs}" else value
    (tmp_path / "bench" / "items.json").write_text(json.dumps(rows))
    result = cli("run", "--model", COLOR, "--tasks", "pairs", "--tasks-dir", str(tasks), "--output", "res", "--num-workers", "0")
    one_line(result, "record 2", "absolute path" if value == "{abs}" else "leaves the image folder")
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").rglob("*.json"))


def test_absolute_record_images_are_read_when_the_source_allows_them(tmp_path):
    tasks = write_records_task(tmp_path, 4)
    placeholder(tmp_path / "elsewhere" / "red.png", color=RED)
    rows = json.loads((tmp_path / "bench" / "items.json").read_text())
    rows[1]["img"] = str(tmp_path / "elsewhere" / "red.png")
    (tmp_path / "bench" / "items.json").write_text(json.dumps(rows))
    task = tasks / "pairs.yaml"
    task.write_text(task.read_text().replace("annotation: items.json,", "annotation: items.json, absolute_images: true,"))
    assert run(tmp_path, ["pairs"], [tasks])["pairs"].metrics["accuracy"] == 1.0


# -- 10. YAML alias bombs are refused at once ------------------------------------------------------------
BOMB = "".join(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9 if i else ['"lol"'] * 9) + "]\n" for i in range(9))


def test_a_yaml_alias_bomb_in_a_task_file_or_a_set_value_is_refused_quickly(tmp_path, cli):
    import time

    tasks = write_records_task(tmp_path, 4)
    task = tasks / "pairs.yaml"
    task.write_text(BOMB + task.read_text().replace("protocol: {rule: strict}",
                                                    "  filter: {field: img, one_of: [*i, *i, *i]}\nprotocol: {rule: strict}"))
    started = time.perf_counter()
    one_line(cli("run", "--model", COLOR, "--tasks", "pairs", "--tasks-dir", str(tasks), "--output", "res"), "pairs.yaml", "aliases expand")
    flow = "{" + ", ".join(BOMB.splitlines()) + "}"  # the same bomb as one --set value
    one_line(cli("run", "--model", COLOR, "--tasks", "shapes_cls", "--set", f"dataset.fields={flow}"), "--set dataset.fields", "aliases expand")
    assert time.perf_counter() - started < 30


# -- 11. an absurd number of generated scenes is refused; --limit generates only what it keeps ----------
def test_shapes_n_is_bounded_and_limit_generates_lazily(tmp_path, cli, monkeypatch):
    from vlbench.datasets import shapes

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    template = (REPO / "tasks" / "shapes" / "shapes_retrieval.yaml").read_text()
    (tasks / "huge.yaml").write_text(template.replace("task: shapes_retrieval", "task: huge").replace("n: 300", "n: 100000000000000000000"))
    one_line(cli("run", "--model", TINY, "--tasks", "huge", "--tasks-dir", str(tasks)), "huge.yaml", "n", "1000000")
    (tasks / "huge.yaml").write_text(template.replace("task: shapes_retrieval", "task: huge").replace("n: 300", "n: 1000000"))
    made = []
    original = shapes.multi_object_scene
    monkeypatch.setattr(shapes, "multi_object_scene", lambda *a, **k: made.append(a) or original(*a, **k))
    import vlbench.datasets.retrieval as retrieval

    monkeypatch.setattr(retrieval, "multi_object_scene", shapes.multi_object_scene)
    assert run(tmp_path, ["huge"], [tasks], model=TINY, limit=3)["huge"].n == 3
    assert len(made) <= 3 * 2  # the captions' scenes of the 3 kept images (and their renders), not a million


# -- 12, 13. broken files break only themselves, with one line -------------------------------------------
def test_a_task_file_with_an_unhashable_key_breaks_only_itself(tmp_path, cli):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "broken.yaml").write_text("task: broken\n? [a, b]\n: c\n")
    assert cli("list", "tasks", "--tasks-dir", str(tasks)).returncode == 0
    assert cli("list", "suites", "--tasks-dir", str(tasks)).returncode == 0
    one_line(cli("run", "--model", TINY, "--tasks", "broken", "--tasks-dir", str(tasks)), "broken.yaml", "keys must be text or numbers")


def test_a_gzip_records_file_that_is_not_gzip_and_text_image_bytes_are_one_line(tmp_path, cli):
    tasks = write_records_task(tmp_path, 4)
    (tmp_path / "bench" / "items.json.gz").write_bytes(b"\x1f\x8bnot really gzip at all" * 20)
    task = tasks / "pairs.yaml"
    task.write_text(task.read_text().replace("annotation: items.json,", "annotation: items.json.gz,"))
    one_line(cli("run", "--model", COLOR, "--tasks", "pairs", "--tasks-dir", str(tasks), "--output", "res"), "items.json.gz")
    rows = [{"img": {"bytes": "iVBORw0KGgo="}, "pos": "a red thing", "neg": "a blue thing"}]
    import gzip

    with gzip.open(tmp_path / "bench" / "items.json.gz", "wt") as f:
        f.write(json.dumps(rows))
    one_line(cli("run", "--model", COLOR, "--tasks", "pairs", "--tasks-dir", str(tasks), "--output", "res"), "record 0", "'bytes' is str")


# -- 14. the embedding cache: a full disk at close, stray folders, damaged records, junk index records ----
def test_a_full_cache_disk_when_the_run_closes_the_cache_is_a_warning(tmp_path, cli, monkeypatch):
    import errno

    from vlbench.encoding.cache import CacheNamespace

    class FullOnClose:
        def __init__(self, handle):
            self.handle, self.name = handle, handle.name

        def write(self, data):
            return self.handle.write(data)

        def flush(self):
            self.handle.flush()

        def close(self):
            self.handle.close()
            raise OSError(errno.ENOSPC, "No space left on device")

    opened = CacheNamespace._open_writer

    def open_writer(self):
        if self._writer is None:
            self._writer = tuple(FullOnClose(h) for h in opened(self))
        return self._writer

    monkeypatch.setattr(CacheNamespace, "_open_writer", open_writer)
    result = cli("run", "--model", TINY, "--tasks", "shapes_cls,shapes_retrieval", "--limit", "8", "--output", "res",
                 "--cache-dir", str(tmp_path / "cache"), "--leaderboard", "board.csv")
    assert result.returncode == 0, result.stderr
    assert "may not be stored" in result.stderr and "No space left" in result.stderr
    assert (tmp_path / "board.csv").is_file() and "shapes_cls" in result.stdout + result.stderr


def test_cache_info_and_clear_survive_stray_folders_damaged_records_and_junk_index_records(tmp_path, cli):
    cache = tmp_path / "cache"
    assert cli("run", "--model", TINY, "--tasks", "shapes_cls", "--limit", "6", "--output", "res", "--cache-dir", str(cache)).returncode == 0
    namespace = next(p for p in (cache / "v1").iterdir() if (p / "meta.json").is_file())
    before = cli("cache", "info", "--cache-dir", str(cache))
    index = next(namespace.glob("*.idx"))
    (namespace / "x.idx").mkdir()  # a folder with an index file's name
    index.write_bytes(index.read_bytes() + b"\x07" * 36 * 5)  # five junk records
    record = next((cache / "v1" / "model-records").glob("*.json"))
    record.write_text(json.dumps({"fingerprint": 5, "attributes": []}))
    info = cli("cache", "info", "--cache-dir", str(cache))
    assert info.returncode == 0, info.stderr
    import re

    entries = [re.findall(r"(\d+) entries", " ".join(output.stdout.split())) for output in (before, info)]
    assert entries[0] == entries[1] != [], (before.stdout, info.stdout)  # junk records are no entries
    again = cli("run", "--model", TINY, "--tasks", "shapes_cls", "--limit", "6", "--output", "res2", "--cache-dir", str(cache))
    assert again.returncode == 0, again.stderr  # the damaged record means "load the model"
    assert cli("cache", "clear", "--model", TINY, "--cache-dir", str(cache)).returncode == 0


# -- 16. damaged per-sample files and malformed records: one line naming the file, exit 2 ----------------
def sample_files(results: Path) -> list[Path]:
    return sorted(results.rglob("*.samples.jsonl.gz"))


@pytest.mark.parametrize("damage", ["truncated", "not_gzip", "not_json", "no_field", "bad_value"])
def test_damaged_per_sample_files_are_one_line_for_compare_and_rescore(tmp_path, cli, damage):
    import gzip

    from result_fixtures import classification_records, write_classification_result

    results = tmp_path / "results"
    write_classification_result(results, "m:a", classification_records([True, False, True, True]))
    write_classification_result(results, "m:b", classification_records([True, True, False, True]))
    target = sample_files(results / "m__b")[0]
    rows = [json.loads(line) for line in gzip.decompress(target.read_bytes()).decode().splitlines()]
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    elif damage == "not_gzip":
        target.write_bytes(b"plain text, not gzip\n")
    elif damage == "not_json":
        target.write_bytes(gzip.compress(b'{"i": 0}\n{not json\n'))
    elif damage == "no_field":
        target.write_bytes(gzip.compress("\n".join(json.dumps({k: v for k, v in r.items() if k != "top"}) for r in rows).encode()))
    else:
        rows[1]["top"] = "abc"
        target.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    for args in (["compare", str(results), "--models", "m:a", "--models", "m:b"], ["rescore", str(results), "--check"]):
        one_line(cli(*args), str(target))


def test_rescore_check_exit_codes_and_write_errors(tmp_path, cli, monkeypatch):
    import errno

    from result_fixtures import classification_records, write_classification_result

    results = tmp_path / "results"
    path = write_classification_result(results, "m:a", classification_records([True, False, True, True]))
    assert cli("rescore", str(results), "--check").returncode == 0
    payload = json.loads(path.read_text())
    payload["metrics"]["acc1"] = 0.5
    path.write_text(json.dumps(payload))
    assert cli("rescore", str(results), "--check").returncode == 1  # a metric differs: 1, as documented

    def full(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("vlbench.results.io.atomic_write_text", full)
    one_line(cli("rescore", str(results), "--write"), "cannot write the rescored result", "Read-only file system")


def test_report_into_a_folder_whose_pages_are_taken_is_one_line(tmp_path, cli):
    from result_fixtures import classification_records, write_classification_result

    results = tmp_path / "results"
    write_classification_result(results, "m:a", classification_records([True, False]))
    (tmp_path / "site" / "index.html").mkdir(parents=True)
    one_line(cli("report", str(results), "--out", "site"), "index.html", "is a folder")
    (tmp_path / "site2").mkdir()
    (tmp_path / "site2" / "assets").write_text("a file")
    one_line(cli("report", str(results), "--out", "site2"), "assets", "is a file")


# -- 17, 18. --shard values and unknown model-spec options ------------------------------------------------
def test_empty_and_zero_shards_are_refused(cli):
    one_line(cli("run", "--model", TINY, "--shard", ""), "--shard", "K/N")
    one_line(cli("run", "--model", TINY, "--shard", "0/0"), "N must be at least 1")


def test_unknown_model_spec_options_are_refused_with_suggestions(cli):
    line = one_line(cli("run", "--model", "openclip:vlbench-tiny@random?sede=1", "--limit", "2", "--tasks", "shapes_cls"),
                    "unknown option 'sede'", "did you mean: seed")
    assert "arch" in line and "config" in line
    one_line(cli("run", "--model", "hf:org/model?trust_remote=1", "--tasks", "shapes_cls"), "unknown option 'trust_remote'", "trust_remote_code")


# -- 19. a Hub that accepts connections and never answers: datasets give up quickly, naming the endpoint --
@pytest.fixture
def silent_hub(monkeypatch):
    """An endpoint on loopback that accepts every connection and never answers; the Hub is it."""
    import socket
    import threading

    from huggingface_hub import constants

    from vlbench import hub_access

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    hub_access.hub_reachable.cache_clear()
    yield endpoint
    stop.set()
    hub_access.hub_reachable.cache_clear()
    for connection in held:
        connection.close()
    server.close()


def test_hub_datasets_give_up_quickly_on_a_hub_that_never_answers(tmp_path, cli, silent_hub):
    import time

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "remote.yaml").write_text(
        f"task: remote\ninclude: {REPO / 'tasks/_shared/classification.yaml'}\nhelp: generated in the test\n"
        "dataset:\n  sources:\n    - {format: hf, hub: nobody/remote-set, split: test}\n")
    (tasks / "mirrored.yaml").write_text(
        f"task: mirrored\ninclude: {REPO / 'tasks/_shared/classification.yaml'}\nhelp: generated in the test\n"
        "dataset:\n  sources:\n    - {format: wds, path: wds_mirrored, mirror: nobody/wds_mirrored}\n")
    for task in ("remote", "mirrored"):
        started = time.perf_counter()
        line = one_line(cli("run", "--model", COLOR, "--tasks", task, "--tasks-dir", str(tasks), "--hf-hub", "--output", "res"),
                        silent_hub, "cannot be reached")
        assert "huggingface.co" not in line and time.perf_counter() - started < 20


# -- 20. compare pairs runs made with --set, as the leaderboard picks them --------------------------------
def test_compare_pairs_runs_made_with_set_through_settings(tmp_path, cli):
    write_imagefolder(tmp_path / "colors", per_class=2)
    (tmp_path / "templates.txt").write_text("a {c} thing.\n")
    tasks = folder_task(tmp_path, tmp_path / "colors")
    common = ["--tasks", "colors", "--tasks-dir", str(tasks), "--output", "res", "--num-workers", "0", "--set", f"files.templates={tmp_path / 'templates.txt'}"]
    assert cli("run", "--model", COLOR, *common).returncode == 0
    assert cli("run", "--model", TINY, *common).returncode == 0
    refused = one_line(cli("compare", "res", "--models", COLOR, "--models", TINY), "no task in common", "--settings")
    paired = cli("compare", "res", "--models", COLOR, "--models", TINY, "--settings", f"files.templates={tmp_path / 'templates.txt'}")
    assert paired.returncode == 0, paired.stderr
    assert "colors" in paired.stdout and refused


# -- 6. --language reaches the ImageNet variants, as CLIP_benchmark applies it ------------------------------
@pytest.mark.parametrize("task", ["imagenetv2", "imagenet_sketch", "imagenet-a", "imagenet-r", "imagenet-o"])
def test_the_imagenet_variants_take_the_run_language(task):
    from vlbench.kinds.classification import packaged_classnames

    catalog = Catalog.load()
    english, italian = catalog.load_task(task), catalog.load_task(task, {"language": "it"})
    assert italian.config["language"] == "it" and italian.config_hash() != english.config_hash()
    names_en, names_it = packaged_classnames(english), packaged_classnames(italian)
    assert len(names_en) == len(names_it) and names_en != names_it
    assert italian.read_lines("templates") == (REPO / "tasks/classification/imagenet1k/templates_it.txt").read_text(encoding="utf-8").splitlines()


# -- 5. DataComp's tasks as its pinned CLIP_benchmark 1.4.0 runs them ----------------------------------------
def clevr_like_webdataset(root: Path) -> None:
    """A webdataset whose class list has a blank line (as CLEVR distance's): red, '', green, blue."""
    import io

    from data_fixtures import write_wds

    samples = []
    for n, (colour, label) in enumerate([("red", 0), ("green", 2), ("blue", 3)]):
        buffer = io.BytesIO()
        color_image(colour, seed=n).save(buffer, format="PNG")
        samples.append({"__key__": f"s{n}", "png": buffer.getvalue(), "cls": str(label)})
    write_wds(root, samples)
    (root / "classnames.txt").write_text("red\n\ngreen\nblue\n")
    (root / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")


def test_datacomp_drops_blank_class_names_as_clip_benchmark_1_4_does(tmp_path):
    clevr_like_webdataset(tmp_path / "wds_clevr")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    source = f"dataset:\n  sources:\n    - {{format: wds, path: {tmp_path / 'wds_clevr'}, split: test}}\n"
    (tasks / "clevr.yaml").write_text(f"task: clevr\ninclude: {REPO / 'tasks/classification/standard/_wds.yaml'}\nhelp: test\n{source}")
    (tasks / "datacomp-clevr.yaml").write_text(f"task: datacomp-clevr\ninclude: [clevr.yaml, {REPO / 'tasks/datacomp/_classification.yaml'}]\n")
    outcomes = run(tmp_path, ["clevr", "datacomp-clevr"], [tasks])
    # 1.6.2 keeps the blank line: class i is line i, and each colour is found
    assert outcomes["clevr"].metrics["acc1"] == 1.0 and outcomes["clevr"].metrics["mean_per_class_recall"] == 1.0
    # 1.4.0 drops it: green and blue move up to classes 1 and 2, so the green image (label 2) is called class 1 and
    # the blue one (label 3) has no class left: by hand, 1 of 3 right, per-class recalls 1, 0, 0
    assert outcomes["datacomp-clevr"].metrics["acc1"] == pytest.approx(1 / 3)
    assert outcomes["datacomp-clevr"].metrics["mean_per_class_recall"] == pytest.approx(1 / 3)
    stored = read_result(outcomes["datacomp-clevr"].result_file.parent.parent, "datacomp-clevr")
    used = stored["task"]["protocol_used"]
    assert used["named_protocol"].startswith("DataComp") and used["prompts"]["classnames"] == "dataset folder (blank lines dropped)"
    assert used["text_autocast_used"] == "none: the model runs on cpu (--precision fp32)"


def test_cuda_fp16_autocast_reaches_the_model_and_keys_its_own_cache_entries(monkeypatch):
    import contextlib

    import vlbench.models.base as base
    from vlbench.encoding.encoder import Encoder
    from vlbench.models import ModelAdapter, parse_model_spec

    entered = []
    monkeypatch.setattr(base.torch, "autocast", lambda device_type, dtype: entered.append((device_type, dtype)) or contextlib.nullcontext())

    class Recording(ModelAdapter):
        @property
        def image_transform(self):
            return lambda image: torch.zeros(3)

        def image_features(self, pixels):
            return pixels

        def text_features(self, texts):
            return torch.ones(len(texts), 3)

    encoder = Encoder(Recording(parse_model_spec("rec:x"), device="cuda"))  # nothing runs on a GPU: the tensors stay on the CPU
    encoder.texts(["a", "b"], autocast="none")
    assert entered == []  # fp32: no autocast
    encoder.texts(["a", "b"], autocast="cuda_fp16")
    assert entered == [("cuda", torch.float16)]  # encoded again, under CUDA fp16 autocast
    encoder.texts(["a"], autocast="cuda_fp16")
    assert encoder.stats.texts_encoded == 4  # each mode's embeddings are cached apart, and reused
    on_cpu = Encoder(Recording(parse_model_spec("rec:y"), device="cpu"))
    on_cpu.texts(["a"], autocast="cuda_fp16")
    assert entered == [("cuda", torch.float16)]  # torch.cuda.amp.autocast does nothing for a model on the CPU


# -- a --protocol run is told from the task's own protocol by leaderboards --------------------------------------
def test_protocol_runs_are_a_setting_of_their_results(tmp_path, cli):
    tasks = tmp_path / "tasks"
    (tasks / "_protocols").mkdir(parents=True)
    seg = (REPO / "tasks" / "shapes" / "shapes_seg.yaml").read_text().replace("task: shapes_seg", "task: myseg")
    seg = seg.replace("seg_classes.txt", str(REPO / "tasks" / "shapes" / "seg_classes.txt")).replace("../_shared/", f"{REPO / 'tasks' / '_shared'}/")
    (tasks / "myseg.yaml").write_text(seg)
    (tasks / "_protocols" / "wide.yaml").write_text(
        "named_protocol: wide windows\nkind: segmentation\nreference: a test\nprotocol: {window: 64, stride: 64}\ntasks: {myseg: {}}\n")
    common = ["--model", TINY, "--tasks", "myseg", "--tasks-dir", str(tasks), "--limit", "2", "--output", "res"]
    assert cli("run", *common).returncode == 0
    covered = cli("run", *common, "--protocol", "wide")
    assert covered.returncode == 0, covered.stderr
    results = sorted((tmp_path / "res").rglob("myseg/*.json"))
    assert len(results) == 2  # side by side, not one replacing the other
    settings = sorted(json.loads(p.read_text())["task"]["run_settings"].get("protocol", "") for p in results)
    assert settings == ["", "wide"]
    board = cli("leaderboard", "res", "--include-partial", "--format", "long", "--settings", "protocol=wide", "--settings", "limit=2")
    assert board.returncode == 0 and "protocol=wide" in board.stdout, board.stdout + board.stderr


# -- issue 17: dataset readers from a plugin's entry points -------------------------------------------------
def test_a_reader_registered_through_the_entry_point_group_is_used_by_a_task_file(tmp_path, run_cli):
    dist = tmp_path / "site" / "color_reader_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: color-reader-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vlbench.readers]\nclassification.colorlist = color_reader:ColorListReader\n"
                                           "[vlbench.models]\ncolorep = color_adapter:ColorAdapter\n")
    (tmp_path / "colors.txt").write_text("red\ngreen\nblue\nblue\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "listed.yaml").write_text(
        f"task: listed\ninclude: {REPO / 'tasks/_shared/classification.yaml'}\nhelp: a plugin's format\n"
        f"dataset:\n  sources:\n    - {{format: colorlist, path: {tmp_path}, annotation: colors.txt}}\n")
    env = {"PYTHONPATH": f"{REPO / 'tests' / 'plugins'}{os.pathsep}{tmp_path / 'site'}"}
    done = run_cli("run", "--model", "colorep:x", "--tasks", "listed", "--tasks-dir", str(tasks), "--output", "res",
                   "--num-workers", "0", env=env)
    assert done.returncode == 0, done.stderr
    stored = read_result(tmp_path / "res" / "colorep__x", "listed")
    assert stored["metrics"]["acc1"] == 1.0 and stored["task"]["dataset"]["format"] == "colorlist" and stored["task"]["dataset"]["n"] == 4
    assert stored["task"]["inputs"]["files"] == {str(tmp_path / "colors.txt"): "sha256:" + __import__("hashlib").sha256(b"red\ngreen\nblue\nblue\n").hexdigest()}


# -- issue 17: a kind is one unit, with its resampler ------------------------------------------------------
def test_a_kind_without_a_resampler_is_refused_when_registered():
    from vlbench.errors import VLBenchError
    from vlbench.kinds import TASK_KINDS
    from vlbench.kinds.base import TaskKind

    class NoIntervals(TaskKind):
        name = "no_intervals"

        def predict(self, model, data, spec, ctx):
            return iter(())

        def score(self, records, spec):
            return {}

    with pytest.raises(VLBenchError, match="declares no resampler"):
        TASK_KINDS.register("no_intervals")(NoIntervals)
    assert "no_intervals" not in TASK_KINDS


def test_weighted_average_precision_is_average_precision_of_the_resample():
    from vlbench import metrics

    rng = np.random.default_rng(0)
    scores, targets = rng.random((40, 3)), rng.random((40, 3)) < 0.3
    scores[7] = scores[8]  # a tie between two samples
    weights = rng.integers(0, 4, (5, 40)).astype(float)
    for row in weights:
        drawn = np.repeat(np.arange(40), row.astype(int))  # the resampled dataset, copies together
        expected = metrics.average_precision_per_class(scores[drawn], targets[drawn])
        assert np.allclose(metrics.weighted_average_precision(scores, targets, row[None])[0], expected, atol=1e-12)


def test_multilabel_and_association_results_carry_confidence_intervals():
    from vlbench.kinds.association import AssociationKind
    from vlbench.kinds.multilabel import MultilabelKind
    from vlbench.results import intervals
    from vlbench.spec.taskfile import TaskSpec

    rng = np.random.default_rng(1)
    multilabel = [{"i": i, "scores": rng.random(4).tolist(), "targets": [int(rng.integers(4))]} for i in range(30)]
    spec = TaskSpec("m", "multilabel_classification", Path("m.yaml"), {"metrics": ["mean_average_precision"]})
    ci, resampled = intervals.confidence("multilabel_classification", multilabel, spec, ["mean_average_precision"], "mean_average_precision", 200)
    low, high = ci["mean_average_precision"]
    assert low < MultilabelKind().score(multilabel, spec)["mean_average_precision"] < high and resampled.replicates_n == 200
    association = [{"i": i, "scores": rng.random(5 if i % 2 else 10).tolist(), "positives": [0, 1]} for i in range(30)]
    spec = TaskSpec("w", "association", Path("w.yaml"), {"metrics": ["avg_jaccard_score", "jaccard_score_5"]})
    ci, _ = intervals.confidence("association", association, spec, spec.config["metrics"], "avg_jaccard_score", 200)
    assert set(ci) == {"avg_jaccard_score", "jaccard_score_5"}
    point = AssociationKind().score(association, spec)
    assert ci["jaccard_score_5"][0] <= point["jaccard_score_5"] <= ci["jaccard_score_5"][1]


def test_grounding_intervals_use_the_same_candidates_as_its_accuracy():
    from vlbench.kinds.grounding import GroundingKind
    from vlbench.results import intervals
    from vlbench.spec.taskfile import TaskSpec

    # the best-scoring box is tiny (left out by the area threshold); the kept one hits the target
    record = {"i": 0, "scores": [0.9, 0.5], "proposals": [[0, 0, 1, 1], [10, 10, 60, 60]], "target": [10, 10, 60, 60], "image_size": [100, 100]}
    spec = TaskSpec("g", "grounding", Path("g.yaml"), {"metrics": ["accuracy"], "protocol": {"box_area_threshold": 0.01}})
    assert GroundingKind().score([record], spec)["accuracy"] == 1.0
    ci, _ = intervals.confidence("grounding", [record], spec, ["accuracy"], "accuracy", 50)
    assert ci["accuracy"] == [1.0, 1.0]


def test_env_records_the_text_padding_the_model_applied(tmp_path):
    trimmed = run(tmp_path / "a", ["shapes_retrieval"], model=TINY, limit=4)["shapes_retrieval"]
    full = run(tmp_path / "b", ["shapes_retrieval"], model=TINY, limit=4, full_text_padding=True)["shapes_retrieval"]
    paddings = [read_result(o.result_file.parent.parent, "shapes_retrieval")["env"]["text_padding"] for o in (trimmed, full)]
    assert paddings == ["trimmed", "full"]
    assert trimmed.metrics == full.metrics  # trimming is exact for this tower


def test_run_settings_declare_each_options_role_and_the_identity_is_the_hashed_part():
    from vlbench.run.settings import ENV, IDENTITY, RunSettings

    roles = RunSettings.roles()
    assert {name for name, role in roles.items() if role == IDENTITY} == {"precision", "limit", "decode", "protocol"}
    assert roles["batch_size"] == ENV and roles["device"] == ENV and roles["full_text_padding"] == ENV
    settings = RunSettings(precision="bf16", seed=7, dense_variant="naclip", batch_size=8)
    assert settings.identity() == {"limit": None, "precision": "bf16"}  # seed and dense variant reach tasks through their config
    assert settings.shorthand_fields() == {"protocol.seed": 7, "protocol.dense_variant": "naclip"}
    assert settings.leaderboard_settings() == {"precision": "bf16", "protocol.seed": "7", "protocol.dense_variant": "naclip"}
