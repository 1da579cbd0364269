"""The run loop: resume, overwrite, config changes, a crash mid-run, caching across tasks."""

import json
import sys

import pytest
from conftest import REPO, result_file
from data_fixtures import write_imagefolder

from vlbench.spec.catalog import Catalog
from vlbench.errors import DatasetNotFoundError, VLBenchError
from vlbench.run.runner import Runner
from vlbench.run.settings import RunSettings

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
    return Runner(catalog, RunSettings(data_root=tmp_path, output=tmp_path / "res", num_workers=0, **options))


def test_results_resume_and_overwrite(setup):
    tmp_path, catalog = setup
    _, outcomes = make_runner(tmp_path, catalog).run(MODEL, ["colors_a", "colors_b"])
    assert [o.status for o in outcomes] == ["done", "done"]
    assert all(o.metrics["acc1"] == 1.0 for o in outcomes)
    first = result_file(tmp_path / "res" / "color-decorated__v1", "colors_a").read_text()
    _, again = make_runner(tmp_path, catalog).run(MODEL, ["colors_a", "colors_b"])
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert result_file(tmp_path / "res" / "color-decorated__v1", "colors_a").read_text() == first
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
    saved = json.loads(limited[0].result_file.read_text())
    assert saved["task"]["run_settings"]["limit"] == 2
    assert len(list((tmp_path / "res" / "color-decorated__v1" / "colors_a").glob("*.json"))) == 3  # side by side


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
    saved_file = result_file(folder, "colors_a")
    saved = json.loads(saved_file.read_text())
    assert [p.name for p in folder.iterdir()] == ["colors_a"]  # nothing of colors_b
    assert sorted(p.name for p in saved_file.parent.iterdir()) == sorted([saved_file.name, saved["samples"]])  # no temporary file


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


def test_precision_and_replaced_local_weights_invalidate_results(setup):
    tmp_path, catalog = setup
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"v1")
    model = f"color-decorated:{weights}"
    make_runner(tmp_path, catalog).run(model, ["colors_a"])
    assert make_runner(tmp_path, catalog).run(model, ["colors_a"])[1][0].status == "skipped"
    _, bf16 = make_runner(tmp_path, catalog, precision="bf16").run(model, ["colors_a"])
    assert bf16[0].status == "done"
    make_runner(tmp_path, catalog).run(model, ["colors_a"])
    import os

    weights.write_bytes(b"v2, retrained")
    os.utime(weights, ns=(1, 10**18))
    assert make_runner(tmp_path, catalog).run(model, ["colors_a"])[1][0].status == "done"


def test_each_run_has_its_own_samples_file_and_files_are_strict_json(setup):
    tmp_path, catalog = setup
    folder = tmp_path / "res" / "color-decorated__v1" / "colors_a"
    make_runner(tmp_path, catalog).run(MODEL, ["colors_a"])
    path = result_file(folder.parent, "colors_a")
    first = json.loads(path.read_text())["samples"]
    make_runner(tmp_path, catalog, overwrite=True).run(MODEL, ["colors_a"])
    second = json.loads(path.read_text())["samples"]
    assert first != second and not (folder / first).exists() and (folder / second).exists()
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives under this process's umask
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    text = path.read_text()
    assert "NaN" not in text and json.loads(text)["metrics"]["acc5"] is None  # 3 classes: top-5 undefined, written as null


def test_set_scoped_to_a_task_that_is_not_running_is_an_error(setup):
    tmp_path, catalog = setup
    with pytest.raises(VLBenchError, match="colors_c:... names a task that is not in this run.*did you mean: colors_"):
        make_runner(tmp_path, catalog, overrides={"colors_c:protocol.x": 1}).run(MODEL, ["colors_a", "colors_b"])


def test_a_limit_run_never_replaces_the_full_result(setup):
    from vlbench.results.tables import load_board

    tmp_path, catalog = setup
    _, full = make_runner(tmp_path, catalog).run(MODEL, ["colors_a"])
    full_text = full[0].result_file.read_text()
    full_samples = full[0].result_file.parent / json.loads(full_text)["samples"]
    _, smoke = make_runner(tmp_path, catalog, limit=2).run(MODEL, ["colors_a"])
    assert smoke[0].status == "done" and smoke[0].result_file != full[0].result_file
    assert full[0].result_file.read_text() == full_text and full_samples.is_file()
    board = load_board(tmp_path / "res", catalog)
    frame, partial = board.frame, board.partial
    assert list(frame["colors_a"]) == [1.0] and partial == 0 and "settings" not in frame.columns
    _, again = make_runner(tmp_path, catalog).run(MODEL, ["colors_a"])
    assert again[0].status == "skipped"  # the full run is still the one resumed


def test_a_result_naming_a_file_outside_its_folder_cannot_make_a_rerun_delete_it(setup):
    tmp_path, catalog = setup
    _, outcomes = make_runner(tmp_path, catalog).run(MODEL, ["colors_a"])
    path = outcomes[0].result_file
    victims = [tmp_path / "victim.samples.jsonl.gz", tmp_path / "res" / "victim.txt"]
    for victim in victims:
        victim.write_text("keep me")
    for hostile in ("../../../victim.samples.jsonl.gz", str(victims[1])):
        payload = json.loads(path.read_text())
        payload["samples"] = hostile
        path.write_text(json.dumps(payload))
        _, rerun = make_runner(tmp_path, catalog, overwrite=True).run(MODEL, ["colors_a"])
        assert rerun[0].status == "done"
    assert all(v.read_text() == "keep me" for v in victims)
