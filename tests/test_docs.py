"""The README and the documentation stay true: the README's commands and first-run table, links that
resolve, the generated reference pages up to date, every shipped task in the catalogue and the overview."""

import os
import re
import subprocess
import sys

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


def test_the_readme_stays_short_and_its_links_resolve():
    text = readme()
    assert len(text.splitlines()) < 250, "the README is for newcomers; move the rest into docs/"
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert targets and not [t for t in targets if not t.startswith("http") and not (REPO / t).is_file()]


def test_the_generated_reference_pages_are_up_to_date():
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLBENCH_")}
    done = subprocess.run([sys.executable, str(REPO / "docs" / "generate.py"), "--check"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_catalogue_and_the_tasks_page_list_every_shipped_task():
    catalogue = (REPO / "docs" / "reference" / "tasks.md").read_text()
    overview = (REPO / "docs" / "tasks.md").read_text()
    tasks = Catalog.load().tasks
    assert [name for name in tasks if f"### `{name}`" not in catalogue] == []
    assert [name for name in tasks if f"`{name}`" not in overview] == [], "docs/tasks.md's tables have no row for these"


def test_the_stale_check_notices_a_changed_task(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "docs"))
    try:
        import generate
    finally:
        sys.path.remove(str(REPO / "docs"))
    monkeypatch.setattr(generate, "REFERENCE", tmp_path)
    (tmp_path / "tasks.md").write_text(generate.task_catalogue().replace("CIFAR-10 test set", "CIFAR-10 training set"))
    (tmp_path / "kinds.md").write_text(generate.kind_options())
    (tmp_path / "cli.md").write_text(generate.cli_reference())
    assert generate.stale_pages() == ["tasks.md"]


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
