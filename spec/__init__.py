"""What a run is, for every layer: the option schema (options.py), the run plan (plan.py), the errors
(errors.py) and the pixel conversion of any decoded image (pixels.py).

The lowest layer: standard library and Pillow only, so the web, the core, the worker, the CLI and the
engine all import it downward (import-linter checks it: pyproject.toml).
"""
