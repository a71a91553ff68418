"""The web app's import rules: no TensorFlow or Keras in the web process, and nothing of the worker
(the option schema, the run plan and the pixel conversion it shares with the worker live in spec/)."""

from __future__ import annotations

from tests.support.imports import modules_loaded_by


def test_importing_the_web_app_loads_no_tensorflow_and_nothing_of_the_worker() -> None:
    loaded = modules_loaded_by("app.main", {"tensorflow", "keras", "worker"})
    assert not loaded, f"the web imported {sorted(loaded)}"
