"""Logging set up once per process: one line per event, job-related lines start with "job <id>:"."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def configure_logging(level: str) -> None:
    """Configure the root logger once (uvicorn and Celery keep their own handlers)."""
    root = logging.getLogger()
    if getattr(root, "_atelier_configured", False):
        return
    logging.basicConfig(level=level, format=LOG_FORMAT)
    root.setLevel(level)
    root._atelier_configured = True  # type: ignore[attr-defined]
