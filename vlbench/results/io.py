"""Writing result files atomically (JSON, gzip JSON artifacts) and per-sample records (gzip JSONL).

The schema and the layout of result files live in ``vlbench.results.schema``.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import secrets
import uuid
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from vlbench.errors import VLBenchError

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


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
