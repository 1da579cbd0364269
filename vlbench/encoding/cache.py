"""A persistent, content-addressed store of embeddings shared by runs and processes.

An entry's key is a digest of what determines the embedding: the model (its fingerprint, with the
weights hash, plus precision and device type), the input's transform and the input's identity (a
file's path with size and mtime, a tar member with its shard's size, mtime and offset, a Hugging
Face dataset fingerprint and row, a generated scene's recipe, a text itself). Values are the exact
float32 bytes the model produced, so reading an entry gives the same numbers as computing it.

Layout: ``<root>/v1/<namespace>/`` per model, with ``meta.json`` (which model) and, for every
process that wrote to it, a pair of append-only files that only that process writes:
``<writer>.dat`` (raw float32 payloads) and ``<writer>.idx`` (fixed-size records: key, offset,
length, payload checksum, record checksum). A payload is written and flushed before its index
record, so a process killed at any moment leaves at worst a torn last record, which fails its
checksum and is ignored. Readers verify every payload's checksum; a damaged one is recomputed and
a one-line warning says so. No locks: writers never share a file, which also holds on network
file systems where SQLite's locking does not (a Slurm array on many nodes can share one cache).
``<root>/v1/model-records/<pin>.json`` keeps, per model, what a run needs to know of it without
loading it (``vlbench.models.deferred``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

CACHE_ENV = "VLBENCH_CACHE"
LAYOUT = "v1"
RECORDS = "model-records"  # beside the namespaces: what loading each model told (vlbench.models.deferred)
KEY_BYTES = 16
# key, offset in .dat, payload length, crc32(key + payload), crc32 of the fields before it
_RECORD = struct.Struct("<16sQIII")
_RECORD_BODY = struct.Struct("<16sQII")
# fingerprint fields that do not change an embedding's value (text padding is part of text keys)
_NOT_IN_NAMESPACE = ("source_stamp", "text_padding")


def default_cache_dir() -> Path:
    """``$VLBENCH_CACHE``, else ``$XDG_CACHE_HOME/vlbench/embeddings`` (``~/.cache/...``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "vlbench" / "embeddings"


def key_digest(identity: str) -> bytes:
    return hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).digest()


def transform_identity(transform_repr: str) -> str:
    """A transform's repr without memory addresses (which change from run to run)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", transform_repr)


def image_identity(ref: Any, transform_id: str) -> str | None:
    """Identity of one transformed image, or None when the ref cannot say what it is."""
    identity = getattr(ref, "cache_id", None)
    return None if identity is None else f"image|{transform_id}|{identity}"


def text_identity(text: str, padding: str) -> str:
    return f"text|{padding}|{text}"


def namespace_id(fingerprint: Mapping[str, Any], device_type: str) -> str:
    fields = {k: v for k, v in fingerprint.items() if k not in _NOT_IN_NAMESPACE}
    fields["device_type"] = device_type
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:32]


def valid_records(data: bytes) -> Iterable[tuple[bytes, int, int, int]]:
    """(key, offset, length, payload crc) of every index record whose own checksum holds; a torn record
    (a writer killed mid-write) or damage is skipped."""
    for start in range(0, len(data) - _RECORD.size + 1, _RECORD.size):
        key, offset, length, crc, record_crc = _RECORD.unpack_from(data, start)
        if zlib.crc32(data[start : start + _RECORD_BODY.size]) == record_crc:
            yield key, offset, length, crc


def valid_keys(data: bytes) -> set[bytes]:
    return {key for key, *_ in valid_records(data)}


def write_json_atomically(path: Path, payload: Any, **dump: Any) -> None:
    """Write JSON through a temporary file and a rename: a reader sees the old content or the new, never half."""
    temporary = path.parent / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    temporary.write_text(json.dumps(payload, **dump))
    os.replace(temporary, path)


def folder_entries(folder: Path) -> tuple[int, int]:
    """(distinct keys in the valid index records, bytes on disk) of one namespace folder; only the store's own
    files count (a stray folder is left alone)."""
    keys: set[bytes] = set()
    size = 0
    for file in folder.iterdir():
        if not file.is_file():
            continue
        size += file.stat().st_size
        if file.suffix == ".idx":
            keys.update(valid_keys(file.read_bytes()))
    return len(keys), size


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


@dataclass
class _Location:
    data_file: Path
    offset: int
    length: int
    crc: int


@dataclass
class CacheNamespace:
    """The entries of one model (fingerprint, precision, device type): lookup and append."""

    path: Path
    warn: Callable[[str], None] = _warn
    what: str = "embedding"  # in its warnings: "embedding" or "pixel"
    _index: dict[bytes, list[_Location]] | None = None
    _handles: dict[Path, Any] = field(default_factory=dict)
    _writer: tuple[Any, Any] | None = None
    _written: int = 0
    _write_failed: bool = False

    # -- reading --------------------------------------------------------------------------------
    def _load_index(self) -> dict[bytes, list[_Location]]:
        index: dict[bytes, list[_Location]] = {}
        for idx_file in sorted(self.path.glob("*.idx")):
            try:
                data = idx_file.read_bytes()
            except OSError:
                continue
            data_file = idx_file.with_suffix(".dat")
            for key, offset, length, crc in valid_records(data):
                index.setdefault(key, []).append(_Location(data_file, offset, length, crc))
        return index

    def _read(self, key: bytes, location: _Location) -> bytes | None:
        handle = self._handles.get(location.data_file)
        try:
            if handle is None:
                handle = self._handles[location.data_file] = open(location.data_file, "rb")
            handle.seek(location.offset)
            payload = handle.read(location.length)
        except OSError:
            return None
        if len(payload) != location.length or zlib.crc32(key + payload) != location.crc:
            return None
        return payload

    def present(self, keys: Sequence[bytes]) -> list[int]:
        """Positions in ``keys`` that have an index entry (nothing is read: an entry may still prove damaged)."""
        if self._index is None:
            self._index = self._load_index()
        return [position for position, key in enumerate(keys) if key in self._index]

    def get_payload(self, key: bytes) -> tuple[bytes | None, int]:
        """(payload of the first valid entry for ``key`` or None, damaged entries met and dropped)."""
        if self._index is None:
            self._index = self._load_index()
        candidates = self._index.get(key)
        damaged = 0
        while candidates:
            payload = self._read(key, candidates[0])
            if payload is not None:
                return payload, damaged
            candidates.pop(0)
            damaged += 1
        if candidates == []:
            del self._index[key]
        return None, damaged

    def warn_damaged(self, damaged: int) -> None:
        if damaged:
            self.warn(f"{damaged} damaged {self.what} cache entr{'y' if damaged == 1 else 'ies'} in {self.path} ignored; recomputing")

    def get_payloads(self, keys: Sequence[bytes]) -> dict[int, bytes]:
        """{position in keys: payload} for the keys with a valid entry; damaged ones are dropped (one warning)."""
        found: dict[int, bytes] = {}
        damaged = 0
        for position, key in enumerate(keys):
            payload, bad = self.get_payload(key)
            damaged += bad
            if payload is not None:
                found[position] = payload
        self.warn_damaged(damaged)
        return found

    def get_many(self, keys: Sequence[bytes]) -> dict[int, torch.Tensor]:
        """{position in keys: embedding} for the keys with a valid entry; damaged ones are dropped."""
        return {position: torch.from_numpy(np.frombuffer(payload, dtype="<f4").astype(np.float32))
                for position, payload in self.get_payloads(keys).items()}

    # -- writing --------------------------------------------------------------------------------
    def _open_writer(self) -> tuple[Any, Any]:
        if self._writer is None:
            self.path.mkdir(parents=True, exist_ok=True)
            name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
            self._writer = (open(self.path / f"{name}.dat", "ab"), open(self.path / f"{name}.idx", "ab"))
            self._written = 0
        return self._writer

    def put_many(self, keys: Sequence[bytes], embeddings: torch.Tensor) -> None:
        """Append embeddings: payloads first (flushed), then their index records."""
        rows = embeddings.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False)
        self.put_payloads(keys, [row.tobytes() for row in rows])

    def put_payloads(self, keys: Sequence[bytes], payloads: Sequence[bytes]) -> None:
        """Append entries (raw payloads): payloads first (flushed), then their index records."""
        if self._write_failed:
            return
        try:
            self._append(keys, payloads)
        except OSError as exc:  # a full disk or a read-only cache must not stop the evaluation
            self._write_failed = True
            self.warn(f"{self.what} cache {self.path} not written to ({exc.strerror or exc}); the run goes on without storing")

    def _append(self, keys: Sequence[bytes], payloads: Sequence[bytes]) -> None:
        data_handle, index_handle = self._open_writer()
        records = []
        offset = self._written
        for key, payload in zip(keys, payloads):
            body = _RECORD_BODY.pack(key, offset, len(payload), zlib.crc32(key + payload))
            records.append(body + struct.pack("<I", zlib.crc32(body)))
            offset += len(payload)
        data_handle.write(b"".join(payloads))
        data_handle.flush()
        index_handle.write(b"".join(records))
        index_handle.flush()
        self._written = offset
        if self._index is not None:
            location_file = Path(data_handle.name)
            start = offset - sum(len(p) for p in payloads)
            for key, payload in zip(keys, payloads):
                self._index.setdefault(key, []).append(_Location(location_file, start, len(payload), zlib.crc32(key + payload)))
                start += len(payload)

    def close(self) -> None:
        """Close every file; a failure (a full disk flushing the last entries) is a warning: the run's
        results are written already, and an entry cut short fails its checksum and is never trusted.
        The data files read from are marked used now (their mtime: the pixel cache evicts the oldest)."""
        for data_file in self._handles:
            with contextlib.suppress(OSError):
                os.utime(data_file)
        handles = [*self._handles.values(), *(self._writer or ())]
        self._handles.clear()
        self._writer = None
        failed = None
        for handle in handles:
            try:
                handle.close()
            except OSError as exc:
                failed = exc
        if failed is not None:
            self.warn(f"embedding cache {self.path}: the last entries may not be stored ({failed.strerror or failed}); results are not affected")


class EmbeddingStore:
    """The cache folder: one namespace per model; ``info`` and ``clear`` for the CLI."""

    def __init__(self, root: Path, warn: Callable[[str], None] = _warn):
        self.root = Path(root).expanduser()
        self.warn = warn

    @property
    def base(self) -> Path:
        return self.root / LAYOUT

    def namespace(self, fingerprint: Mapping[str, Any], device_type: str) -> CacheNamespace:
        """The namespace of one loaded model; records which model it is in meta.json."""
        path = self.base / namespace_id(fingerprint, device_type)
        meta = path / "meta.json"
        if not meta.is_file():
            path.mkdir(parents=True, exist_ok=True)
            info = {
                "model": fingerprint.get("id"),
                "precision": fingerprint.get("precision"),
                "device_type": device_type,
                "weights_sha256": fingerprint.get("weights_sha256"),
            }
            write_json_atomically(meta, info, indent=1)  # concurrent writers write the same content
        return CacheNamespace(path, warn=self.warn)

    def model_record(self, pin: str) -> dict[str, Any] | None:
        """What an earlier run learnt about a model by loading it (see vlbench.models.deferred), or None."""
        try:
            record = json.loads((self.base / RECORDS / f"{pin}.json").read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def write_model_record(self, pin: str, record: Mapping[str, Any]) -> None:
        folder = self.base / RECORDS
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomically(folder / f"{pin}.json", record, indent=1, sort_keys=True)

    def forget_model_record(self, pin: str) -> None:
        (self.base / RECORDS / f"{pin}.json").unlink(missing_ok=True)

    def namespaces(self) -> list[tuple[Path, dict[str, Any]]]:
        found = []
        for meta in sorted(self.base.glob("*/meta.json")):
            try:
                info = json.loads(meta.read_text())
            except (OSError, ValueError):
                info = {}
            found.append((meta.parent, info if isinstance(info, dict) else {}))
        return found

    def info(self) -> list[dict[str, Any]]:
        """Per namespace: model, precision, device type, entries (distinct keys), bytes on disk."""
        rows = []
        for path, meta in self.namespaces():
            entries, size = folder_entries(path)
            rows.append({"namespace": path.name, **meta, "entries": entries, "bytes": size})
        return rows

    def clear(self, models: Iterable[str] | None = None) -> int:
        """Remove every namespace (or those of the given model ids); returns how many were removed."""
        wanted = None if models is None else set(models)
        removed = 0
        for path, meta in self.namespaces():
            if wanted is None or meta.get("model") in wanted:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        for record in sorted((self.base / RECORDS).glob("*.json")):
            fingerprint = (self.model_record(record.stem) or {}).get("fingerprint")
            if wanted is None or not isinstance(fingerprint, dict) or fingerprint.get("id") in wanted:
                record.unlink(missing_ok=True)  # a damaged record names no model: it goes too
        if wanted is None and self.base.is_dir():
            shutil.rmtree(self.base, ignore_errors=True)
        return removed
