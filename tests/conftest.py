import os
import sys
import tempfile
from pathlib import Path

import pytest

# Tests never reach the network: hub libraries are told to stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["WANDB_MODE"] = "offline"  # W&B runs are written locally, never synced
os.environ.setdefault("WANDB_SILENT", "true")
# ... and see an empty Hugging Face cache of their own, never the user's (hub models are pinned by it)
TEST_HF_HUB_CACHE = tempfile.mkdtemp(prefix="vlbench-test-hf-hub-")
os.environ["HF_HUB_CACHE"] = TEST_HF_HUB_CACHE

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

TINY = "openclip:vlbench-tiny@random"


def shared_data(*parts: str) -> Path:
    """A folder of real annotation files shared beside the project; skip the test if absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared annotation files not found at {path} (present in CI, not in a plain clone)")
    return path


@pytest.fixture(autouse=True, scope="session")
def private_hf_hub_cache():
    """The tests' own Hugging Face cache, also where huggingface_hub was imported before this file
    set the variable; removed at the end."""
    import shutil

    import huggingface_hub.constants

    previous = huggingface_hub.constants.HF_HUB_CACHE
    huggingface_hub.constants.HF_HUB_CACHE = TEST_HF_HUB_CACHE
    yield Path(TEST_HF_HUB_CACHE)
    huggingface_hub.constants.HF_HUB_CACHE = previous
    shutil.rmtree(TEST_HF_HUB_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def private_embedding_cache(tmp_path, monkeypatch):
    """Each test gets its own persistent embedding cache, never the user's."""
    monkeypatch.setenv("VLBENCH_CACHE", str(tmp_path / "embedding-cache"))


@pytest.fixture(scope="session")
def tiny_model():
    """A random-init tiny open_clip model behind the ordinary adapter (no download)."""
    from vlbench.spec.catalog import Catalog
    from vlbench.models.openclip import OpenClipAdapter

    return OpenClipAdapter(Catalog.load().resolve_model(TINY), device="cpu")


def invoke(args: list[str]):
    """The ``vlbench`` command in this process; an object with returncode, stdout and stderr."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from vlbench.cli import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False, terminal_width=200)
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


@pytest.fixture(scope="session")
def shapes_suite_run(tmp_path_factory):
    """One plain ``vlbench run`` (the defaults: vlbench-tiny on the shapes suite), done once per test run.

    Returns (results folder, the command's result). Tests read these results; none may change them.
    """
    folder = tmp_path_factory.mktemp("plain_run")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("VLBENCH_DATA_ROOT", str(folder / "data"))
        patch.setenv("VLBENCH_CACHE", str(folder / "embedding-cache"))
        result = invoke(["run"])
    assert result.returncode == 0, result.stderr
    return folder / "results", result


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run the ``vlbench`` command in this process (typer's CliRunner) from ``tmp_path``.

    Same interface as ``run_cli``: returns an object with returncode, stdout and stderr. ``env``
    entries are set for the call; a PYTHONPATH entry goes on sys.path instead.
    """
    def run(*args: str, env: dict | None = None, cwd: Path | None = None):
        monkeypatch.chdir(cwd or tmp_path)
        monkeypatch.setenv("VLBENCH_DATA_ROOT", str(tmp_path / "data"))
        for key, value in (env or {}).items():
            if key == "PYTHONPATH":
                for entry in reversed(value.split(os.pathsep)):
                    monkeypatch.syspath_prepend(entry)
            else:
                monkeypatch.setenv(key, value)
        return invoke(list(args))

    return run


@pytest.fixture
def run_cli(tmp_path):
    """Run ``python -m vlbench ...`` in a subprocess, as a user would; returns CompletedProcess."""
    import subprocess

    def run(*args: str, env: dict | None = None, cwd: Path | None = None):
        env = dict(env or {})
        if "PYTHONPATH" in env and os.environ.get("PYTHONPATH"):
            # keep the caller's path (vlbench may be importable only through it) after the test's own
            env["PYTHONPATH"] += os.pathsep + os.environ["PYTHONPATH"]
        full_env = {**os.environ, "VLBENCH_DATA_ROOT": str(tmp_path / "data"), "COLUMNS": "200", **env}
        return subprocess.run(
            [sys.executable, "-m", "vlbench", *args], capture_output=True, text=True, env=full_env, cwd=cwd or tmp_path, timeout=600
        )

    return run


def result_file(model_folder: Path, task: str) -> Path:
    """The one result of ``task`` in a model's results folder (``<slug>/<task>/<config hash>.json``)."""
    files = sorted((Path(model_folder) / task).glob("*.json"))
    assert len(files) == 1, f"expected one result of {task}, found {files}"
    return files[0]


def read_result(model_folder: Path, task: str) -> dict:
    import json

    return json.loads(result_file(model_folder, task).read_text())
