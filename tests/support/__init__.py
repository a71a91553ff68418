"""Shared test helpers: a real Redis + Celery worker + uvicorn stack, and generated images."""
