"""The page's words for the options: every option of the schema has a label and a group, and only those."""

from __future__ import annotations

from app.forms import PAGE_LABELS, option_groups
from core.options import option_specs
from core.settings import get_settings


def test_every_option_has_a_page_label_and_group_and_no_label_is_stale() -> None:
    assert set(PAGE_LABELS) == {spec.public for spec in option_specs()}


def test_the_advanced_panel_groups_follow_the_labels_order() -> None:
    groups = [title for title, _ in option_groups(get_settings())]
    assert groups == ["Picture", "Loss weights", "Optimiser", "Layers", "Previews", "Video"]
