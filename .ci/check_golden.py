#!/usr/bin/env python3
"""Compare a leaderboard's numbers with the committed golden file; exit 1 with a diff when one moved.

    python .ci/check_golden.py RESULTS_DIR LONG_CSV GOLDEN_CSV [--update]

LONG_CSV is the long-format leaderboard (``vlbench leaderboard RESULTS --out x.csv`` writes x.long.csv).
The golden file holds one row per (model, task, task version, metric): every metric without a '/'
(breakdowns left out) and every suite, as fractions with 4 decimals; values match when they differ
by at most TOLERANCE, so that float noise across platforms does not flip the check. A task whose
version changed is reported as such. --update rewrites the golden file from LONG_CSV.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from vlbench.results import schema as result_schema

DECIMALS = 4
TOLERANCE = 1e-4
FIELDS = ("model", "task", "version", "metric", "value")


def task_versions(results_dir: Path) -> dict[tuple[str, str], str]:
    """(model, task) -> task version of the default run (the one the leaderboard shows)."""
    return {(r.model.id, r.task.name): str(r.task.version) for _, r in result_schema.scan(results_dir) if r.is_default}


def current_rows(results_dir: Path, long_csv: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    versions = task_versions(results_dir)
    rows = {}
    with open(long_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if "/" in row["metric"] or row["value"] == "":
                continue
            version = versions.get((row["model"], row["task"]), "") if row["metric"] != "suite" else ""
            rows[(row["model"], row["task"], row["metric"])] = {
                "model": row["model"], "task": row["task"], "version": version, "metric": row["metric"],
                "value": f"{float(row['value']):.{DECIMALS}f}",
            }
    return rows


def read_golden(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {(r["model"], r["task"], r["metric"]): r for r in csv.DictReader(f)}


def write_golden(path: Path, rows: dict[tuple[str, str, str], dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for key in sorted(rows):
            writer.writerow(rows[key])


def differences(golden: dict, now: dict) -> list[str]:
    lines = []
    for key in sorted(set(golden) | set(now)):
        name = " ".join(key)
        if key not in now:
            lines.append(f"- {name}: in the golden file ({golden[key]['value']}), missing now")
        elif key not in golden:
            lines.append(f"+ {name}: new ({now[key]['value']}), not in the golden file")
        elif golden[key]["version"] != now[key]["version"]:
            lines.append(f"~ {name}: task version {golden[key]['version']} in the golden file, {now[key]['version']} now")
        elif abs(float(golden[key]["value"]) - float(now[key]["value"])) > TOLERANCE:
            lines.append(f"~ {name}: golden {golden[key]['value']}, now {now[key]['value']}")
    return lines


def main(argv: list[str]) -> int:
    update = "--update" in argv
    args = [a for a in argv if a != "--update"]
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    results_dir, long_csv, golden = map(Path, args)
    now = current_rows(results_dir, long_csv)
    if not now:
        print(f"error: no leaderboard rows in {long_csv}", file=sys.stderr)
        return 2
    if not update and not golden.exists():
        print(f"error: golden file {golden} not found; create it with --update and commit it", file=sys.stderr)
        return 1
    if update:
        write_golden(golden, now)
        print(f"wrote {golden} ({len(now)} rows); review and commit it")
        return 0
    lines = differences(read_golden(golden), now)
    if lines:
        print(f"leaderboard numbers differ from {golden} (tolerance {TOLERANCE}):", file=sys.stderr)
        print("\n".join(lines), file=sys.stderr)
        print("if the change is intended, update the golden file (see docs/results.md, 'Golden leaderboard') and commit it", file=sys.stderr)
        return 1
    print(f"leaderboard matches {golden} ({len(now)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
