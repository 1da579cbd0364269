"""The run loop: resume, overwrite, config changes, a crash mid-run, caching across tasks."""

import json
import sys

import pytest
from conftest import REPO
from data_fixtures import write_imagefolder

from vlbench.catalog import Catalog
from vlbench.errors import DatasetNotFoundError, VLBenchError
from vlbench.runner import Runner, RunOptions

sys.path.insert(0, str(REPO / "tests" / "plugins"))
import color_adapter  # noqa: E402

color_adapter.register_with_decorator("color-decorated")
MODEL = "color-decorated:v1"


@pytest.fixture
def setup(tmp_path):
    tree = tmp_path / "colors"
    write_imagefolder(tree, per_class=2)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name in ("colors_a", "colors_b"):
        (tasks / f"{name}.yaml").write_text(
            f"task: {name}\ninclude: {REPO / 'tasks/_shared/classification.yaml'}\nhelp: generated in the test\n"
            f"dataset:\n  sources:\n    - {{format: imagefolder, path: colors}}\n"
        )
    catalog = Catalog.load(extra_task_dirs=[tasks])
    return tmp_path, catalog


def make_runner(tmp_path, catalog, **options):
    return Runner(catalog, RunOptions(data_root=tmp_path, output=tmp_path / "res", num_workers=0, **options))


def test_results_resume_and_overwrite(setup):
    tmp_path, catalog = setup
    _, outcomes = make_runner(tmp_path, catalog).run(MODEL, ["colors_a", "colors_b"])
    assert [o.status for o in outcomes] == ["done", "done"]
    assert all(o.metrics["acc1"] == 1.0 for o in outcomes)
    first = (tmp_path / "res" / "color-decorated__v1" / "colors_a.json").read_text()
    _, again = make_runner(tmp_path, catalog).run(MODEL, ["colors_a", "colors_b"])
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert (tmp_path / "res" / "color-decorated__v1" / "colors_a.json").read_text() == first
    _, forced = make_runner(tmp_path, catalog, overwrite=True).run(MODEL, ["colors_a"])
    assert forced[0].status == "done"


def test_changed_config_or_limit_reruns(setup):
    tmp_path, catalog = setup
    make_runner(tmp_path, catalog).run(MODEL, ["colors_a"])
    templates = tmp_path / "t.txt"
    templates.write_text("{c}\n")
    _, outcomes = make_runner(tmp_path, catalog, overrides={"files.templates": str(templates)}).run(MODEL, ["colors_a"])
    assert outcomes[0].status == "done"
    _, limited = make_runner(tmp_path, catalog, limit=2).run(MODEL, ["colors_a"])
    assert limited[0].status == "done" and limited[0].n == 2
    saved = json.loads((tmp_path / "res" / "color-decorated__v1" / "colors_a.json").read_text())
    assert saved["task"]["run_settings"]["limit"] == 2


def test_crash_in_a_task_keeps_earlier_results_and_writes_nothing_partial(setup):
    tmp_path, catalog = setup
    broken = tmp_path / "broken"
    write_imagefolder(broken, per_class=2)
    (broken / "red" / "1.png").write_bytes(b"not a png")
    overrides_b = tmp_path / "tasks" / "colors_b.yaml"
    overrides_b.write_text(overrides_b.read_text().replace("path: colors", "path: broken"))
    runner = make_runner(tmp_path, Catalog.load(extra_task_dirs=[tmp_path / "tasks"]))
    with pytest.raises(VLBenchError, match=r"cannot read image .*red/1.png"):
        runner.run(MODEL, ["colors_a", "colors_b"])
    folder = tmp_path / "res" / "color-decorated__v1"
    assert sorted(p.name for p in folder.iterdir()) == ["colors_a.json", "colors_a.samples.jsonl.gz"]


def test_missing_data_stops_before_loading_the_model_unless_skipped(setup):
    tmp_path, catalog = setup
    with pytest.raises(DatasetNotFoundError, match="cifar10"):
        make_runner(tmp_path, catalog).run("color-decorated:v1", ["colors_a", "cifar10"])
    assert not (tmp_path / "res").exists()
    _, outcomes = make_runner(tmp_path, catalog, skip_missing=True).run(MODEL, ["colors_a", "cifar10"])
    assert [o.status for o in outcomes] == ["done", "missing"]


def test_shared_images_are_encoded_once_per_run(setup):
    tmp_path, catalog = setup
    runner = make_runner(tmp_path, catalog)
    _, outcomes = runner.run(MODEL, ["colors_a", "colors_b"])
    timings = [json.loads(o.result_file.read_text())["timing"]["images_encoded"] for o in outcomes]
    assert timings == [6, 0]  # the second task reuses the first task's image embeddings
