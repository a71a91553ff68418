"""Reading a Server-Sent Events response (the job's event stream) in tests."""

from __future__ import annotations

import json
from typing import Any

import httpx


def read_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event name, parsed data) for every event of a finished stream; comments and retry are skipped."""
    events: list[tuple[str, Any]] = []
    name, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
        elif line == "" and data:
            events.append((name, json.loads(data)))
            name, data = "message", ""
    return events
