"""Task files: includes, overrides, validation errors, config hash; every built-in task and suite."""

from pathlib import Path

import pytest

from vlbench.spec.catalog import Catalog
from vlbench.errors import TaskSpecError, UnknownNameError, VLBenchError
from vlbench.spec.taskfile import parse_override
from vlbench.spec.checking import load_task_file


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def task_dir(tmp_path):
    write(tmp_path / "_base" / "templates.txt", "a photo of a {c}.\n")
    write(tmp_path / "_base" / "base.yaml", "kind: classification\nversion: 1\nfiles:\n  templates: templates.txt\n"
          "metrics: [acc1, acc5]\nmain_metric: acc1\n")
    write(tmp_path / "names.txt", "cat\ndog\n")
    task = write(tmp_path / "pets.yaml", "task: pets\ninclude: _base/base.yaml\nfiles:\n  classnames: names.txt\n"
                 "dataset:\n  sources:\n    - {format: imagefolder, path: pets}\n")
    return tmp_path, task


def test_include_merges_and_resolves_files_relative_to_each_file(task_dir):
    root, task = task_dir
    spec = load_task_file(task)
    assert spec.name == "pets" and spec.kind == "classification" and spec.version == 1
    assert spec.file("templates") == (root / "_base" / "templates.txt").resolve()
    assert spec.read_lines("classnames") == ["cat", "dog"]
    assert spec.metrics == ["acc1", "acc5"]


def test_overrides_set_nested_keys_and_resolve_paths_from_cwd(task_dir, monkeypatch):
    root, task = task_dir
    monkeypatch.chdir(root)
    spec = load_task_file(task, dict([parse_override("dataset.path=elsewhere"), parse_override("main_metric=acc5")]))
    assert spec.dataset["path"] == str((root / "elsewhere").resolve())
    assert spec.main_metric == "acc5"
    with pytest.raises(VLBenchError, match="key=value"):
        parse_override("no-equals-sign")


def test_config_hash_follows_file_contents_and_run_settings(task_dir):
    root, task = task_dir
    first = load_task_file(task).config_hash({"limit": None})
    assert load_task_file(task).config_hash({"limit": None}) == first
    assert load_task_file(task).config_hash({"limit": 5}) != first
    (root / "_base" / "templates.txt").write_text("a photo of a {c}.\na drawing of a {c}.\n")
    assert load_task_file(task).config_hash({"limit": None}) != first
    # words for people do not change the numbers, so they do not change the hash
    task.write_text(task.read_text() + "description: pets from my lab\n")
    second = load_task_file(task).config_hash({"limit": None})
    task.write_text(task.read_text().replace("pets from my lab", "other words"))
    assert load_task_file(task).config_hash({"limit": None}) == second


@pytest.mark.parametrize(
    "mutation, field",
    [
        (("main_metric: acc1", "main_metric: acc9"), "main_metric"),
        (("metrics: [acc1, acc5]", "metrics: [acc1, bleu]"), "metrics"),
        (("kind: classification", "kind: clasification"), "kind"),
        (("version: 1\n", ""), "version"),
        (("templates: templates.txt", "templates: nowhere.txt"), "files.templates"),
    ],
)
def test_invalid_fields_name_file_and_field(task_dir, mutation, field):
    root, task = task_dir
    base = root / "_base" / "base.yaml"
    base.write_text(base.read_text().replace(*mutation))
    with pytest.raises(TaskSpecError) as info:
        load_task_file(task)
    assert info.value.field == field
    assert str(task) in str(info.value) and field in str(info.value)


def test_unknown_kind_suggests_the_close_one(task_dir):
    root, task = task_dir
    base = root / "_base" / "base.yaml"
    base.write_text(base.read_text().replace("kind: classification", "kind: clasification"))
    with pytest.raises(TaskSpecError, match="did you mean: classification"):
        load_task_file(task)


@pytest.mark.parametrize(
    "protocol, field",
    [
        ("{window: 40, stride: 300}", "protocol.stride"),
        ("{prob_threshold: high}", "protocol.prob_threshold"),
        ("{pamr_steps: -1}", "protocol.pamr_steps"),
        ("{dense_variant: sclipp}", "protocol.dense_variant"),
    ],
)
def test_segmentation_protocol_values_are_checked(tmp_path, protocol, field):
    from conftest import REPO

    (tmp_path / "classes.txt").write_text("background\ncircle\n")
    task = write(tmp_path / "seg.yaml", f"task: seg\ninclude: {REPO / 'tasks/segmentation/_sclip.yaml'}\n"
                 "dataset: {sources: [{format: shapes, seed: 1, n: 2}]}\nfiles: {classnames: classes.txt}\n"
                 f"protocol: {protocol}\n")
    with pytest.raises(TaskSpecError) as info:
        load_task_file(task)
    assert info.value.field == field


def test_a_source_missing_a_key_its_format_needs(tmp_path):
    task = write(tmp_path / "r.yaml", "task: r\nkind: retrieval\nversion: 1\ndataset: {sources: [{format: karpathy, path: coco}]}\n"
                 "metrics: [mean_recall@1]\nmain_metric: mean_recall@1\n")
    with pytest.raises(TaskSpecError, match=r"dataset.sources\[0\].annotation.*karpathy format needs it"):
        load_task_file(task)


def test_broken_yaml_names_the_line(tmp_path):
    bad = write(tmp_path / "bad.yaml", "task: x\nkind: [unclosed\n")
    with pytest.raises(TaskSpecError, match=r"bad.yaml.*line"):
        load_task_file(bad)


def test_every_builtin_task_is_valid_and_every_suite_resolves():
    catalog = Catalog.load()
    assert {"shapes_cls", "shapes_retrieval", "imagenet1k", "cifar10", "cifar100", "imagefolder", "mscoco", "flickr30k"} <= set(catalog.tasks)
    for name in catalog.tasks:
        spec = catalog.load_task(name)
        assert spec.name == name
        assert spec.help, f"task {name} must say how to get its data"
    for suite in catalog.suites:
        assert catalog.suite_tasks(suite), suite
    for column in catalog.leaderboard_columns:
        assert column in catalog.tasks or column in catalog.suites, column


def test_selection_expands_suites_globs_and_suggests_names():
    catalog = Catalog.load()
    assert catalog.select(["shapes"]) == catalog.suite_tasks("shapes")
    assert "shapes_cls" in catalog.select(["shapes_c*"])
    with pytest.raises(UnknownNameError, match="did you mean: cifar10"):
        catalog.select(["cifar01"])


def test_user_registry_adds_suites_and_aliases(tmp_path):
    extra = write(tmp_path / "mine.yaml", "suites:\n  mine: [shapes_cls]\nmodels:\n  aliases:\n    tiny: openclip:vlbench-tiny@random\n")
    catalog = Catalog.load(extra_registry_files=[extra])
    assert catalog.suite_tasks("mine") == ["shapes_cls"]
    assert catalog.resolve_model("tiny").id == "openclip:vlbench-tiny@random"
    assert "shapes" in catalog.suites  # built-in entries stay


def test_config_hashes_of_the_shipped_tasks_are_those_results_were_written_with():
    """The committed table (tests/config_hash_table.py) pins every shipped task's config hash under the
    default settings and --limit, --precision bf16, --seed, --protocol naclip and --language it: results
    written before a refactoring must still be found."""
    import json

    from config_hash_table import TABLE, config_hashes

    assert config_hashes() == json.loads(TABLE.read_text())


def test_naming_suites_and_tasks_imports_no_model_library():
    """The catalog and 'vlbench list suites' reach kinds and adapters through their registries only."""
    import subprocess
    import sys

    check = ("import sys\n"
             "import vlbench.spec.catalog as c\n"
             "c.Catalog.load().suite_tasks('compositionality')\n"
             "from vlbench.cli import main\n"
             "sys.argv = ['vlbench', 'list', 'suites']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision', 'open_clip', 'transformers', 'numpy', 'pandas'})\n"
             "print('HEAVY', heavy)\n")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "HEAVY []", done.stdout[-500:]


def test_a_kinds_protocol_and_sources_are_parsed_once_per_task_and_a_changed_spec_gets_its_own(monkeypatch):
    from dataclasses import replace

    import vlbench.kinds.base as kinds_base
    from vlbench.datasets.shapes import ShapesSource
    from vlbench.kinds import TASK_KINDS
    from vlbench.spec.catalog import Catalog

    calls = []
    real_parse = kinds_base.parse
    monkeypatch.setattr(kinds_base, "parse", lambda *args, **kwargs: calls.append(args[0]) or real_parse(*args, **kwargs))
    spec = Catalog.load().load_task("shapes_cls")  # checking the task parses its source's options
    kind = TASK_KINDS.get(spec.kind)
    first = kind.options(spec)
    assert kind.options(spec) is first and calls == [kind.protocol_schema, ShapesSource]
    changed = replace(spec, config={**spec.config, "protocol": {**spec.protocol, "wds_blank_lines": "drop"}})
    assert kind.options(changed).wds_blank_lines == "drop" and first.wds_blank_lines != "drop" and len(calls) == 3
    # the reader gets the typed source its check made, defaults filled in; nothing parses it again
    located = kind().locate(spec, Path("."))
    assert located.options is kind.source_options(spec, 0) and located.options.size == 128 and len(calls) == 3
