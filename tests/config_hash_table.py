"""The config hash of every shipped task under a few run settings: the identity results are found by.

``python tests/config_hash_table.py`` writes ``tests/golden/config_hashes.json``; ``test_specs`` checks that
today's code gives the same table, so a refactoring cannot silently orphan results written before it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TABLE = Path(__file__).parent / "golden" / "config_hashes.json"
# name -> RunSettings fields; each task is hashed under every combination whose setting applies to it
COMBINATIONS = {
    "default": {},
    "limit=5": {"limit": 5},
    "precision=bf16": {"precision": "bf16"},
    "seed=7": {"seed": 7},
    "protocol=naclip": {"protocol": "naclip"},
    "language=it": {"overrides": {"language": "it"}},
}


def config_hashes() -> dict[str, dict[str, str]]:
    from vlbench.spec.catalog import Catalog
    from vlbench.errors import VLBenchError
    from vlbench.run.runner import Runner
    from vlbench.run.settings import RunSettings

    catalog = Catalog.load()
    table: dict[str, dict[str, str]] = {name: {} for name in sorted(catalog.tasks)}
    for combination, fields in COMBINATIONS.items():
        runner = Runner(catalog, RunSettings(data_root=Path("/nonexistent"), output=Path("/nonexistent"), **fields))
        for name in sorted(catalog.tasks):
            try:
                task = runner.plan_tasks([name])[0]
            except VLBenchError:  # e.g. --protocol naclip covers no such task
                continue
            if combination != "default" and fields and runner.config_hash(task) == table[name].get("default"):
                continue  # the setting does not apply to this task
            table[name][combination] = runner.config_hash(task)
    return table


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    TABLE.write_text(json.dumps(config_hashes(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {TABLE}")
