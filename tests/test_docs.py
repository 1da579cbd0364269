"""The README stays true: its commands, and a row for every built-in task."""

import re

from conftest import REPO

from vlbench.spec.catalog import Catalog


def readme() -> str:
    return (REPO / "README.md").read_text()


def test_readme_opens_with_install_and_test_commands_and_ci_runs_the_test_command():
    head = "\n".join(readme().splitlines()[:6])
    install = re.search(r"^pip install (.+?)\s+#", head, re.M)
    test = re.search(r"^(python -m pytest.*?)\s+#", head, re.M)
    assert install and test, head
    assert test.group(1) in (REPO / ".ci" / "run").read_text()


def test_readme_lists_every_task():
    text = readme()
    missing = [name for name in Catalog.load().tasks if f"`{name}`" not in text]
    assert not missing, f"README has no row for: {missing}"


def test_the_readme_first_run_output_is_what_the_first_run_gives(shapes_suite_run):
    """Every value, interval, item count and note of the README's example table is today's `vlbench run`'s."""
    from vlbench.results import schema as result_schema
    from vlbench.console import format_with_ci, tie_note
    from vlbench.results.selection import entry_of, suite_ci, suite_value

    results, _ = shapes_suite_run
    found = {r.task.name: r for _, r in result_schema.scan(results)}
    block = readme().split("$ vlbench run\n", 1)[1].split("```", 1)[0]
    catalog = Catalog.load()
    entries = {name: entry_of(result) for name, result in found.items()}
    task, rows = None, 0
    for line in block.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        task = cells[0] or task
        metric, shown, n = cells[1], cells[2], cells[3]
        if metric == "suite":
            value, ci = suite_value(catalog, task, entries), suite_ci(catalog, task, entries)
            assert shown == format_with_ci(value, ci), (task, shown)
        else:
            result = found[task]
            main = metric == result.main_metric
            assert shown == format_with_ci(result.metrics[metric], result.ci.get(metric) if main else None), (task, metric, shown)
            assert n == (str(result.n) if main else ""), (task, metric)
        rows += 1
    assert rows >= len(found) + 2
    notes = [line for line in block.splitlines() if "decided by an exact tie" in line]
    expected = [note for name in sorted(found) if (note := tie_note(name, found[name].main_metric, found[name].ties))]
    assert notes == expected
