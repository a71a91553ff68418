"""Unknown and malformed job ids: 404 everywhere, and no id ever reaches outside storage."""

from __future__ import annotations

import pytest

from tests.support.inprocess import InProcessWeb

UNKNOWN = "0123456789abcdef0123456789abcdef"
MALFORMED = [
    "nope",
    "0123456789ABCDEF0123456789ABCDEF",  # upper case is not what the service hands out
    UNKNOWN + "0",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2E%2E",
    "..%5C..%5Cwindows",
    UNKNOWN[:31] + "%00",
]


@pytest.mark.parametrize("job_id", [UNKNOWN, *MALFORMED])
@pytest.mark.parametrize("suffix", ["", "/result", "/preview", "/content"])
def test_get_unknown_or_malformed_id_is_404(web: InProcessWeb, job_id: str, suffix: str) -> None:
    with web.client as client:
        response = client.get(f"/api/jobs/{job_id}{suffix}")
    assert response.status_code == 404
    assert response.json()["detail"]


@pytest.mark.parametrize("job_id", [UNKNOWN, *MALFORMED])
def test_cancel_unknown_or_malformed_id_is_404(web: InProcessWeb, job_id: str) -> None:
    with web.client as client:
        response = client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 404
