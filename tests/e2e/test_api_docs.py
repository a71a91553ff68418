"""The API's documentation pages work without internet: Chromium, allowed to reach nothing but the
server, lists the operations in Swagger UI (/docs) and ReDoc (/redoc)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.support.stack import Stack


@pytest.fixture
def offline_page(page: Page, stack: Stack) -> tuple[Page, list[str]]:
    """The page with every request to another origin aborted, and the list of those requests."""
    server = urlsplit(stack.base_url).netloc
    blocked: list[str] = []

    def only_the_server(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == server or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", only_the_server)
    return page, blocked


def test_swagger_ui_lists_the_operations_with_the_network_cut_off(
    offline_page: tuple[Page, list[str]],
) -> None:
    page, blocked = offline_page
    page.goto("/docs")

    operation = page.locator(".opblock-summary-path", has_text="/api/jobs/{job_id}/cancel")
    expect(operation.first).to_be_visible()
    assert page.locator(".opblock").count() >= 5
    assert blocked == []


def test_redoc_lists_the_operations_with_the_network_cut_off(offline_page: tuple[Page, list[str]]) -> None:
    page, blocked = offline_page
    page.goto("/redoc")

    expect(page.get_by_text("/api/jobs/{job_id}/cancel").first).to_be_attached()
    expect(page.locator("h2", has_text="Submit").first).to_be_visible()
    assert blocked == []
