"""The golden-leaderboard check of .ci/run: it passes on equal numbers, names every moved number, and
the committed golden file matches the task files' versions."""

import csv
import importlib.util

from conftest import REPO

from vlbench.results import schema as result_schema
from vlbench.spec.catalog import Catalog
from vlbench.results.io import write_json

GOLDEN = REPO / "tests" / "golden" / "shapes_leaderboard.csv"


def checker():
    spec = importlib.util.spec_from_file_location("check_golden", REPO / ".ci" / "check_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_golden_file_covers_the_shapes_suite_at_current_task_versions():
    catalog = Catalog.load()
    with open(GOLDEN, newline="") as f:
        rows = list(csv.DictReader(f))
    tasks = {r["task"]: r["version"] for r in rows if r["metric"] != "suite"}
    assert set(tasks) == set(catalog.suite_tasks("shapes"))
    assert all(str(catalog.load_task(t).version) == v for t, v in tasks.items()), "a task version changed: update the golden file"


def test_check_passes_within_tolerance_and_names_moved_numbers(tmp_path, capsys):
    check = checker()
    result = result_schema.Result(result_schema.SCHEMA_VERSION, result_schema.ModelInfo("m:a"), result_schema.TaskInfo("t", version=2),
                                  {"acc": 0.51234}, "acc")
    write_json(result_schema.result_path(tmp_path / "res", "m__a", "t", "0" * 16), result.to_json())
    long_csv = tmp_path / "lb.long.csv"
    long_csv.write_text("model,task,metric,value,ci_low,ci_high,n,settings\n"
                        "m:a,t,acc,0.512340,,,10,\nm:a,t,acc/x,0.1,,,10,\nm:a,s,suite,0.500000,,,,\n")
    golden = tmp_path / "golden.csv"
    assert check.main([str(tmp_path / "res"), str(long_csv), str(golden)]) == 1  # no golden file yet: refuse
    assert check.main([str(tmp_path / "res"), str(long_csv), str(golden), "--update"]) == 0
    assert golden.read_text().splitlines()[1:] == ["m:a,s,,suite,0.5000", "m:a,t,2,acc,0.5123"]  # no breakdowns
    assert check.main([str(tmp_path / "res"), str(long_csv), str(golden)]) == 0
    golden.write_text(golden.read_text().replace("0.5123", "0.5122").replace(",2,", ",1,"))
    assert check.main([str(tmp_path / "res"), str(long_csv), str(golden)]) == 1  # 0.5122 is within 1e-4, the version is not
    err = capsys.readouterr().err
    assert "task version 1 in the golden file, 2 now" in err
    golden.write_text("model,task,version,metric,value\nm:a,s,,suite,0.5000\nm:a,t,2,acc,0.5100\n")
    assert check.main([str(tmp_path / "res"), str(long_csv), str(golden)]) == 1
    assert "~ m:a t acc: golden 0.5100, now 0.5123" in capsys.readouterr().err
