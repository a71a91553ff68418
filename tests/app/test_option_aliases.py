"""preserve_colors is colors=luminance under its older name: the API takes both, the page shows one."""

from __future__ import annotations

from app.forms import option_groups, same_settings_url, settings_rows
from core.options import JobOptionsIn
from core.settings import get_settings


def test_the_api_takes_the_old_name_and_records_both() -> None:
    resolved = JobOptionsIn.model_validate({"preserve_colors": "true"}).resolve()
    assert (resolved["colors"], resolved["preserve_colors"]) == ("luminance", True)
    resolved = JobOptionsIn.model_validate({"colors": "luminance"}).resolve()
    assert (resolved["colors"], resolved["preserve_colors"]) == ("luminance", True)


def test_the_page_shows_only_colors() -> None:
    names = {field.name for _, fields in option_groups(get_settings()) for field in fields}
    assert {"colors", "style_loss", "ema_decay", "pooling"} <= names
    assert "preserve_colors" not in names
    options = JobOptionsIn.model_validate({"preserve_colors": "true"}).resolve()
    rows = dict(settings_rows(options))
    assert rows["Colours"] == "luminance" and "Preserve the photo's colours" not in rows
    url = same_settings_url(options)
    assert "colors=luminance" in url and "preserve_colors" not in url
