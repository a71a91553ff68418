"""Storage checks for tests (the service itself never asks whether a key exists: it reads, and a
missing object is FileNotFoundError)."""

from __future__ import annotations

from core.storage import Storage


def holds(storage: Storage, key: str) -> bool:
    """Whether storage has an object under key."""
    try:
        storage.read_bytes(key)
    except FileNotFoundError:
        return False
    return True
