"""Print the Markdown table of every job option, for docs/options.md (tests/test_docs.py keeps them equal).

.venv/bin/python scripts/options_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.options import SERVICE_DEFAULTS  # noqa: E402
from spec.options import OptionSpec, option_specs  # noqa: E402

KINDS = {
    "int": "integer",
    "float": "number",
    "bool": "true / false",
    "choice": "one of",
    "floats": "numbers, comma separated",
    "names": "layer names, comma separated",
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _range(spec: OptionSpec) -> str:
    if spec.kind in ("choice", "names"):
        return (
            " \\| ".join(f"`{choice}`" for choice in spec.choices)
            if spec.kind == "choice"
            else "VGG19 conv layers"
        )
    low = "" if spec.minimum is None else f"{'>' if spec.above_minimum else '≥'} {_number(spec.minimum)}"
    high = "" if spec.maximum is None else f"≤ {_number(spec.maximum)}"
    return ", ".join(part for part in (low, high) if part)


def options_table() -> str:
    rows = [
        "| API / form field | CLI flag | Engine (`StyleOptions`) | Type | Range | Default | Meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in option_specs():
        default = SERVICE_DEFAULTS.get(spec.public)
        shown = f"`{spec.describe_default()}`" + (f" (service: {default})" if default else "")
        meaning = spec.help.replace("|", "\\|")
        rows.append(
            f"| `{spec.public}` | `{spec.flag}` | `{spec.name}` | {KINDS[spec.kind]} | {_range(spec)} "
            f"| {shown} | {meaning} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(options_table() + "\n")
