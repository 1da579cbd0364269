"""Many models per run, --shard, progress lines for logs."""

import csv
import io
import sys

import pytest
from conftest import REPO, read_result
from data_fixtures import write_imagefolder
from typer.testing import CliRunner

from vlbench.spec.catalog import Catalog
from vlbench.cli import app
from vlbench.console import LogProgress
from vlbench.errors import VLBenchError
from vlbench.models.collections import read_spec_file, split_specs
from vlbench.run.runner import Runner
from vlbench.run.settings import RunSettings
from vlbench.run.shards import Shard

sys.path.insert(0, str(REPO / "tests" / "plugins"))
import color_adapter  # noqa: E402

color_adapter.register_with_decorator("color-scale")

TINY_A = "openclip:vlbench-tiny@random?seed=0"
TINY_B = "openclip:vlbench-tiny@random?seed=1"


def invoke(*args, env=None):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})}, catch_exceptions=False)


def test_two_models_in_one_run_each_loaded_once_with_summary_and_leaderboard(tmp_path):
    models = tmp_path / "models.txt"
    models.write_text(f"# again\n{TINY_A}  # named twice: runs once\n\n")
    result = invoke("run", "--model", TINY_A, "--model", TINY_B, "--models", str(models),
                    "--tasks", "shapes_cls", "--limit", "8", "--num-workers", "0",
                    "--output", str(tmp_path / "res"), "--data-root", str(tmp_path), "--leaderboard", str(tmp_path / "board.csv"))
    assert result.exit_code == 0, result.output
    assert result.output.count("loading model") == 2
    assert result.output.index(f"loading model {TINY_A}") < result.output.index(f"loading model {TINY_B}")
    assert f"results: {TINY_A}" in result.output and f"results: {TINY_B}" in result.output
    acc1 = {}
    for spec in (TINY_A, TINY_B):
        slug = Catalog.load().resolve_model(spec).slug
        payload = read_result(tmp_path / "res" / slug, "shapes_cls")
        assert payload["model"]["id"] == spec and payload["task"]["dataset"]["n"] == 8
        acc1[spec] = payload["metrics"]["acc1"]
    rows = {row["model"]: row for row in csv.DictReader((tmp_path / "board.csv").open())}
    assert set(rows) == {TINY_A, TINY_B}
    assert all(float(rows[m]["shapes_cls"]) == pytest.approx(acc1[m], abs=1e-6) for m in rows)
    # a second run finds every result and loads nothing
    again = invoke("run", "--model", f"{TINY_A},{TINY_B}", "--tasks", "shapes_cls", "--limit", "8",
                   "--output", str(tmp_path / "res"), "--data-root", str(tmp_path))
    assert again.exit_code == 0 and "loading model" not in again.output and again.output.count("cached") == 2


def test_missing_data_is_checked_once_before_any_model_loads(tmp_path):
    result = invoke("run", "--model", f"{TINY_A},{TINY_B}", "--tasks", "cifar10,shapes_cls",
                    "--output", str(tmp_path / "res"), "--data-root", str(tmp_path))
    assert result.exit_code == 2 and "loading model" not in result.output
    assert "cifar10" in result.output and (tmp_path / "res").exists() is False


def test_model_lists_files_and_collections(tmp_path):
    catalog = Catalog.load()
    assert split_specs(["a:x,b:y", " c:z ", ""]) == ["a:x", "b:y", "c:z"]
    spec_file = tmp_path / "m.txt"
    spec_file.write_text("# header\nopenclip:ViT-B-32\n  openai_clip # a collection\nhf:/ckpt/run#3\n")
    assert read_spec_file(spec_file) == ["openclip:ViT-B-32", "openai_clip", "hf:/ckpt/run#3"]
    openai = [s.id for s in catalog.resolve_models(["openai_clip"])]
    assert len(openai) == 9 and openai[0] == "openclip:RN50-quickgelu@openai"
    assert all(i.endswith("@openai") and "quickgelu" in i for i in openai)
    import open_clip

    pretrained = {s.id for s in catalog.resolve_models(["openclip_pretrained", "openclip:ViT-B-32"])}
    assert "openclip:ViT-B-16@laion2b_s34b_b88k" in pretrained
    assert "openclip:ViT-B-32-quickgelu@openai" in pretrained and "openclip:ViT-B-32@openai" not in pretrained
    listed = {f"openclip:{arch}@{tag}" for arch, tag in open_clip.list_pretrained()}
    assert pretrained <= listed
    for dropped in listed - pretrained:  # only plain-arch twins of QuickGELU weights, which load the same model
        arch, tag = dropped.split(":", 1)[1].split("@")
        assert f"openclip:{arch}-quickgelu@{tag}" in pretrained
    with pytest.raises(VLBenchError, match="did you mean: openai_clip"):
        catalog.resolve_models(["openai_clp"])
    listed_models = invoke("list", "models")
    assert "openai_clip" in listed_models.output and "openclip_pretrained" in listed_models.output
    typo = invoke("run", "--model", "openai_clp", "--shard", "0/2")
    assert typo.exit_code == 2 and "did you mean: openai_clip" in typo.output and "Traceback" not in typo.output
    bad_shard = invoke("run", "--model", "openai_clip", "--shard", "2/2")
    assert bad_shard.exit_code == 2 and "--shard 2/2: K must be 0 to 1" in bad_shard.output
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(VLBenchError, match="names no model"):
        read_spec_file(empty)


def test_shards_partition_the_grid_deterministically():
    grid = [(f"m{m}", f"t{t}") for m in range(3) for t in range(7)]
    for count in (1, 2, 3, 5, 21, 30):
        shards = [Shard(k, count).select(reversed(grid) if k % 2 else grid) for k in range(count)]
        assert set().union(*shards) == set(grid)
        assert sum(len(s) for s in shards) == len(grid)  # disjoint
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    # contiguous blocks of the sorted grid: shard 0 of 3 is the first model's tasks
    assert Shard(0, 3).select(grid) == {("m0", f"t{t}") for t in range(7)}
    assert Shard.parse("3/4") == Shard(3, 4)
    for bad in ("4/4", "1", "a/b", "0/0"):
        with pytest.raises(VLBenchError, match="--shard"):
            Shard.parse(bad)


def test_shard_runs_cover_the_full_run(tmp_path):
    write_imagefolder(tmp_path / "colors", per_class=1)
    for name in ("colors_a", "colors_b", "colors_c"):
        (tmp_path / f"{name}.yaml").write_text(
            f"task: {name}\ninclude: {REPO / 'tasks/_shared/classification.yaml'}\nhelp: generated in the test\n"
            "dataset:\n  sources:\n    - {format: imagefolder, path: colors}\n"
        )
    catalog = Catalog.load(extra_task_dirs=[tmp_path])
    models = catalog.resolve_models(["color-scale:v1", "color-scale:v2"])
    tasks = ["colors_a", "colors_b", "colors_c"]
    files = {}
    for k in range(4):
        out = tmp_path / f"shard{k}"
        runner = Runner(catalog, RunSettings(data_root=tmp_path, output=out, num_workers=0))
        runs = runner.run_many(models, tasks, Shard(k, 4))
        files[k] = {p.parent.relative_to(out).as_posix() for p in out.rglob("*.json")}
        assert sum(len(outcomes) for _, outcomes in runs) == len(files[k]) >= 1
    assert sum(map(len, files.values())) == 6  # disjoint
    assert set().union(*files.values()) == {f"{m.slug}/{t}" for m in models for t in tasks}


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_log_progress_prints_every_tenth_or_thirty_seconds():
    clock, stream = FakeClock(), io.StringIO()
    progress = LogProgress(stream, clock)
    job = progress.start("encoding shapes_cls", 1000)
    for _ in range(100):  # 10 per second: a line per 10% (every 10 s), none in between
        clock.now += 1
        progress.advance(job, 10)
    progress.finish(job)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "encoding shapes_cls: 100/1000 (10%), 10.0/s, ETA 1m30s"
    assert lines[-1] == "encoding shapes_cls: 1000/1000 (100%), 10.0/s, done in 1m40s"

    slow, stream = LogProgress(io.StringIO(), clock), None
    job = slow.start("segmenting voc21", 1000)
    for _ in range(12):  # 1 item per 10 s: 10% takes 1000 s, so the 30 s rule prints
        clock.now += 10
        slow.advance(job, 1)
    lines = slow.stream.getvalue().splitlines()
    assert len(lines) == 4 and lines[0] == "segmenting voc21: 3/1000 (0%), 0.1/s, ETA 2h46m"
