"""The Print preset on the upload page in a real Chromium (issue 12): choosing it shows the
coarse-to-fine ladder it fills in, as the size and steps it fills in are shown."""

from __future__ import annotations

from playwright.sync_api import Page, expect


def test_choosing_print_shows_its_coarse_to_fine_ladder(page: Page) -> None:
    page.goto("/")
    ladder = page.locator("#ladder_start")
    default = ladder.get_attribute("placeholder")
    page.check("input[name=preset][value=print]")
    expect(ladder).to_have_attribute("placeholder", "512 (from preset)")
    # 2048 px capped to ATELIER_MAX_SIZE (the default 1024, for CPU workers):
    expect(page.locator("#size")).to_have_attribute("placeholder", "1024 (from preset)")
    page.check("input[name=preset][value=standard]")  # one size
    expect(ladder).to_have_attribute("placeholder", default or "")
