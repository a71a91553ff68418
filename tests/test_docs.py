"""README.md keeps its promises: the two commands first, every setting documented, CI runs them."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.options_table import options_table
from scripts.settings_table import settings_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block is not None, "README.md has no command block"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands[:2] == ["make run", "make test"]
    assert README.index(first_block.group(0)) < README.index("\n## "), "the commands come before any section"


def test_readme_lists_every_setting_as_the_settings_class_defines_it() -> None:
    assert settings_table() in README, "regenerate the table: .venv/bin/python scripts/settings_table.py"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M), ".ci/run must call `make test`, the command README gives"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_docs_list_every_option_as_the_schema_defines_it() -> None:
    options_doc = (ROOT / "docs" / "options.md").read_text()
    assert options_table() in options_doc, "regenerate the table: .venv/bin/python scripts/options_table.py"
