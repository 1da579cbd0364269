"""Named protocols: a paper's own settings for a family of tasks, kept as data and chosen with --protocol.

A protocol file ``_protocols/NAME.yaml`` sits in (or above) the folder of the task files it covers::

    named_protocol: NACLIP (paper)      # recorded as protocol.named_protocol
    kind: segmentation
    reference: where each value comes from (repository, file, commit)
    protocol: {dense_variant: naclip}   # for every covered task
    files: {}                           # likewise; paths relative to this file
    tasks:                              # the covered tasks and their own settings
      voc21: {protocol: {prob_threshold: 0.1}, files: {classnames: ../classes/x.txt}}

It is merged over the task's own file (includes resolved) and under ``--set`` overrides. Tasks it
does not list keep their protocol: a paper's settings are not guessed for datasets it did not use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlbench.errors import TaskSpecError, VLBenchError
from vlbench.spec.schema import option, parse, schema
from vlbench.spec.taskfile import deep_merge, read_yaml

FOLDER = "_protocols"


@schema
class TaskSettings:
    protocol: dict[str, Any] = option({}, help="protocol values for this task")
    files: dict[str, str] = option({}, help="files for this task, relative to the protocol file")


@schema
class ProtocolFile:
    named_protocol: str = option(help="the protocol's name as recorded in results")
    kind: str = option(help="the task kind it applies to")
    reference: str = option("", help="where the settings come from")
    protocol: dict[str, Any] = option({}, help="protocol values for every covered task")
    files: dict[str, str] = option({}, help="files for every covered task, relative to this file")
    tasks: dict[str, TaskSettings] = option(help="the covered tasks and their own settings")


def find(name: str, task_file: Path) -> Path | None:
    """``_protocols/<name>.yaml`` in the task file's folder or one of its two parents."""
    folder = Path(task_file).resolve().parent
    for candidate in (folder, folder.parent, folder.parent.parent):
        path = candidate / FOLDER / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def available(task_file: Path) -> list[str]:
    folder = Path(task_file).resolve().parent
    names = {p.stem for c in (folder, folder.parent, folder.parent.parent) for p in (c / FOLDER).glob("*.yaml")}
    return sorted(names)


def _resolved(files: dict[str, str], base: Path) -> dict[str, str]:
    return {k: str((base / v).resolve()) for k, v in files.items()}


def apply(name: str, task: str, kind: str, task_file: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """``config`` with protocol ``name`` merged in, or None when it does not cover this task."""
    path = find(name, task_file)
    if path is None:
        return None
    parsed = parse(ProtocolFile, read_yaml(path), path, what="a protocol file")
    own = parsed.tasks.get(task)
    if parsed.kind != kind or own is None:
        return None
    layer = {"protocol": {**parsed.protocol, **own.protocol, "named_protocol": parsed.named_protocol},
             "files": {**_resolved(parsed.files, path.parent), **_resolved(own.files, path.parent)}}
    for key, value in layer["files"].items():
        if not Path(value).is_file():
            raise TaskSpecError(path, f"files.{key}", f"file not found: {value}")
    return deep_merge(config, layer)


def check_used(name: str | None, applied: dict[str, bool], task_files: dict[str, Path]) -> None:
    """--protocol NAME must cover at least one selected task; say which exist otherwise."""
    if name is None or any(applied.values()):
        return
    known = sorted({n for path in task_files.values() for n in available(path)})
    raise VLBenchError(f"--protocol {name} covers none of the selected tasks; protocols beside them: {', '.join(known) or 'none'} "
                       "(see the table of named protocols in docs/metrics.md)")
