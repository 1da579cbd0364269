"""What identifies a file between runs: one stamp that sees a replaced or rewritten file, and a
content digest where reading the file is cheap.

A *stamp* is a file's real path, size, inode, modification time and change time. The change time
(ctime) is set by the kernel on every write, rename and metadata change, and ``os.utime`` cannot set
it back, so a file overwritten with other bytes of the same size and its old mtime restored gets a
new stamp. Every cache key and identity that stands for a file on disk uses this stamp: image keys
of the embedding cache, local model weights (result reuse and the deferred-model pin) and a task's
data files.

What a stamp cannot see: a rewrite on a file system that keeps no change times (some FUSE and
network mounts report ctime equal to mtime, or 0) when the size and mtime were restored too. What
it sees although nothing changed: a copy (new inode and ctime) or a ``chmod``; embeddings and
results are then recomputed, never reused wrongly.

A task's *inputs* (annotation, records, split and label files; the folders whose listing decides
which items there are) are identified by content where that is cheap -- the sha256 of files up to
``CONTENT_HASH_MAX_BYTES`` -- and by stamps otherwise (large tar shards, image folders), so that a
dataset copied elsewhere keeps its results where its annotation files are small.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

CONTENT_HASH_MAX_BYTES = 256 * 1024 * 1024
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm"})
#: Files inside a folder tree that hold data in bulk (image shards, Arrow tables): stamped, never read.
BULK_SUFFIXES = frozenset({".tar", ".arrow", ".zip", ".tgz", ".gz"})
_content_memo: dict[str, str] = {}  # stamp -> sha256, for files hashed earlier in this process


def stat_fields(stat: os.stat_result) -> tuple[int, int, int, int]:
    return stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns


def file_stamp(path: str | Path) -> str | None:
    """``realpath|size|inode|mtime|ctime`` of a file, or None when it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return "|".join(map(str, (os.path.realpath(path), *stat_fields(stat))))


def files_stamp(path: Path) -> str:
    """A digest of the stamps of a file, or of every file under a folder (sorted)."""
    path = Path(path).expanduser()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update("|".join(map(str, (file.resolve(), *stat_fields(file.stat())))).encode() + b"\n")
    return digest.hexdigest()[:32]


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_id(path: Path, bulk: bool = False) -> str:
    """``sha256:<hex>`` of a file up to CONTENT_HASH_MAX_BYTES (memoised by its stamp), else (and for
    ``bulk`` files) ``stamp:<digest>``."""
    stamp = file_stamp(path)
    if stamp is None:
        return "missing"
    if bulk or os.stat(path).st_size > CONTENT_HASH_MAX_BYTES:
        return "stamp:" + hashlib.sha256(stamp.encode()).hexdigest()[:32]
    if stamp not in _content_memo:
        _content_memo[stamp] = sha256_file(path)
    return "sha256:" + _content_memo[stamp]


def tree_id(root: Path, label_folder: bool = False) -> tuple[str, int, int]:
    """(digest, folders, files) of a folder tree: the stamp of every folder (which changes when an entry
    is added, removed or renamed in it), the content id of every file that is not an image (annotation,
    split and metadata files) and, with ``label_folder``, the stamp of every file (label images decide
    the ground truth). Image files count through their folder's stamp: their names, not their pixels
    (the embedding cache keys those); bulk files (tar shards, Arrow tables) by their stamps."""
    digest = hashlib.sha256()
    folders = files = 0
    stack = [Path(root)]
    while stack:
        folder = stack.pop()
        stamp = file_stamp(folder)
        digest.update(f"D {folder.relative_to(root)}|{stamp and stamp.split('|', 1)[1]}\n".encode())
        folders += 1
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir():
                stack.append(Path(entry.path))
                continue
            files += 1
            if label_folder:
                digest.update(f"F {entry.name}|{file_stamp(entry.path)}\n".encode())
            elif (suffix := Path(entry.name).suffix.lower()) not in IMAGE_SUFFIXES:
                identity = content_id(Path(entry.path), bulk=suffix in BULK_SUFFIXES)
                digest.update(f"F {Path(entry.path).relative_to(root)}|{identity}\n".encode())
    return digest.hexdigest()[:32], folders, files


@dataclass(frozen=True)
class Input:
    """One thing a task reads that decides its items or their labels: a file, or a folder tree."""

    path: Path
    label_folder: bool = False  # every file's stamp counts (segmentation labels), not only the listing


@dataclass(frozen=True)
class Generated:
    """Data a task makes with code instead of reading files, identified by its generator's declared version.

    The version, not the code's text, so that moving or tidying the code keeps results and cached
    embeddings; a change to what it makes bumps the version (a test pins each generator's output)."""

    name: str
    version: str


def describe_inputs(inputs: Iterable[Input | Generated | Path | str]) -> dict[str, object]:
    """``{"digest": ..., "files": {path: id}}`` of a task's inputs; the digest is what result reuse compares."""
    listed: dict[str, object] = {}
    for item in inputs:
        if isinstance(item, Generated):
            listed[f"generated:{item.name}"] = f"version:{item.version}"
            continue
        item = item if isinstance(item, Input) else Input(Path(item))
        path = Path(item.path)
        if path.is_dir():
            digest, folders, files = tree_id(path, item.label_folder)
            listed[str(path)] = {"tree": digest, "folders": folders, "files": files}
        else:
            listed[str(path)] = content_id(path)
    combined = hashlib.sha256(repr(sorted((Path(p).name, str(v)) for p, v in listed.items())).encode()).hexdigest()[:16]
    return {"digest": combined, "files": listed}
