"""Rate limits on ask and run: per client address, per token, 429 with Retry-After."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api_fixtures import bearer, make_token

SMALL = {
    "RATELIMIT_ASK": "3 per minute",
    "RATELIMIT_ASK_TOKEN": "5 per minute",
    "RATELIMIT_RUN": "2 per minute",
    "RATELIMIT_RUN_TOKEN": "3 per minute",
}
QUESTION = {"question": "What is double descent?"}


@pytest.fixture
def make_app(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """The shared app factory (tests/conftest.py), with the small limits above by default."""
    return lambda **config: make_app(**{**SMALL, **config})


@pytest.fixture
def limited(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


def ask(client: FlaskClient, addr: str = "127.0.0.1", **headers: str) -> Any:
    return client.post(
        "/api/v1/ask", json=QUESTION, headers=headers, environ_base={"REMOTE_ADDR": addr}
    )


def assert_limited(res: Any) -> int:
    assert res.status_code == 429, res.json
    error = res.json["error"]
    assert error["code"] == "rate_limited"
    retry_after = int(res.headers["Retry-After"])
    assert 1 <= retry_after <= 60 and error["retry_after"] == retry_after
    return retry_after


def test_anonymous_asks_are_limited_per_client_address(limited: Flask) -> None:
    client = limited.test_client()
    for i in range(3):
        res = ask(client)
        assert res.status_code == 200
        assert res.headers["X-RateLimit-Limit"] == "3"
        assert res.headers["X-RateLimit-Remaining"] == str(2 - i)
        assert "Retry-After" not in res.headers
    assert_limited(ask(client))
    # A spoofed X-Forwarded-For does not buy a fresh allowance.
    assert_limited(ask(client, **{"X-Forwarded-For": "203.0.113.9"}))
    # Another client address has its own allowance.
    assert ask(client, addr="127.0.0.2").status_code == 200
    # Reads are not limited.
    assert client.get("/api/v1/entries").status_code == 200


def test_tokens_have_their_own_limit(limited: Flask) -> None:
    client = limited.test_client()
    first, second = make_token(limited, "ask"), make_token(limited, "ask")
    for _ in range(3):
        assert ask(client).status_code == 200
    assert_limited(ask(client))
    # The address is exhausted, but a token is counted on its own (5 per minute).
    for _ in range(5):
        res = client.post("/api/v1/ask", json=QUESTION, headers=bearer(first))
        assert res.status_code == 200 and res.headers["X-RateLimit-Limit"] == "5"
    assert_limited(client.post("/api/v1/ask", json=QUESTION, headers=bearer(first)))
    assert client.post("/api/v1/ask", json=QUESTION, headers=bearer(second)).status_code == 200
    # An invalid token is refused, and counts against the address, not a token.
    res = client.post("/api/v1/ask", json=QUESTION, headers=bearer("ra_" + "z" * 43))
    assert res.status_code in (401, 429)


def test_runs_are_limited_separately_from_asks(limited: Flask) -> None:
    client = limited.test_client()
    for _ in range(3):
        assert ask(client).status_code == 200
    assert_limited(ask(client))
    for _ in range(2):  # agi has no experiment: 409, but the request still counts
        assert client.post("/api/v1/entries/agi/runs", json={}).status_code == 409
    assert_limited(client.post("/api/v1/entries/agi/runs", json={}))
    token = make_token(limited, "run")
    res = client.post("/api/v1/entries/agi/runs", json={}, headers=bearer(token))
    assert res.status_code == 409 and res.headers["X-RateLimit-Limit"] == "3"


def test_limits_can_be_switched_off(make_app: Callable[..., Flask]) -> None:
    client = make_app(RATELIMIT_ENABLED=False).test_client()
    for _ in range(5):
        assert ask(client).status_code == 200


def test_an_unreachable_storage_falls_back_to_memory(make_app: Callable[..., Flask]) -> None:
    # Nothing listens on port 9 of this machine: every storage call fails at once.
    client = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0").test_client()
    for _ in range(3):
        assert ask(client).status_code == 200
    assert_limited(ask(client))  # still limited, counted in memory meanwhile


@pytest.mark.redis
def test_redis_storage_is_shared_by_every_replica(make_app: Callable[..., Flask]) -> None:
    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis server at 127.0.0.1:6379")
    prefix = f"ra-test-{uuid.uuid4().hex[:8]}"
    config = {"RATELIMIT_STORAGE_URI": url, "RATELIMIT_KEY_PREFIX": prefix}
    web1, web2 = make_app(**config).test_client(), make_app(**config).test_client()
    try:
        for i, web in enumerate((web1, web2, web1)):
            before = time.time()
            res = ask(web)
            assert res.status_code == 200
            # The headers come from Redis too: the count is shared, the window is 60 s.
            assert res.headers["X-RateLimit-Remaining"] == str(2 - i)
            assert before < int(res.headers["X-RateLimit-Reset"]) <= time.time() + 61
        assert_limited(ask(web2))  # the fourth request, counted across both replicas
    finally:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)
