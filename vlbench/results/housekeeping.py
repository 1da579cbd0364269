"""The results folder before and during a run: is it writable, what did killed runs leave behind.

Only vlbench's own files are touched, recognised by name: temporary files ``.<name>.<pid>-<random>.tmp``
whose process no longer runs on this machine, and per-sample files (``*.samples.jsonl.gz``) that no
result JSON in the same folder names and that are older than ``ORPHAN_AGE_S`` (a concurrent run
publishes its samples file a moment before its result JSON).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import time
from pathlib import Path
from typing import Iterator

from vlbench.errors import VLBenchError
from vlbench.results.schema import SAMPLES_SUFFIX, inside
from vlbench.results.io import TEMP_SUFFIX, temporary_name

TEMP_NAME = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")
ORPHAN_AGE_S = 10 * 60


class OutputError(VLBenchError):
    """The results folder cannot be written."""


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def output_error(folder: Path, exc: OSError, option: str = "--output", what: str = "results") -> OutputError:
    """One line for a failed write: what failed and what the user can do (``option`` names the folder's option)."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        advice = f"free some space or choose another {option}; earlier results are kept"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = f"choose a writable {option} or fix the folder's permissions"
    else:
        advice = f"choose another {option}"
    return OutputError(f"cannot write {what} to {folder}: {_reason(exc)}; {advice}")


@contextlib.contextmanager
def writing(folder: Path, option: str = "--output", what: str = "results") -> Iterator[None]:
    """Turn an OSError while writing ``what`` into ``folder`` into a one-line OutputError."""
    try:
        yield
    except OSError as exc:
        raise output_error(folder, exc, option, what) from exc


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove a file can be written there (before a model is loaded)."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"cannot write results to {folder}: {parent} is a file, not a folder; choose another --output")
            break
    probe = temporary_name(folder / "write-check")
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.close(handle)
        os.unlink(probe)


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def _referenced_samples(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.glob("*.json"):
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(payload, dict) and isinstance(payload.get("samples"), str):
            names.add(payload["samples"])
    return names


def clean_stale(model_folder: Path, now: float | None = None) -> list[Path]:
    """Remove what killed runs left in a model's results folder (and its subfolders); returns the paths removed."""
    if not model_folder.is_dir():
        return []
    now = time.time() if now is None else now
    removed: list[Path] = []
    for folder in (model_folder, *(p for p in model_folder.rglob("*") if p.is_dir())):
        referenced: set[str] | None = None
        for path in folder.iterdir():
            if not path.is_file():
                continue
            match = TEMP_NAME.match(path.name)
            stale = False
            if match:
                stale = _process_gone(int(match.group(1)))
            elif path.name.endswith(SAMPLES_SUFFIX):
                if referenced is None:
                    referenced = _referenced_samples(folder)
                stale = path.name not in referenced and now - path.stat().st_mtime > ORPHAN_AGE_S
            if stale:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


def discard_result(path: Path) -> None:
    """Remove one result file with the samples and artifacts it names."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        payload = {}
    named = [payload.get("samples")] + [entry.get("file") for entry in (payload.get("artifacts") or {}).values() if isinstance(entry, dict)]
    for name in named:
        target = inside(path.parent, name) if isinstance(name, str) and name else None
        if target is not None:
            target.unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the task's folder, if nothing else is left in it
