"""The CLI as a user runs it: end to end on the shapes tasks, leaderboard, and one-line user errors."""

import csv
import gzip
import json
from pathlib import Path

import pytest
from conftest import REPO, TINY, read_result
from data_fixtures import write_imagefolder

PLUGINS = str(REPO / "tests" / "plugins")


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert lines[0].startswith("error:")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_end_to_end_shapes_run_and_leaderboard(shapes_suite_run, cli, tmp_path):
    """The plain 'vlbench run' (vlbench-tiny on the shapes suite, shared by the session), then rescore and leaderboard."""
    results, result = shapes_suite_run
    model_dir = results / "openclip__vlbench-tiny@shapes"
    cls = read_result(model_dir, "shapes_cls")
    assert cls["schema_version"] == 3
    assert cls["model"]["id"] == "openclip:vlbench-tiny@shapes" and len(cls["model"]["fingerprint"]["weights_sha256"]) == 64
    assert cls["task"]["name"] == "shapes_cls" and cls["task"]["kind"] == "classification"
    assert cls["task"]["dataset"]["n"] == 600 and len(cls["task"]["config_hash"]) == 16
    assert set(cls["metrics"]) == {"acc1", "acc5", "mean_per_class_recall"} and cls["main_metric"] == "acc1"
    assert {"torch", "open_clip", "device", "precision", "batch_size", "seed", "git_sha"} <= set(cls["env"])
    assert cls["env"]["batch_size"] == 64 and cls["timing"]["images_encoded"] + cls["timing"]["images_from_cache"] == 600
    with gzip.open(model_dir / "shapes_cls" / cls["samples"], "rt") as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 600 and {"label", "top", "scores"} <= set(records[0])
    # the records alone reproduce the metrics
    acc1 = sum(r["top"][0] == r["label"] for r in records) / len(records)
    assert acc1 == pytest.approx(cls["metrics"]["acc1"])
    low, high = cls["ci"]["acc1"]
    assert low <= acc1 <= high and high - low < 0.05 and f"{100 * acc1:.2f} [{100 * low:.2f}, {100 * high:.2f}]" in result.stdout
    assert cls["bootstrap"]["unit"] == "images" and len(cls["bootstrap"]["main_replicates"]) == cls["bootstrap"]["replicates_n"] == 1000

    rescored = cli("rescore", str(results), "--check")
    assert rescored.returncode == 0, rescored.stderr
    assert "shapes_cls" in rescored.stdout

    board = cli("leaderboard", str(results), "--out", "board.csv")
    assert board.returncode == 0, board.stderr
    rows = list(csv.DictReader((tmp_path / "board.csv").open()))
    assert len(rows) == 1 and rows[0]["model"] == "openclip:vlbench-tiny@shapes"
    assert float(rows[0]["shapes_cls"]) == pytest.approx(cls["metrics"]["acc1"], abs=1e-6)
    retrieval = read_result(model_dir, "shapes_retrieval")
    assert float(rows[0]["shapes_retrieval"]) == pytest.approx(retrieval["metrics"][retrieval["main_metric"]], abs=1e-6)
    markdown = cli("leaderboard", str(results), "--format", "md")
    assert markdown.returncode == 0 and markdown.stdout.startswith("| model |")


def test_the_installed_command_runs_in_its_own_process(run_cli, tmp_path):
    """One real 'python -m vlbench' process: exit codes, stdout and files as a user sees them (the rest run in-process)."""
    result = run_cli("run", "--model", TINY, "--tasks", "shapes_cls", "--limit", "20", "--output", "res", "--debug")
    assert result.returncode == 0, result.stderr
    assert "shapes_cls" in result.stdout and "acc1" in result.stdout
    saved = read_result(tmp_path / "res" / "openclip__vlbench-tiny@random", "shapes_cls")
    assert saved["task"]["dataset"]["n"] == 20 and saved["task"]["run_settings"]["limit"] == 20


def test_list_commands(cli):
    tasks = cli("list", "tasks")
    assert tasks.returncode == 0, tasks.stderr
    assert "imagenet1k" in tasks.stdout and "missing" in tasks.stdout and "found" in tasks.stdout
    suites = cli("list", "suites")
    assert "shapes" in suites.stdout and "shapes_cls" in suites.stdout
    models = cli("list", "models")
    assert "openclip:ViT-B-32-quickgelu@openai" in models.stdout


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--tasks", "shapes_clss"], ["unknown task or suite 'shapes_clss'", "did you mean: shapes_cls"]),
        (["--model", "opneclip:ViT-B-32", "--tasks", "shapes_cls"], ["unknown model adapter 'opneclip'", "did you mean: openclip"]),
        (["--model", "openclip:ViT-B-23@openai", "--tasks", "shapes_cls"], ["unknown open_clip architecture 'ViT-B-23'", "did you mean"]),
        (["--model", "openclip:/no/such/ckpt.pt?arch=ViT-B-32", "--tasks", "shapes_cls"], ["checkpoint not found: /no/such/ckpt.pt"]),
        (["--model", "hf:/no/such/model/dir", "--tasks", "shapes_cls"], ["cannot load hf:/no/such/model/dir"]),
        (["--tasks", "cifar10"], ["dataset for task 'cifar10' not found", "cifar-10-batches-py", "cifar-10-python.tar.gz"]),
    ],
)
def test_user_errors_are_one_line(cli, args, fragments):
    if "--model" not in args:
        args = ["--model", TINY, *args]
    assert_one_line_error(cli("run", *args, "--output", "res"), *fragments)


def test_invalid_task_file_names_file_and_field(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: bad\nkind: classification\nversion: 1\ndataset: {sources: [{format: shapes, seed: 1, n: 4}]}\n"
                   "metrics: [acc1]\nmain_metric: acc7\n")
    assert_one_line_error(cli("run", "--model", TINY, "--tasks", str(bad)), str(bad), "main_metric", "acc7")


def _color_registry(tmp_path: Path) -> Path:
    registry = tmp_path / "my_registry.yaml"
    registry.write_text("models:\n  adapters:\n    color: color_adapter:ColorAdapter\n")
    return registry


def test_adapter_from_user_registry_file_runs_a_task(cli, tmp_path):
    tree = tmp_path / "colors"
    write_imagefolder(tree, per_class=3)
    env = {"PYTHONPATH": PLUGINS, "VLBENCH_REGISTRY": str(_color_registry(tmp_path))}
    result = cli("run", "--model", "color:v1", "--tasks", "imagefolder", "--set", f"dataset.path={tree}", "--output", "res", env=env)
    assert result.returncode == 0, result.stderr
    payload = read_result(tmp_path / "res" / "color__v1", "imagefolder")
    assert payload["metrics"]["acc1"] == 1.0 and payload["task"]["dataset"]["n"] == 9
    assert payload["model"]["fingerprint"]["adapter"] == "color"


def test_adapter_from_entry_point(cli, tmp_path, monkeypatch):
    from vlbench.models import MODEL_ADAPTERS

    # entry points are read once per process: start from a fresh view, and leave no 'colorep' behind
    monkeypatch.setattr(MODEL_ADAPTERS, "_items", dict(MODEL_ADAPTERS._items))
    monkeypatch.setattr(MODEL_ADAPTERS, "_entry_points_loaded", False)
    dist = tmp_path / "site" / "color_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: color-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vlbench.models]\ncolorep = color_adapter:ColorAdapter\n")
    tree = tmp_path / "colors"
    write_imagefolder(tree)
    env = {"PYTHONPATH": f"{PLUGINS}:{tmp_path / 'site'}"}
    result = cli("run", "--model", "colorep:x", "--tasks", "imagefolder", "--set", f"dataset.path={tree}", "--output", "res", env=env)
    assert result.returncode == 0, result.stderr
    assert read_result(tmp_path / "res" / "colorep__x", "imagefolder")["metrics"]["acc1"] == 1.0


def test_compositionality_suite_end_to_end_on_fixtures(cli, tmp_path):
    from selection_fixtures import (
        WordListTagger,
        sugarcrepe_data_root,
        write_aro_order,
        write_aro_vg,
        write_colorswap,
        write_crepe_productivity,
        write_mmvp_vlm,
        write_sugarcrepe_pp,
        write_valse,
        write_winoground,
    )

    from vlbench.datasets.aro_order import OrderPerturber

    data = sugarcrepe_data_root(tmp_path / "data")
    write_aro_vg(data)
    annotations = write_aro_order(data)
    write_winoground(data)
    write_sugarcrepe_pp(data)
    write_valse(data)
    write_colorswap(data)
    write_mmvp_vlm(data, pairs=2)
    write_crepe_productivity(data, n=3)
    overrides = []
    for task, name in (("aro_coco_order", "coco_karpathy_test.json"), ("aro_flickr30k_order", "flickr30k_test.json")):
        perturber = OrderPerturber(WordListTagger(), seed=1)
        items = [{"image": e["image"], "caption": c, "options": perturber.options(c)} for e in annotations[name] for c in e["caption"]]
        options = tmp_path / f"{task}.options.json"
        options.write_text(json.dumps({"seed": 1, "tagger": "word lists (test)", "items": items}))
        overrides += ["--set", f"{task}:files.order_options={options}"]
    result = cli("run", "--model", TINY, "--tasks", "compositionality", "--output", "res", *overrides)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "res" / "openclip__vlbench-tiny@random"
    expected = {"aro_vg_relation": 6, "aro_vg_attribution": 28, "aro_coco_order": 3, "aro_flickr30k_order": 2, "sugarcrepe_replace_obj": 1652,
                "sugarcrepe_replace_att": 788, "sugarcrepe_replace_rel": 1406, "sugarcrepe_swap_obj": 245, "sugarcrepe_swap_att": 666,
                "sugarcrepe_add_obj": 2062, "sugarcrepe_add_att": 692, "winoground": 4, "shapes_attribute_swap": 400, "shapes_relation_swap": 400,
                "sugarcrepe_pp_swap_obj": 3, "sugarcrepe_pp_replace_rel": 3, "valse_foil_it": 3, "valse_coreference_standard": 3,
                "colorswap": 4, "mmvp_vlm": 4, "crepe_prod_atom_4": 3, "crepe_prod_negate_12": 3}
    for task, n in expected.items():
        payload = read_result(folder, task)
        assert payload["task"]["dataset"]["n"] == n, task
        assert payload["main_metric"] in payload["metrics"]
        with gzip.open(folder / task / payload["samples"], "rt") as f:
            records = [json.loads(line) for line in f]
        assert len(records) == n and all("scores" in r for r in records)
    assert read_result(folder, "aro_coco_order")["env"]["seed"] == 1  # the seed its options were drawn with
    assert read_result(folder, "sugarcrepe_add_att")["env"]["seed"] is None  # nothing drawn
    winoground = read_result(folder, "winoground")
    assert {"group_score", "text_score", "image_score", "group_score/Object"} <= set(winoground["metrics"])
    order = read_result(folder, "aro_coco_order")
    with gzip.open(folder / "aro_coco_order" / order["artifacts"]["options"]["file"], "rt") as f:
        assert len(json.load(f)["items"]) == 3
    board = cli("leaderboard", "res", "--format", "csv")
    header = board.stdout.splitlines()[0].split(",")
    assert {"sugarcrepe", "sugarcrepe_replace", "sugarcrepe_swap", "sugarcrepe_add", "winoground", "sugarcrepe_pp", "valse"} <= set(header)
    # the order tasks ran with --set options files: other settings, so no default ARO cell (and a note says so)
    row = dict(zip(header, board.stdout.splitlines()[1].split(",")))
    assert row["aro"] == "" and "other settings" in board.stderr  # a declared column is always there, empty here
    sugar = [read_result(folder, t) for t in ("sugarcrepe_swap_obj", "sugarcrepe_swap_att")]
    pooled = sum(r["metrics"]["accuracy"] * r["task"]["dataset"]["n"] for r in sugar) / (245 + 666)
    assert float(row["sugarcrepe_swap"]) == pytest.approx(pooled, abs=1e-6)
