"""Reading a table of records from a file: its formats, a field's value by a dotted name, and filters.

``records`` (beside this module) maps the records onto a selection task's roles; this module only
knows files and fields. Formats: ``.json`` (a list of records, or a mapping id -> record),
``.jsonl``, ``.csv`` and ``.parquet``; ``.json`` / ``.jsonl`` / ``.csv`` may be gzipped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

from vlbench.errors import VLBenchError


# -- reading files -----------------------------------------------------------------------------
def _open_text(path: Path) -> io.TextIOBase:
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8", newline="")  # type: ignore[return-value]


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    return suffixes[-2] if suffixes and suffixes[-1] == ".gz" and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")


def _json(path: Path) -> Iterator[tuple[str, Any]]:
    with _open_text(path) as f:
        data = json.load(f)
    if isinstance(data, dict):
        yield from ((str(k), v) for k, v in data.items())
    elif isinstance(data, list):
        yield from ((str(i), v) for i, v in enumerate(data))
    else:
        raise VLBenchError(f"{path}: expected a JSON list of records or a mapping id -> record, got {type(data).__name__}")


def _jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    with _open_text(path) as f:
        index = 0
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield str(index), json.loads(line)
                except ValueError as exc:
                    raise VLBenchError(f"{path}, line {number}: not valid JSON ({exc})") from exc
                index += 1


def _csv(path: Path) -> Iterator[tuple[str, Any]]:
    with _open_text(path) as f:
        for i, row in enumerate(csv.DictReader(f)):
            yield str(i), row


def _parquet(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise VLBenchError(f"reading {path} needs pyarrow (pip install pyarrow)") from exc
    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield str(index), row
            index += 1


TABLE_READERS: dict[str, Callable[[Path], Iterator[tuple[str, Any]]]] = {".json": _json, ".jsonl": _jsonl, ".jsonlines": _jsonl, ".csv": _csv,
                                                                      ".parquet": _parquet}


def _csv_columns(path: Path, columns: list[str]) -> Iterator[tuple[str, Any]]:
    """A CSV's rows named by ``columns`` in order, its header row skipped (for files whose header names are not what
    their official reader goes by: it unpacks each row positionally)."""
    with _open_text(path) as f:
        rows = csv.reader(f)
        next(rows, None)
        for i, row in enumerate(rows):
            if not row:
                continue
            if len(row) != len(columns):
                raise VLBenchError(f"{path}, row {i + 2}: {len(row)} values, but columns names {len(columns)} ({', '.join(columns)})")
            yield str(i), dict(zip(columns, row))


def grouped(records: Iterator[tuple[str, Any]], size: int, path: Path) -> Iterator[tuple[str, Any]]:
    """Every ``size`` consecutive records as one: {"rows": [record, ...]}, keyed by the first one's id."""
    group: list[tuple[str, Any]] = []
    for key, record in records:
        group.append((key, record))
        if len(group) == size:
            yield group[0][0], {"rows": [r for _, r in group]}
            group = []
    if group:
        raise VLBenchError(f"{path}: its records do not split into groups of {size} (rows_per_item): {len(group)} left over at the end")


def iter_records(path: Path, columns: list[str] | None = None, rows_per_item: int = 1) -> Iterator[tuple[str, Any]]:
    """(default id, record) pairs of a records file, in file order (``columns``: a CSV's columns named positionally;
    ``rows_per_item``: consecutive records joined, see ``grouped``)."""
    reader = TABLE_READERS.get(_suffix(path))
    if reader is None:
        raise VLBenchError(f"{path}: unknown records file type; use one of {', '.join(TABLE_READERS)} (optionally .gz)")
    if columns:
        if reader is not _csv:
            raise VLBenchError(f"{path}: columns names the columns of a .csv file; this file is not one")
        reader = lambda file: _csv_columns(file, columns)  # noqa: E731
    try:
        records = reader(path)
        for key, record in (grouped(records, rows_per_item, path) if rows_per_item > 1 else records):
            if isinstance(record, list):  # a positional record ([image, {...}]): fields "0", "1", "1.POS", ...
                record = {str(i): value for i, value in enumerate(record)}
            if not isinstance(record, dict):
                raise VLBenchError(f"{path}: record {key} is a {type(record).__name__}, not a mapping of fields")
            yield key, record
    except (OSError, ValueError, UnicodeDecodeError, EOFError, zlib.error) as exc:  # gzip damage: OSError, EOFError or zlib.error
        raise VLBenchError(f"cannot read {path}: {exc or type(exc).__name__}") from exc


MISSING = object()


def lookup(record: dict[str, Any], name: str) -> Any:
    """A field's value; 'a.b' reads record['a']['b'] ('a.0' a list's first item) unless 'a.b' is itself a field. MISSING if absent."""
    if name in record:
        return record[name]
    value: Any = record
    for part in name.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


def field_names(record: dict[str, Any]) -> list[str]:
    """The record's fields, nested ones dotted (for 'fields that exist' in error messages)."""
    out = []
    for key, value in record.items():
        out.append(str(key))
        if isinstance(value, dict) and len(value) <= 20:
            out += [f"{key}.{sub}" for sub in value]
    return out


# -- filters -------------------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _same(value: Any, wanted: Any) -> bool:
    """Equality that also matches CSV strings against numbers ('2' == 2)."""
    if value == wanted:
        return True
    a, b = _number(value), _number(wanted)
    return isinstance(value, str) and a is not None and a == b


def keep(record: dict[str, Any], condition: dict[str, Any], where: str) -> bool:
    """Whether one record meets one filter condition."""
    value = lookup(record, condition["field"])
    if value is MISSING:
        raise VLBenchError(f"{where}: a record has no field '{condition['field']}' (used by a filter)")
    for test in ("at_least", "at_most"):
        if test in condition:
            number = _number(value)
            if number is None:
                raise VLBenchError(f"{where}: filter on '{condition['field']}' needs numbers, got {value!r}")
            if (number < condition[test]) if test == "at_least" else (number > condition[test]):
                return False
    if "equals" in condition and not _same(value, condition["equals"]):
        return False
    if "one_of" in condition and not any(_same(value, v) for v in condition["one_of"]):
        return False
    if "truthy" in condition and bool(value) != condition["truthy"]:
        return False
    return True
