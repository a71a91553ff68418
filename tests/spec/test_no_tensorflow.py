"""The lowest layer imports no TensorFlow, NumPy, pydantic or anything of the project above it."""

from __future__ import annotations

from tests.support.imports import modules_loaded_by


def test_the_plan_and_the_schema_load_only_the_standard_library_and_pillow() -> None:
    heavy = {"tensorflow", "keras", "numpy", "pydantic", "app", "core", "worker"}
    assert modules_loaded_by("spec.plan, spec.options, spec.pixels", heavy) == set()
