"""Faults a careful user meets: full disks, read-only folders, SIGTERM, odd images, bad task files and
options, incapable or broken adapters, no network; and vlbench leaving the process as it found it."""

import errno
import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, TINY, read_result, result_file
from data_fixtures import write_imagefolder
from PIL import Image

from vlbench.spec.catalog import Catalog
from vlbench.errors import ModelLoadError, TaskSpecError, VLBenchError
from vlbench.run.runner import Runner
from vlbench.run.settings import RunSettings

PLUGINS = str(REPO / "tests" / "plugins")


def one_line_error(result, *fragments, code=2):
    assert result.returncode == code, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def registry_file(tmp_path: Path, **adapters: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text("models:\n  adapters:\n" + "".join(f"    {k}: {v}\n" for k, v in adapters.items()))
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


@pytest.fixture
def colors(tmp_path):
    """An imagefolder of flat colours, a second task on another copy, and a registry naming the colour adapter."""
    write_imagefolder(tmp_path / "colors", per_class=2)
    write_imagefolder(tmp_path / "colors2", per_class=2)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name, tree in (("colors_a", "colors"), ("colors_b", "colors2")):
        (tasks / f"{name}.yaml").write_text(
            f"task: {name}\ninclude: {REPO / 'tasks/_shared/classification.yaml'}\nhelp: generated in the test\n"
            f"dataset:\n  sources:\n    - {{format: imagefolder, path: {tmp_path / tree}}}\n"
        )
    env = {"PYTHONPATH": PLUGINS, "VLBENCH_REGISTRY": str(registry_file(tmp_path, color="color_adapter:ColorAdapter"))}
    return tmp_path, env


def runner(tmp_path, catalog=None, **options):
    catalog = catalog or Catalog.load(extra_task_dirs=[tmp_path / "tasks"], extra_registry_files=[tmp_path / "registry.yaml"])
    return Runner(catalog, RunSettings(data_root=tmp_path, output=tmp_path / "res", num_workers=0, **options))


# -- 4: a full disk ---------------------------------------------------------------------------------
def test_full_disk_is_one_line_keeps_the_old_result_and_leaves_no_temporary_file(colors, cli, monkeypatch):
    tmp_path, env = colors
    assert cli("run", "--model", "color:x", "--tasks", "colors_a", "--tasks-dir", "tasks", "--output", "res", env=env).returncode == 0
    folder = tmp_path / "res" / "color__x" / "colors_a"
    result_json = result_file(folder.parent, "colors_a")
    before = result_json.read_text()
    from vlbench.results import io as results

    original = results.SampleWriter.write

    def fills_up(self, record):
        if self.count == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, record)

    monkeypatch.setattr(results.SampleWriter, "write", fills_up)
    result = cli("run", "--model", "color:x", "--tasks", "colors_a", "--tasks-dir", "tasks", "--output", "res", "--overwrite", env=env)
    one_line_error(result, "cannot write results to res/color__x", "No space left on device", "free some space")
    assert result_json.read_text() == before
    assert sorted(p.name for p in folder.iterdir()) == sorted([result_json.name, json.loads(before)["samples"]])


def test_full_disk_at_the_result_file_removes_the_new_samples(colors, monkeypatch):
    tmp_path, _ = colors
    runner(tmp_path).run("color:x", ["colors_a"])
    folder = tmp_path / "res" / "color__x" / "colors_a"
    before = sorted(p.name for p in folder.iterdir())
    from vlbench.results import io as results

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "atomic_write_text", full)
    with pytest.raises(VLBenchError, match="No space left on device"):
        runner(tmp_path, overwrite=True).run("color:x", ["colors_a"])
    assert sorted(p.name for p in folder.iterdir()) == before


def test_a_run_cleans_what_killed_runs_left_but_nothing_else(colors):
    tmp_path, _ = colors
    runner(tmp_path).run("color:x", ["colors_a"])
    folder = tmp_path / "res" / "color__x" / "colors_a"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale_tmp = folder / f".colors_a.json.{dead}-0123abcd.tmp"
    live_tmp = folder / f".colors_b.json.{os.getpid()}-0123abcd.tmp"  # a run still going
    old_orphan = folder / "colors_b.deadbeef.samples.jsonl.gz"
    new_orphan = folder / "colors_b.feedbeef.samples.jsonl.gz"  # may belong to a run about to write its JSON
    foreign = [folder / "notes.tmp", folder / "my.samples.txt", folder / ".hidden.tmp"]
    for path in (stale_tmp, live_tmp, old_orphan, new_orphan, *foreign):
        path.write_bytes(b"x")
    os.utime(old_orphan, (time.time() - 3600, time.time() - 3600))
    logs = []
    Runner(runner(tmp_path).catalog, RunSettings(data_root=tmp_path, output=tmp_path / "res", num_workers=0), log=logs.append).run("color:x", ["colors_a"])
    assert not stale_tmp.exists() and not old_orphan.exists()
    assert live_tmp.exists() and new_orphan.exists() and all(p.exists() for p in foreign)
    saved = read_result(folder.parent, "colors_a")
    assert (folder / saved["samples"]).exists()  # the samples a result names are never touched
    assert any(stale_tmp.name in line for line in logs)


# -- 13: an output folder that cannot be written ----------------------------------------------------
def test_output_that_is_a_file_fails_before_the_model_loads(colors, cli):
    tmp_path, env = colors
    (tmp_path / "taken").write_text("a file")
    result = cli("run", "--model", "color:x", "--tasks", "colors_a", "--tasks-dir", "tasks", "--output", "taken", env=env)
    one_line_error(result, "taken is a file, not a folder", "--output")
    assert "loading model" not in result.stdout


def test_unwritable_output_fails_before_the_model_loads(colors, cli, monkeypatch):
    tmp_path, env = colors
    real_open = os.open

    def read_only(path, flags, mode=0o777, **kwargs):  # what a read-only folder does to a new file
        if "write-check" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    result = cli("run", "--model", "color:x", "--tasks", "colors_a", "--tasks-dir", "tasks", "--output", "res", env=env)
    one_line_error(result, "cannot write results to", "Permission denied", "writable --output")
    assert "loading model" not in result.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(colors, cli):
    tmp_path, env = colors
    (tmp_path / "ro").mkdir(mode=0o555)
    result = cli("run", "--model", "color:x", "--tasks", "colors_a", "--tasks-dir", "tasks", "--output", "ro", env=env)
    one_line_error(result, "cannot write results to")


# -- 14: SIGTERM -------------------------------------------------------------------------------------
SIGTERM_ADAPTER = """
import os, signal
from color_adapter import ColorAdapter

class KilledAdapter(ColorAdapter):
    calls = 0

    def image_features(self, pixels):
        type(self).calls += 1
        if type(self).calls == int(os.environ["KILL_AT_BATCH"]):
            os.kill(os.getpid(), signal.SIGTERM)
        return super().image_features(pixels)
"""


def test_sigterm_keeps_finished_tasks_and_removes_the_temporary_file(colors, cli):
    tmp_path, env = colors
    handler_before = signal.getsignal(signal.SIGTERM)
    (tmp_path / "killed_adapter.py").write_text(SIGTERM_ADAPTER)
    env = {**env, "PYTHONPATH": f"{tmp_path}{os.pathsep}{PLUGINS}", "KILL_AT_BATCH": "4",
           "VLBENCH_REGISTRY": str(registry_file(tmp_path, killed="killed_adapter:KilledAdapter"))}
    # 6 images per task in batches of 4: task a takes batches 1-2, task b dies in its second
    result = cli("run", "--model", "killed:x", "--tasks", "colors_a,colors_b", "--tasks-dir", "tasks", "--output", "res", "--batch-size", "4", "--num-workers", "0", env=env)
    assert result.returncode == 143, result.stderr
    assert "terminated" in result.stderr and "Traceback" not in result.stderr
    folder = tmp_path / "res" / "killed__x"
    assert read_result(folder, "colors_a")["metrics"]["acc1"] == 1.0
    assert not list(folder.glob("colors_b/*.json")) and leftovers(tmp_path / "res") == []
    assert signal.getsignal(signal.SIGTERM) == handler_before  # the handler is given back


# -- 15: --skip-missing with nothing to run -----------------------------------------------------------
def test_skip_missing_with_every_task_missing_says_nothing_ran(cli, tmp_path):
    result = cli("run", "--model", TINY, "--tasks", "cifar10,cifar100", "--skip-missing", "--output", "res")
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    # the tasks are listed as missing (the table on stdout, its title on stderr), then one error line
    assert result.stdout.count("no data") == 2 and "cifar100" in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert "nothing ran" in last and "2 selected task(s)" in last
    assert not (tmp_path / "res").exists()


# -- 16: a task kind the model cannot do ----------------------------------------------------------------
def test_unsupported_tasks_are_reported_and_the_rest_runs(colors, cli):
    tmp_path, env = colors
    result = cli("run", "--model", "color:x", "--tasks", "colors_a,shapes_seg", "--tasks-dir", "tasks", "--output", "res", env=env)
    assert result.returncode == 0, result.stderr
    # the table on stdout; the remark beside it on stderr, as stdout is not a terminal here
    assert "unsupported" in result.stdout and "shapes_seg: not run: this model cannot do segmentation" in result.stderr
    folder = tmp_path / "res" / "color__x"
    assert list((folder / "colors_a").glob("*.json")) and not (folder / "shapes_seg").exists()

    strict = cli("run", "--model", "color:x", "--tasks", "colors_b,shapes_seg", "--tasks-dir", "tasks", "--output", "res", "--strict", env=env)
    one_line_error(strict, "task 'shapes_seg'", "cannot do segmentation")
    assert not (folder / "colors_b").exists()  # checked before any task ran


# -- 18: a broken out-of-tree adapter, and --debug -----------------------------------------------------
BROKEN_ADAPTERS = """
from vlbench.models import ModelAdapter

class Incomplete(ModelAdapter):
    image_transform = None

    def image_features(self, pixels):
        return pixels

class Raises(Incomplete):
    def __init__(self, spec, device="cpu", precision="fp32"):
        raise RuntimeError("weights folder is empty")

    def text_features(self, texts):
        return texts
"""


def test_broken_adapter_is_one_line_and_debug_shows_the_traceback(cli, tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_adapters.py").write_text(BROKEN_ADAPTERS)
    env = {"PYTHONPATH": str(tmp_path), "VLBENCH_REGISTRY": str(registry_file(tmp_path, incomplete="broken_adapters:Incomplete", raises="broken_adapters:Raises"))}
    incomplete = cli("run", "--model", "incomplete:x", "--tasks", "shapes_cls", "--output", "res", env=env)
    one_line_error(incomplete, "model adapter 'incomplete' (broken_adapters.Incomplete)", "TypeError", "text_features", "--debug")
    raises = cli("run", "--model", "raises:x", "--tasks", "shapes_cls", "--output", "res", env=env)
    one_line_error(raises, "model adapter 'raises' (broken_adapters.Raises)", "RuntimeError: weights folder is empty")

    debug = cli("--debug", "run", "--model", "raises:x", "--tasks", "shapes_cls", "--output", "res", env=env)
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "weights folder is empty" in debug.stderr
    # 'vlbench <command> ... --debug' works too
    from vlbench import cli as cli_module

    monkeypatch.setattr(sys, "argv", ["vlbench", "list", "suites", "--debug"])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    assert exit_info.value.code in (0, None)


def test_unexpected_errors_are_one_line_unless_debugging(cli, monkeypatch):
    from vlbench.spec import catalog

    def bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(catalog.Catalog, "load", bug)
    one_line_error(cli("list", "suites"), "internal error: ZeroDivisionError: division by zero", "--debug", code=1)
    debugging = cli("--debug", "list", "suites")
    assert debugging.returncode == 1 and "Traceback" in debugging.stderr


# -- 6 and 7: high-bit-depth and oversized images ---------------------------------------------------------
def test_16_bit_and_float_images_reach_the_model_scaled(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(PLUGINS)
    from color_adapter import ColorTransform

    from vlbench.datasets.images import FileImage, to_rgb

    levels = np.array([[0, 257, 32896], [65535, 12850, 51400]], dtype=np.uint16)  # 0, 1, 128, 255, 50, 200 in 8 bits
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode in ("I;16", "I")  # a real 16-bit PNG
    rgb = np.asarray(FileImage(str(path)).load())
    assert rgb.shape == (2, 3, 3) and rgb[..., 0].tolist() == [[0, 1, 128], [255, 50, 200]]
    assert (rgb[..., 0] == rgb[..., 2]).all()
    as_int = to_rgb(Image.fromarray(levels.astype(np.int32)))  # mode I
    assert np.asarray(as_int)[..., 1].tolist() == [[0, 1, 128], [255, 50, 200]]
    as_float = to_rgb(Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)))  # mode F, 0-1
    assert np.asarray(as_float)[..., 0].tolist() == [[0, 128, 255]]
    # what the model sees: the colour adapter's input is the mean colour, 128/255 for a mid-grey 16-bit image
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((8, 8), 32896, dtype=np.uint16)).save(grey)
    pixels = ColorTransform()(FileImage(str(grey)).load())
    assert pixels.tolist() == pytest.approx([128 / 255] * 3)


def bomb_png(path: Path, side: int = 100_000) -> None:
    """A 1x1 PNG whose header claims side x side pixels."""
    import io
    import struct

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8 + 8  # signature, then length and type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", side, side)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    path.write_bytes(bytes(data))


def test_decompression_bomb_is_one_line_naming_the_file_in_process_and_in_workers(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(PLUGINS)
    from color_adapter import ColorTransform

    from vlbench.datasets.images import FileImage
    from vlbench.encoding.encoder import Encoder

    bomb = tmp_path / "bomb.png"
    bomb_png(bomb)
    with pytest.raises(VLBenchError, match=rf"image {bomb} is too large.*VLBENCH_MAX_IMAGE_PIXELS") as info:
        FileImage(str(bomb)).load()
    assert "\n" not in str(info.value)

    class Model:
        image_transform = ColorTransform()
        transform_id = "color"

        def encode_images(self, pixels):
            return pixels

    small = tmp_path / "small.png"
    Image.new("RGB", (40, 40), "red").save(small)
    monkeypatch.setenv("VLBENCH_MAX_IMAGE_PIXELS", "100")  # the same guard, set low, seen by a worker process
    encoder = Encoder(Model(), batch_size=1, num_workers=1)
    with pytest.raises(VLBenchError) as info:
        encoder.images([FileImage(str(small)), FileImage(str(small))])
    assert str(info.value).startswith(f"image {small} is too large") and "\n" not in str(info.value)
    monkeypatch.setenv("VLBENCH_MAX_IMAGE_PIXELS", "0")  # no limit: deliberately allowed
    assert FileImage(str(small)).load().size == (40, 40)


# -- 8, 9, 12: task files and --set ---------------------------------------------------------------------------
@pytest.mark.parametrize("source, field", [("n: 0", "n"), ("n: -5", "n"), ("n: 4, size: 0", "size"), ("n: 4, size: 8", "size")])
def test_shapes_sources_that_make_no_scenes_are_refused(tmp_path, source, field):
    task = tmp_path / "t.yaml"
    task.write_text(f"task: t\nkind: classification\nversion: 1\ndataset: {{sources: [{{format: shapes, seed: 1, {source}}}]}}\n"
                    "metrics: [acc1]\nmain_metric: acc1\n")
    with pytest.raises(TaskSpecError, match=rf"{task}.*dataset.sources\[0\].{field}"):
        Catalog.load().load_task(task)


def test_a_task_with_no_items_writes_no_result(colors, monkeypatch):
    tmp_path, _ = colors
    from vlbench.kinds.classification import ClassificationKind

    monkeypatch.setattr(ClassificationKind, "predict", lambda self, model, data, spec, ctx: iter([]))
    with pytest.raises(VLBenchError, match="'colors_a' has no items"):
        runner(tmp_path).run("color:x", ["colors_a"])
    assert list((tmp_path / "res").rglob("*")) == [tmp_path / "res" / "color__x"]


def test_a_task_file_that_is_not_utf8_is_named_and_breaks_nothing_else(cli, tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "latin.yaml").write_bytes("task: latin\ndescription: caf\xe9\n".encode("latin-1"))
    suites = cli("list", "suites", "--tasks-dir", "tasks")
    assert suites.returncode == 0 and "shapes_cls" in suites.stdout
    listing = cli("list", "tasks", "--tasks-dir", "tasks")
    assert listing.returncode == 0 and "invalid" in listing.stdout
    one_line_error(cli("show", "latin", "--tasks-dir", "tasks"), str(tasks / "latin.yaml"), "not UTF-8")
    one_line_error(cli("run", "--model", TINY, "--tasks", "latin", "--tasks-dir", "tasks"), "latin.yaml", "save it as UTF-8")


def test_set_with_an_empty_value_or_an_unknown_key_is_refused(colors):
    tmp_path, _ = colors
    from vlbench.spec.taskfile import parse_override

    with pytest.raises(VLBenchError, match="--set dataset.path= has no value"):
        parse_override("dataset.path=")
    with pytest.raises(VLBenchError, match=r"--set dataset.pth: no selected task has that field \(did you mean: dataset.path"):
        runner(tmp_path, overrides={"dataset.pth": "x"}).run("color:x", ["colors_a"])
    with pytest.raises(VLBenchError, match=r"colors_a:files.tempaltes: task 'colors_a' has no field.*did you mean: files.templates"):
        runner(tmp_path, overrides={"colors_a:files.tempaltes": "x"}).run("color:x", ["colors_a"])
    # a key only some tasks have applies to those and is recorded only there
    catalog = Catalog.load(extra_task_dirs=[tmp_path / "tasks"])
    seg = catalog.load_task("shapes_seg", {"protocol.window": 64})
    cls = catalog.load_task("colors_a", {"protocol.window": 64})
    assert seg.protocol["window"] == 64 and seg.overrides == {"protocol.window": 64}
    assert "window" not in cls.protocol and cls.overrides == {}


# -- 17: weights not available offline --------------------------------------------------------------------
@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt is recorded and refused; the Hub counts as unreachable and offline mode is off."""
    import socket

    from huggingface_hub import constants

    from vlbench import hub_access

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_access, "hub_reachable", lambda: False)
    return attempts


def test_hf_weights_not_available_offline_fail_fast_and_quietly(no_network, capfd):
    from transformers import AutoConfig, AutoModel, AutoProcessor  # noqa: F401 - imported before the clock starts

    from vlbench.models import parse_model_spec
    from vlbench.models.hf import HFAdapter

    started = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        HFAdapter(parse_model_spec("hf:nobody/not-a-cached-model"))
    assert time.perf_counter() - started < 10
    message = str(info.value)
    assert "not in the local cache" in message and "cannot be reached" in message and "hf:/path/to/saved/model" in message and "HF_HUB_OFFLINE=1" in message
    assert no_network == []
    captured = capfd.readouterr()
    assert "Retrying" not in captured.err + captured.out and len((captured.err + captured.out).splitlines()) <= 2


def test_openclip_hub_tag_not_cached_offline_fails_fast(no_network, monkeypatch):
    """An open_clip pretrained tag whose weights are on the Hub: offline and not cached, one line at once."""
    import open_clip

    from vlbench.models import parse_model_spec
    from vlbench.models.openclip import OpenClipAdapter

    cfg = {"hf_hub": "nobody/tiny-weights/", "url": ""}
    monkeypatch.setattr(open_clip, "list_pretrained_tags_by_model", lambda arch: ["hubtag"])
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda arch, tag: cfg)
    import open_clip.factory

    monkeypatch.setattr(open_clip.factory, "get_pretrained_cfg", lambda arch, tag: cfg, raising=False)
    started = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"vlbench-tiny@hubtag: its weights are not in the local cache.*openclip:/path/to/checkpoint.pt\?arch=vlbench-tiny"):
        OpenClipAdapter(parse_model_spec("openclip:vlbench-tiny@hubtag"))
    assert time.perf_counter() - started < 10 and no_network == []


# -- adapters' life cycle ------------------------------------------------------------------------------------
def test_changing_an_adapter_recomputes_its_results(colors, monkeypatch):
    tmp_path, _ = colors
    module = tmp_path / "versioned_adapter.py"
    module.write_text("from color_adapter import ColorAdapter\n\nclass Versioned(ColorAdapter):\n    pass\n")
    monkeypatch.syspath_prepend(PLUGINS)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry_file(tmp_path, versioned="versioned_adapter:Versioned")

    def status():
        monkeypatch.delitem(sys.modules, "versioned_adapter", raising=False)
        return runner(tmp_path).run("versioned:x", ["colors_a"])[1][0].status

    assert status() == "done"
    assert status() == "skipped"
    module.write_text(module.read_text() + "    # a changed adapter\n")
    assert status() == "done"
    module.write_text(module.read_text() + "    adapter_version = '2'\n")
    assert status() == "done"
    saved = read_result(tmp_path / "res" / "versioned__x", "colors_a")
    assert saved["model"]["fingerprint"]["adapter_version"] == "2"
    module.write_text(module.read_text() + "    # a comment; the declared version decides\n")
    assert status() == "skipped"


def test_the_example_adapter_gives_the_builtin_adapters_numbers(cli, tmp_path):
    weights = REPO / "vlbench/models/weights/vlbench-tiny@shapes.safetensors"
    config = REPO / "vlbench/models/openclip_configs/vlbench-tiny.json"
    env = {"PYTHONPATH": str(REPO / "examples"), "VLBENCH_REGISTRY": str(registry_file(tmp_path, myclip="my_adapter:MyClipAdapter"))}
    args = ["--tasks", "shapes_cls", "--limit", "30", "--output", "res", "--num-workers", "0"]
    mine = cli("run", "--model", f"myclip:{weights}?arch=vlbench-tiny&config={config}", *args, env=env)
    assert mine.returncode == 0, mine.stderr
    builtin = cli("run", "--model", "openclip:vlbench-tiny@shapes", *args)
    assert builtin.returncode == 0, builtin.stderr
    mine_folder = next((tmp_path / "res").glob("myclip__*"))
    ours = read_result(mine_folder, "shapes_cls")
    theirs = read_result(tmp_path / "res" / "openclip__vlbench-tiny@shapes", "shapes_cls")
    assert ours["metrics"] == pytest.approx(theirs["metrics"]) and ours["task"]["dataset"]["n"] == 30
    assert ours["model"]["fingerprint"]["weights_sha256"] == theirs["model"]["fingerprint"]["weights_sha256"]
    assert ours["model"]["fingerprint"]["adapter_version"] == "1"
    with gzip.open(mine_folder / "shapes_cls" / ours["samples"], "rt") as f:
        assert len(f.read().splitlines()) == 30

    # what segmentation needs: the example's patch features are the built-in adapter's
    from my_adapter import MyClipAdapter

    from vlbench.kinds.segmentation import SegmentationKind
    from vlbench.models import parse_model_spec
    from vlbench.models.openclip import OpenClipAdapter

    example = MyClipAdapter(parse_model_spec(f"myclip:{weights}?arch=vlbench-tiny&config={config}"))
    reference = OpenClipAdapter(parse_model_spec("openclip:vlbench-tiny@shapes"))
    assert SegmentationKind().unsupported_reason(example) is None
    assert example.pixel_mean_std == reference.pixel_mean_std and example.patch_size == reference.patch_size == 8
    pixels = torch.randn(1, 3, 64, 96)
    assert torch.allclose(example.dense_features(pixels, "sclip"), reference.dense_features(pixels, "sclip"), atol=1e-5)


def test_loading_models_and_registries_leaves_process_state_alone(tmp_path, monkeypatch):
    import importlib

    from vlbench.models import MODEL_ADAPTERS, parse_model_spec
    from vlbench.models.openclip import OpenClipAdapter

    torch.manual_seed(1234)
    rng_before = torch.get_rng_state()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    OpenClipAdapter(parse_model_spec("openclip:vlbench-tiny@random?seed=7"))
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert root.level == level and root.handlers == handlers

    registry = registry_file(tmp_path, elsewhere="some_module:SomeAdapter")
    names = MODEL_ADAPTERS.names()
    catalog = Catalog.load(extra_registry_files=[registry])
    assert "elsewhere" in catalog.adapter_names() and catalog.resolve_model("elsewhere:x").adapter == "elsewhere"
    assert MODEL_ADAPTERS.names() == names and "elsewhere" not in MODEL_ADAPTERS
    with pytest.raises(VLBenchError, match="unknown model adapter 'elsewhere'"):
        Catalog.load().resolve_model("elsewhere:x")

    import vlbench.results.io

    def no_umask(mask):
        raise AssertionError("the umask was changed")

    monkeypatch.setattr(os, "umask", no_umask)
    importlib.reload(vlbench.results.io)  # importing the results module leaves the umask alone


def test_an_adapter_module_that_fails_to_import_is_one_line(cli, tmp_path):
    (tmp_path / "syntax_error_adapter.py").write_text("class Broken(:\n")
    env = {"PYTHONPATH": str(tmp_path), "VLBENCH_REGISTRY": str(registry_file(tmp_path, broken="syntax_error_adapter:Broken"))}
    one_line_error(cli("run", "--model", "broken:x", "--tasks", "shapes_cls", "--output", "res", env=env),
                   "module 'syntax_error_adapter' for 'syntax_error_adapter:Broken' failed to import: SyntaxError")
