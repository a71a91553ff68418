"""`make audit`: pip-audit of the virtual environment, with an honest summary.

pip-audit asks PyPI's JSON API (per release) for known vulnerabilities. Where that API cannot be
reached (an offline machine, a registry mirror that serves only the package index), pip-audit skips
every package and still prints "No known vulnerabilities found". This script tells the difference:

  exit 0  every package was checked and none has a known vulnerability
  exit 1  known vulnerabilities (listed, with the versions that fix them)
  exit 2  the check could not be done (or not for every package): says so, lists what was skipped

.ci/run runs it as a report that does not fail the build (see the comment there).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

PIP_AUDIT = [
    *(sys.executable, "-m", "pip_audit"),
    *("--format", "json", "--progress-spinner", "off", "--skip-editable"),
]


def run_pip_audit() -> tuple[dict[str, Any] | None, str]:
    """pip-audit's JSON report (None if it produced none) and its stderr."""
    try:
        completed = subprocess.run(PIP_AUDIT, capture_output=True, text=True, timeout=600)
    except FileNotFoundError as error:
        return None, f"pip-audit is not installed ({error}); run `make install`"
    try:
        return json.loads(completed.stdout), completed.stderr
    except json.JSONDecodeError:
        return None, completed.stderr or completed.stdout


def summarise(report: dict[str, Any]) -> tuple[list[str], list[str], int]:
    """(lines about vulnerable packages, lines about skipped packages, number of packages checked)."""
    vulnerable, skipped, checked = [], [], 0
    for dependency in report.get("dependencies", []):
        if "skip_reason" in dependency:
            skipped.append(f"  {dependency['skip_reason']}")
            continue
        checked += 1
        for vuln in dependency.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            aliases = ", ".join(vuln.get("aliases", []))
            name = f"{dependency['name']} {dependency.get('version', '')}".strip()
            vulnerable.append(f"  {name}: {vuln['id']} ({aliases}) fixed in {fixed}")
    return vulnerable, skipped, checked


def audit() -> tuple[int, list[str]]:
    """The exit code (see the module docstring) and the report's lines."""
    report, errors = run_pip_audit()
    if report is None:
        last_line = (errors.strip().splitlines() or ["no output"])[-1]
        return 2, [
            "pip-audit: NOT CHECKED - it could not reach the vulnerability database (PyPI's JSON API).",
            f"  {last_line}",
        ]
    vulnerable, skipped, checked = summarise(report)
    lines = []
    if vulnerable:
        lines += [f"pip-audit: {len(vulnerable)} known vulnerabilities in {checked} checked package(s):"]
        lines += vulnerable
    if skipped and checked == 0:
        lines += [
            f"pip-audit: NOT CHECKED - none of the {len(skipped)} packages could be audited: the "
            "vulnerability data (PyPI's JSON API per release) is unreachable from this machine. "
            "Run `make audit` where pypi.org is reachable.",
            f"  e.g. {skipped[0].strip()}",
        ]
    elif skipped:
        lines += [f"pip-audit: {len(skipped)} package(s) could not be checked:", *skipped]
    if vulnerable:
        return 1, lines
    if skipped:
        return 2, lines
    return 0, [f"pip-audit: no known vulnerabilities in {checked} package(s)."]


def main() -> int:
    code, lines = audit()
    sys.stdout.write("\n".join(lines) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
