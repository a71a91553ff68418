"""The shared core: what both the web (app/) and the worker (worker/) use.

Settings, the job store (every Redis key), storage (every path and object key), job options, job
ids, the task's name and queue routing, and retention. It imports no FastAPI, Celery or TensorFlow
(the import contracts in pyproject.toml are checked by tests/test_import_contracts.py).
"""
