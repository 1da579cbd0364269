"""Writing result files atomically: JSON, gzip JSONL per-sample records, environment capture.

The schema and the layout of result files live in ``vlbench.results.schema``.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import platform
import secrets
import subprocess
import uuid
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import vlbench
from vlbench.errors import VLBenchError
from vlbench.models.base import package_version
from vlbench.paths import PACKAGE_DIR

TEMP_SUFFIX = ".tmp"


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def temporary_name(path: Path) -> Path:
    """``.<name>.<pid>-<random>.tmp`` beside ``path``: the pid lets a later run tell a dead run's leftovers."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _temporary_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        name = temporary_name(path)
        try:
            # mode 0666 filtered by the umask, as open() gives: results are as readable as other files
            handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(handle)
        return name


def _sync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _sync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _publish(tmp: Path, path: Path) -> None:
    """fsync the finished temporary file, rename it into place, fsync the folder."""
    _sync(tmp)
    os.replace(tmp, path)
    _sync_folder(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    tmp = _temporary_beside(path)
    try:
        tmp.write_bytes(data)
        _publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """NaN and infinities become null, so the files are strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(json_safe(payload), indent=2, ensure_ascii=False, default=str, allow_nan=False) + "\n")


class SampleWriter:
    """Streams records to a temporary gzip JSONL file; ``commit`` moves it into place."""

    def __init__(self, path: Path):
        self.path = path
        self._tmp = _temporary_beside(path)
        self._file = gzip.open(self._tmp, "wt", encoding="utf-8")
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(json_safe(record), ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n")
        self.count += 1

    def commit(self) -> None:
        try:
            self._file.close()
            _publish(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)  # only still there when publishing failed

    def discard(self) -> None:
        try:
            self._file.close()  # may fail again (a full disk): the temporary file goes regardless
        except OSError:
            pass
        finally:
            self._tmp.unlink(missing_ok=True)


def write_json_gz(path: Path, payload: Any) -> str:
    """Atomically write gzip JSON; returns its sha256."""
    import hashlib

    data = gzip.compress(json.dumps(json_safe(payload), ensure_ascii=False).encode("utf-8"), mtime=0)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_samples(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a per-sample file; a damaged file (not gzip, truncated, a line that is not a JSON
    object) is a one-line VLBenchError naming the file and the line."""
    number = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise VLBenchError(f"per-sample file {path}, line {number}: not JSON ({exc})") from None
                if not isinstance(record, dict):
                    raise VLBenchError(f"per-sample file {path}, line {number}: a {type(record).__name__}, not a record")
                yield record
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        where = f" after line {number}" if number else ""
        raise VLBenchError(f"cannot read per-sample file {path}{where}: {exc or type(exc).__name__} (damaged or truncated; rerun the task)") from None


def git_sha() -> str | None:
    """The commit of the vlbench source tree, when it runs from a git checkout."""
    if not (PACKAGE_DIR.parent / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR.parent, capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_DIR.parent, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(**run_settings: Any) -> dict[str, Any]:
    """What produced a result besides the model and the task."""
    import torch

    device = str(run_settings.get("device", "cpu"))
    device_name = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else platform.processor() or platform.machine()
    return {
        "vlbench": vlbench.__version__,
        "git_sha": git_sha(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "open_clip": package_version("open_clip_torch"),
        "transformers": package_version("transformers"),
        "device_name": device_name,
        "torch_threads": torch.get_num_threads(),
        **run_settings,
    }


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
