"""Where vlbench finds its built-in task files and registry, and the user's data and results."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_ROOT_ENV = "VLBENCH_DATA_ROOT"
RESULTS_ENV = "VLBENCH_RESULTS"
TASKS_PATH_ENV = "VLBENCH_TASKS_PATH"
REGISTRY_PATH_ENV = "VLBENCH_REGISTRY"


def builtin_root() -> Path:
    """The folder holding ``tasks/`` and ``registry.yaml``.

    A wheel carries them in ``vlbench/_builtin``; a source checkout has them at its top level.
    """
    packaged = PACKAGE_DIR / "_builtin"
    if (packaged / "registry.yaml").is_file():
        return packaged
    return PACKAGE_DIR.parent


def builtin_tasks_dir() -> Path:
    return builtin_root() / "tasks"


def builtin_registry_file() -> Path:
    return builtin_root() / "registry.yaml"


def _env_paths(variable: str) -> list[Path]:
    value = os.environ.get(variable, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def extra_tasks_dirs() -> list[Path]:
    """User task folders from $VLBENCH_TASKS_PATH (os.pathsep-separated)."""
    return _env_paths(TASKS_PATH_ENV)


def extra_registry_files() -> list[Path]:
    """User registry files from $VLBENCH_REGISTRY, merged over the built-in one."""
    return _env_paths(REGISTRY_PATH_ENV)


def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV, "~/vlbench_data")).expanduser()


def default_results_dir() -> Path:
    return Path(os.environ.get(RESULTS_ENV, "results"))
