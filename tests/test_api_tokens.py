"""API tokens: created and revoked with the CLI, stored hashed, scopes, expiry, revocation."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from knowledge import api_tokens
from knowledge.db import transaction
from knowledge.tables import ApiToken, utcnow
from tests.api_fixtures import bearer, make_token

SECRET_RE = re.compile(r"ra_[A-Za-z0-9_-]{43}")


def test_cli_create_shows_the_token_once_and_stores_only_its_hash(
    app: Flask, runner: FlaskCliRunner
) -> None:
    res = runner.invoke(
        args=["tokens", "create", "forum-bot", "--scopes", "ask,run", "--expires-days", "30"]
    )
    assert res.exit_code == 0, res.output
    secret = SECRET_RE.search(res.output).group(0)  # type: ignore[union-attr]
    assert "not shown again" in res.output
    with app.extensions["core"].sessions() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == api_tokens.hash_token(secret) and secret not in row.token_hash
        assert row.prefix == secret[:11] and row.scopes == ["ask", "run"]
        assert row.expires_at is not None
    listing = runner.invoke(args=["tokens", "list"])
    assert listing.exit_code == 0
    assert "forum-bot" in listing.output and "ask,run" in listing.output
    assert secret not in listing.output and "active" in listing.output


def test_cli_revoke_by_id_or_prefix(app: Flask, runner: FlaskCliRunner) -> None:
    first = runner.invoke(args=["tokens", "create", "a", "-q"]).output.strip()
    second = runner.invoke(args=["tokens", "create", "b", "-q"]).output.strip()
    assert SECRET_RE.fullmatch(first) and SECRET_RE.fullmatch(second)
    res = runner.invoke(args=["tokens", "revoke", "1"])
    assert res.exit_code == 0 and "revoked token 1 'a'" in res.output
    res = runner.invoke(args=["tokens", "revoke", second[:11]])
    assert res.exit_code == 0 and "'b'" in res.output
    listing = runner.invoke(args=["tokens", "list"]).output
    assert listing.count("revoked") == 2
    assert runner.invoke(args=["tokens", "list", "--active"]).output.strip() == "no tokens"
    missing = runner.invoke(args=["tokens", "revoke", "ra_nope"])
    assert missing.exit_code != 0 and "no token" in missing.output


def test_cli_rejects_bad_scopes_and_expiry(runner: FlaskCliRunner) -> None:
    res = runner.invoke(args=["tokens", "create", "x", "--scopes", "ask,admin"])
    assert res.exit_code != 0 and "unknown scope 'admin'" in res.output
    res = runner.invoke(args=["tokens", "create", "x", "--expires-days", "0"])
    assert res.exit_code != 0 and "expiry" in res.output


def test_verify_checks_hash_revocation_and_expiry(app: Flask) -> None:
    factory = app.extensions["core"].sessions
    now = utcnow()
    with transaction(factory) as session:
        new = api_tokens.create_token(session, "bot", ["write", "ask"], expires_in_days=1, now=now)
        assert new.info.scopes == ("ask", "write")
        info = api_tokens.verify_token(session, new.secret, now=now)
        assert info.id == new.info.id and info.has_scope("write") and not info.has_scope("run")
        assert session.get(ApiToken, info.id).last_used_at is not None  # type: ignore[union-attr]
        with pytest.raises(api_tokens.TokenError) as err:
            api_tokens.verify_token(session, new.secret, now=now + timedelta(days=1, seconds=1))
        assert err.value.code == "token_expired"
        for bad in ("", "ra_short", new.secret[:-1] + ("A" if new.secret[-1] != "A" else "B")):
            with pytest.raises(api_tokens.TokenError) as err:
                api_tokens.verify_token(session, bad)
            assert err.value.code == "invalid_token"
        api_tokens.revoke_token(session, new.info.prefix)
        with pytest.raises(api_tokens.TokenError) as err:
            api_tokens.verify_token(session, new.secret, now=now)
        assert err.value.code == "token_revoked"
        assert [t.status(now) for t in api_tokens.list_tokens(session)] == ["revoked"]
        assert api_tokens.list_tokens(session, include_revoked=False) == []


def test_parse_scopes_and_lookup_errors(app: Flask) -> None:
    assert api_tokens.parse_scopes(" write , ask,ask") == ("ask", "write")
    for bad in ("", "root", ",,"):
        with pytest.raises(ValueError):
            api_tokens.parse_scopes(bad)
    with transaction(app.extensions["core"].sessions) as session:
        with pytest.raises(ValueError):
            api_tokens.create_token(session, "  ", "ask")
        with pytest.raises(api_tokens.TokenLookupError):
            api_tokens.revoke_token(session, "ra_")  # too short to be a safe prefix
        with pytest.raises(api_tokens.TokenLookupError):
            api_tokens.revoke_token(session, 999)


def test_anonymous_ask_and_read_stay_open_by_default(client: FlaskClient) -> None:
    assert (
        client.post("/api/v1/ask", json={"question": "What is double descent?"}).status_code == 200
    )
    assert client.get("/api/v1/entries").status_code == 200
    assert client.get("/api/v1/entries/agi").status_code == 200


def test_scopes_are_enforced_when_a_token_is_sent(app: Flask, client: FlaskClient) -> None:
    ask_only = make_token(app, "ask")
    run_only = make_token(app, "run")
    question = {"question": "What is double descent?"}
    assert client.post("/api/v1/ask", json=question, headers=bearer(ask_only)).status_code == 200
    res = client.post("/api/v1/ask", json=question, headers=bearer(run_only))
    assert res.status_code == 403
    assert res.json["error"]["code"] == "insufficient_scope"
    assert res.json["error"]["required_scope"] == "ask"
    assert 'error="insufficient_scope"' in res.headers["WWW-Authenticate"]
    res = client.post("/api/v1/entries/agi/runs", json={}, headers=bearer(ask_only))
    assert res.status_code == 403
    # Any valid token may read.
    assert client.get("/api/v1/entries/agi", headers=bearer(run_only)).status_code == 200


@pytest.mark.parametrize(
    ("kind", "code"),
    [("revoked", "token_revoked"), ("expired", "token_expired"), ("unknown", "invalid_token")],
)
def test_revoked_expired_and_unknown_tokens_fail(
    app: Flask, client: FlaskClient, kind: str, code: str
) -> None:
    if kind == "unknown":
        secret = "ra_" + "x" * 43
    else:
        secret = make_token(app, revoked=kind == "revoked", expired=kind == "expired")
    for method, path, body in (
        ("post", "/api/v1/ask", {"question": "What is double descent?"}),
        ("get", "/api/v1/entries", None),
        ("get", "/api/v1/experiments", None),
        ("post", "/api/v1/entries", {"slug": "x"}),
    ):
        res = getattr(client, method)(path, json=body, headers=bearer(secret))
        assert res.status_code == 401, (path, res.json)
        assert res.json["error"]["code"] == code
        assert res.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", "token abc"])
def test_malformed_authorization_headers(client: FlaskClient, header: str) -> None:
    res = client.get("/api/v1/entries", headers={"Authorization": header})
    assert res.status_code == 401
    assert res.json["error"]["code"] == "invalid_authorization"


@pytest.fixture
def closed_app(make_app: Callable[..., Flask]) -> Flask:
    """The course requires a token even for ask and read."""
    return make_app(REQUIRE_TOKEN_FOR_READ=True)


def test_require_token_for_read_setting(closed_app: Flask) -> None:
    client = closed_app.test_client()
    question = {"question": "What is double descent?"}
    for method, path, body in (
        ("post", "/api/v1/ask", question),
        ("post", "/api/v1/feedback", {"question_id": 1, "helpful": True}),
        ("get", "/api/v1/entries", None),
        ("get", "/api/v1/entries/agi", None),
        ("get", "/api/v1/experiments", None),
        ("get", "/api/v1/runs/nope", None),
        ("post", "/api/v1/entries/agi/runs", {}),
    ):
        res = getattr(client, method)(path, json=body)
        assert res.status_code == 401, path
        assert res.json["error"]["code"] == "token_required"
    assert client.get("/healthz").status_code == 200
    spec = client.get("/api/v1/openapi.json").json
    assert spec["paths"]["/api/v1/ask"]["post"]["security"] == [{"bearerAuth": ["ask"]}]
    secret = make_token(closed_app, "ask")
    assert client.post("/api/v1/ask", json=question, headers=bearer(secret)).status_code == 200
    assert client.get("/api/v1/entries", headers=bearer(secret)).status_code == 200
