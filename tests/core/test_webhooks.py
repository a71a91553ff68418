"""Callback URLs a webhook may call (SSRF guard) and the event's signature (core/webhooks.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from core.webhooks import CallbackRefused, check_callback_url, signature_header


def resolver_to(*addresses: str):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.10.10", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:127.0.0.1", "loopback"),
        ("100.64.0.1", "not a public address"),
        ("224.0.0.1", "not an address a server listens on"),
        ("0.0.0.0", "not an address a server listens on"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_non_public_addresses_are_refused_with_the_reason(address: str, reason: str) -> None:
    with pytest.raises(CallbackRefused, match=reason):
        check_callback_url("https://hooks.example.com/x", allow_private=False, resolver=resolver_to(address))


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(CallbackRefused, match="10.0.0.7"):
        check_callback_url(
            "https://hooks.example.com/",
            allow_private=False,
            resolver=resolver_to("93.184.215.14", "10.0.0.7"),
        )


def test_a_public_address_gives_the_target_to_connect_to() -> None:
    target = check_callback_url(
        "https://hooks.example.com:8443/in?token=s3cret",
        allow_private=False,
        resolver=resolver_to("93.184.215.14"),
    )
    assert (target.host, target.port, target.target) == ("hooks.example.com", 8443, "/in?token=s3cret")
    assert target.addresses == ("93.184.215.14",)
    assert target.netloc == "hooks.example.com:8443"  # what a status shows: no path, no query


def test_allowing_private_addresses_still_refuses_cloud_metadata() -> None:
    allowed = check_callback_url("http://127.0.0.1:9/x", allow_private=True)
    assert allowed.addresses == ("127.0.0.1",)
    with pytest.raises(CallbackRefused, match="metadata"):
        check_callback_url("http://169.254.169.254/latest/meta-data/", allow_private=True)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http:///path-only", "no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("https://" + "a" * 2100 + ".com/", "at most 2048"),
    ],
)
def test_malformed_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(CallbackRefused, match=problem):
        check_callback_url(url, allow_private=True, resolver=resolver_to("93.184.215.14"))


def test_the_signature_is_stripes_scheme_over_timestamp_and_raw_body() -> None:
    body = b'{"id":"x"}'
    header = signature_header("whsec", 1700000000, body)
    expected = hmac.new(b"whsec", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
