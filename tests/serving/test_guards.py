"""The server's browser-facing guards: cross-site requests and DNS rebinding refused; TF Serving's clients untouched."""

from __future__ import annotations

import asyncio

import pytest

from sentiment.serving import guards


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8080", "localhost:8080", "[::1]:8080", "::1", "127.9.9.9"])
def test_loopback_names_and_addresses(host):
    assert guards.is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "evil.example", "evil.example:8080", "10.0.0.1:80", "localhost.evil.example", ""])
def test_other_hosts_are_not_loopback(host):
    assert not guards.is_loopback(host)


def test_what_is_refused():
    on_loopback, exposed = guards.BrowserGuard(None, loopback=True), guards.BrowserGuard(None, loopback=False)
    assert on_loopback.problem("127.0.0.1:8080", "") is None  # curl: no Origin
    assert on_loopback.problem("localhost:8080", "http://localhost:8080") is None  # the page itself
    assert "not this machine" in on_loopback.problem("rebound.example:8080", "")  # DNS rebinding
    assert "cross-site" in on_loopback.problem("127.0.0.1:8080", "https://evil.example")
    assert "opaque origin" in exposed.problem("models.example", "null")
    assert exposed.problem("models.example:8080", "") is None and exposed.problem("models.example:8080", "http://models.example:8080") is None


def run(guard: guards.BrowserGuard, headers: dict[bytes, bytes]) -> list[dict]:
    """Send one request through the guard to an app that answers 200; return what was sent back."""
    sent = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    guard.app = app
    asyncio.run(guard({"type": "http", "method": "POST", "path": "/", "headers": list(headers.items())}, receive, send))
    return sent


def test_a_refusal_is_a_403_json_and_every_answer_carries_the_security_headers():
    guard = guards.BrowserGuard(None, loopback=True)
    refused = run(guard, {b"host": b"127.0.0.1:8080", b"origin": b"https://evil.example"})
    assert refused[0]["status"] == 403 and b"cross-site" in refused[1]["body"]
    served = run(guard, {b"host": b"127.0.0.1:8080", b"content-type": b"application/x-www-form-urlencoded"})  # curl -d
    assert served[0]["status"] == 200
    names = {name for name, _ in served[0]["headers"]}
    assert {b"content-security-policy", b"x-frame-options", b"x-content-type-options"} <= names
