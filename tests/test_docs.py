"""The README stays true: its commands, and a row for every built-in task."""

import re

from conftest import REPO

from vlbench.catalog import Catalog


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
