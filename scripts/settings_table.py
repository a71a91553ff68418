"""Print the Markdown table of every Atelier setting, for README.md (tests/test_docs.py keeps them equal).

.venv/bin/python scripts/settings_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.settings import Settings  # noqa: E402


def settings_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = getattr(default, "get_secret_value", lambda d=default: d)()
        shown = "(empty)" if shown in ("", None) else f"`{shown}`"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `ATELIER_{name.upper()}` | {shown} | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(settings_table() + "\n")
