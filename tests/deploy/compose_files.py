"""Reading the compose files as Docker Compose does: YAML with anchors and merge keys, plus Compose's
`!reset` / `!override` tags (kept as Tagged values, so tests can see what an override file replaces)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_FILE = REPO_ROOT / "docker-compose.yml"
CPU_FILE = REPO_ROOT / "docker-compose.cpu.yml"
MULTI_GPU_FILE = REPO_ROOT / "docker-compose.multi-gpu.yml"


@dataclass(frozen=True)
class Tagged:
    """A value Compose treats specially when files are merged: tag is 'reset' or 'override'."""

    tag: str
    value: Any


class ComposeLoader(yaml.SafeLoader):
    """SafeLoader that also accepts Compose's merge tags."""


def _tagged(tag: str) -> Callable[[ComposeLoader, yaml.Node], Tagged]:
    def construct(loader: ComposeLoader, node: yaml.Node) -> Tagged:
        if isinstance(node, yaml.MappingNode):
            return Tagged(tag, loader.construct_mapping(node, deep=True))
        if isinstance(node, yaml.SequenceNode):
            return Tagged(tag, loader.construct_sequence(node, deep=True))
        return Tagged(tag, loader.construct_scalar(node))

    return construct


ComposeLoader.add_constructor("!reset", _tagged("reset"))
ComposeLoader.add_constructor("!override", _tagged("override"))


def load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=ComposeLoader)  # a SafeLoader: no objects


_DEFAULT = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?\}")


def with_defaults(value: str) -> str:
    """A value as Compose interpolates it when no variable is set: ${NAME:-default} -> default."""
    return _DEFAULT.sub(lambda match: match.group("default") or "", value)


def compose_command() -> tuple[list[str], int] | None:
    """The Docker Compose CLI here and its major version: the `docker compose` plugin or `docker-compose`."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        probe = subprocess.run([*command, "version", "--short"], capture_output=True, text=True, timeout=60)
        match = re.match(r"v?(\d+)\.", probe.stdout.strip())
        if probe.returncode == 0 and match:
            return command, int(match.group(1))
    return None
