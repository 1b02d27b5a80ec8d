"""TA accounts and sessions: the users CLI, hashed passwords, login, logout, CSRF, throttling."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from knowledge import accounts
from knowledge.db import transaction
from knowledge.entry_store import find_entry
from knowledge.tables import User
from tests.ta_support import PASSWORD, create_user, csrf_token, log_in, post, ta_client


def test_users_cli_creates_an_account_with_a_hashed_password(
    app: Flask, runner: FlaskCliRunner
) -> None:
    result = runner.invoke(args=["users", "create", "Sato", "--password-stdin"], input=PASSWORD)
    assert result.exit_code == 0, result.output
    assert "created ta account 'sato'" in result.output
    with app.extensions["core"].sessions() as session:
        user = session.scalar(select(User).where(User.username == "sato"))
        assert user is not None and user.role == "ta" and user.is_active
        assert PASSWORD not in user.password_hash and user.password_hash.startswith("scrypt:")
    listed = runner.invoke(args=["users", "list"])
    assert "sato\tta\tactive" in listed.output
    assert "scrypt" not in listed.output


def test_users_cli_prompts_twice_and_refuses_bad_input(runner: FlaskCliRunner) -> None:
    ok = runner.invoke(args=["users", "create", "kato"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert ok.exit_code == 0, ok.output
    taken = runner.invoke(args=["users", "create", "KATO", "--password-stdin"], input=PASSWORD)
    assert taken.exit_code != 0 and "taken" in taken.output
    short = runner.invoke(args=["users", "create", "ito", "--password-stdin"], input="short")
    assert short.exit_code != 0 and "at least" in short.output
    bad = runner.invoke(args=["users", "create", "no spaces!", "--password-stdin"], input=PASSWORD)
    assert bad.exit_code != 0 and "username" in bad.output
    role = runner.invoke(args=["users", "create", "mori", "--role", "root"], input=PASSWORD)
    assert role.exit_code != 0
    missing = runner.invoke(args=["users", "deactivate", "nobody"])
    assert missing.exit_code != 0 and "no user" in missing.output


def test_authenticate(app: Flask) -> None:
    create_user(app, "suzuki")
    with app.extensions["core"].sessions() as session:
        assert accounts.authenticate(session, "Suzuki", PASSWORD) is not None
        assert accounts.authenticate(session, "suzuki", PASSWORD + "x") is None
        assert accounts.authenticate(session, "nobody", PASSWORD) is None
        assert accounts.authenticate(session, "suzuki", "x" * 5000) is None


def test_pages_need_a_login(client: FlaskClient) -> None:
    for path in ("/ta/", "/ta/entries/", "/ta/entries/new", "/ta/queue", "/ta/feedback"):
        res = client.get(path)
        assert res.status_code == 302, path
        assert res.headers["Location"].startswith("/ta/login?next=")
    res = client.post("/ta/preview", json={"markdown": "x"})
    assert res.status_code == 401 and res.json["error"]["code"] == "unauthorized"
    res = client.post("/ta/entries/new", data={"slug": "x"})
    assert res.status_code == 302  # to the login page; nothing stored


def test_login_and_logout(app: Flask, client: FlaskClient) -> None:
    create_user(app)
    page = client.get("/ta/login?next=/ta/queue")
    assert page.status_code == 200 and 'name="csrf_token"' in page.get_data(as_text=True)
    before = csrf_token(client)
    token = csrf_token(client)
    res = client.post(
        "/ta/login",
        data={"username": "tanaka", "password": PASSWORD, "csrf_token": token, "next": "/ta/queue"},
    )
    assert res.status_code == 302 and res.headers["Location"] == "/ta/queue"
    cookie = res.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert csrf_token(client) != before  # a fresh session (no fixation)
    assert client.get("/ta/queue").status_code == 200
    assert client.get("/ta/login").status_code == 302  # already logged in
    # Logging out needs POST with the token.
    assert client.get("/ta/logout").status_code == 405
    assert client.post("/ta/logout").status_code == 400
    res = post(client, "/ta/logout")
    assert res.status_code == 302 and res.headers["Location"] == "/ta/login"
    assert client.get("/ta/queue").status_code == 302


def test_login_refusals(app: Flask, client: FlaskClient) -> None:
    create_user(app)
    client.get("/ta/login")
    no_token = client.post("/ta/login", data={"username": "tanaka", "password": PASSWORD})
    assert no_token.status_code == 400
    assert "expired" in no_token.get_data(as_text=True)
    wrong_token = client.post(
        "/ta/login", data={"username": "tanaka", "password": PASSWORD, "csrf_token": "x" * 43}
    )
    assert wrong_token.status_code == 400
    wrong = log_in(client, password="not the password")
    assert wrong.status_code == 401
    assert "Wrong username or password" in wrong.get_data(as_text=True)
    assert log_in(client, username="nobody").status_code == 401
    empty = log_in(client, password="")
    assert empty.status_code == 401


def test_login_redirects_only_to_this_site(app: Flask, client: FlaskClient) -> None:
    create_user(app)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        res = client.post(
            "/ta/login",
            data={
                "username": "tanaka",
                "password": PASSWORD,
                "csrf_token": csrf_token(client),
                "next": target,
            },
        )
        assert res.status_code == 302 and res.headers["Location"] == "/ta/entries/", target
        post(client, "/ta/logout")


def test_failed_logins_are_throttled(app: Flask, client: FlaskClient) -> None:
    create_user(app)
    for _ in range(5):
        assert log_in(client, password="wrong password!").status_code == 401
    blocked = log_in(client)  # even the right password, for a while
    assert blocked.status_code == 429
    assert "Too many" in blocked.get_data(as_text=True)


def test_a_deactivated_account_loses_its_session(app: Flask, runner: FlaskCliRunner) -> None:
    client = ta_client(app)
    assert client.get("/ta/entries/").status_code == 200
    assert runner.invoke(args=["users", "deactivate", "tanaka"]).exit_code == 0
    assert client.get("/ta/entries/").status_code == 302
    assert log_in(app.test_client()).status_code == 401
    assert runner.invoke(args=["users", "activate", "tanaka"]).exit_code == 0
    assert client.get("/ta/entries/").status_code == 200


def test_set_password(app: Flask, runner: FlaskCliRunner) -> None:
    create_user(app)
    new = "another long password"
    result = runner.invoke(args=["users", "set-password", "tanaka", "--password-stdin"], input=new)
    assert result.exit_code == 0, result.output
    assert log_in(app.test_client()).status_code == 401
    assert log_in(app.test_client(), password=new).status_code == 302


def test_unsafe_requests_need_the_csrf_token(app: Flask) -> None:
    client = ta_client(app)
    for path in (
        "/ta/entries/new",
        "/ta/entries/agi/edit",
        "/ta/entries/agi/delete",
        "/ta/entries/agi/restore",
        "/ta/queue/resolve",
        "/ta/logout",
    ):
        assert client.post(path, data={"slug": "x"}).status_code == 400, path
    res = client.post("/ta/preview", json={"markdown": "hi", "keys": []})
    assert res.status_code == 400 and res.json["error"]["code"] == "csrf_failed"
    ok = client.post(
        "/ta/preview",
        json={"markdown": "hi", "keys": []},
        headers={"X-CSRF-Token": csrf_token(client)},
    )
    assert ok.status_code == 200
    with app.extensions["core"].sessions() as session:
        assert session.scalar(select(User).where(User.username == "tanaka")) is not None
    assert client.get("/api/v1/entries/agi").status_code == 200  # not deleted


def test_pages_are_private_and_hardened(app: Flask) -> None:
    client = ta_client(app)
    res = client.get("/ta/entries/")
    assert res.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in res.headers["Content-Security-Policy"]
    assert res.headers["X-Frame-Options"] == "DENY"


def test_admin_role_can_log_in(app: Flask) -> None:
    with transaction(app.extensions["core"].sessions) as session:
        accounts.create_user(session, "boss", PASSWORD, role="admin")
    assert log_in(app.test_client(), username="boss").status_code == 302


def test_a_ta_session_can_write_through_the_api(app: Flask) -> None:
    body = {
        "slug": "from-the-api",
        "course": "nyu-dl-f20",
        "question": {"en": "Can a logged-in TA write through the JSON API?"},
        "answer": {"en": "Yes: the TA session counts as a token with every scope."},
    }
    anonymous = app.test_client().post("/api/v1/entries", json=body)
    assert anonymous.status_code == 401
    client = ta_client(app)
    res = client.post("/api/v1/entries", json=body, headers={"X-CSRF-Token": csrf_token(client)})
    assert res.status_code == 201, res.json
    with app.extensions["core"].sessions() as session:
        entry = find_entry(session, "from-the-api")
        assert entry.revisions[-1].author.endswith("tanaka")


def _login_from(client: FlaskClient, address: str, username: str, password: str) -> int:
    token = csrf_token(client)
    res = client.post(
        "/ta/login",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )
    return res.status_code


@pytest.fixture
def redis_limits() -> Iterator[dict[str, str]]:
    """Settings for web replicas counting in one Redis (each test its own key prefix)."""
    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis server at 127.0.0.1:6379")
    prefix = f"ra-test-{uuid.uuid4().hex[:8]}"
    yield {"RATELIMIT_STORAGE_URI": url, "RATELIMIT_KEY_PREFIX": prefix}
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"*{prefix}*"):
        client.delete(key)


def test_the_login_throttle_is_shared_by_replicas_and_spares_other_addresses(
    make_app: Callable[..., Flask], redis_limits: dict[str, str]
) -> None:
    web1, web2 = make_app(**redis_limits), make_app(**redis_limits)  # one database
    create_user(web1)
    clients = [web1.test_client(), web2.test_client()]
    attacker, ta_address = "203.0.113.7", "198.51.100.20"
    for i in range(5):  # a new connection per try, alternating replicas
        assert _login_from(clients[i % 2], attacker, "tanaka", "wrong password!") == 401
    assert _login_from(clients[1], attacker, "tanaka", PASSWORD) == 429
    assert _login_from(clients[0], attacker, "tanaka", PASSWORD) == 429
    # The TA, from an address that has not been failing, still gets in.
    assert _login_from(web2.test_client(), ta_address, "tanaka", PASSWORD) == 302


def test_one_address_cannot_spray_passwords_over_many_usernames(app: Flask) -> None:
    create_user(app)
    client = app.test_client()
    sprayer = "203.0.113.9"
    limit = int(app.config["LOGIN_LIMIT_PER_ADDRESS"].split()[0])
    for i in range(limit):
        assert _login_from(client, sprayer, f"user{i}", "a guessed password") == 401
    assert _login_from(client, sprayer, "someone-else", "a guessed password") == 429
    assert _login_from(app.test_client(), "198.51.100.21", "tanaka", PASSWORD) == 302


def test_behind_a_trusted_proxy_clients_are_told_apart_and_https_is_seen(
    make_app: Callable[..., Flask],
) -> None:
    proxied = make_app(TRUSTED_PROXY_HOPS=1)
    create_user(proxied)
    client = proxied.test_client()
    for _ in range(5):
        token = csrf_token(client)
        res = client.post(
            "/ta/login",
            data={"username": "tanaka", "password": "wrong password!", "csrf_token": token},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
        assert res.status_code == 401
    token = csrf_token(client)
    ok = client.post(
        "/ta/login",
        data={"username": "tanaka", "password": PASSWORD, "csrf_token": token},
        headers={"X-Forwarded-For": "198.51.100.22", "X-Forwarded-Proto": "https"},
    )
    assert ok.status_code == 302  # another client behind the same proxy
    cookie = next(v for k, v in ok.headers.items() if k == "Set-Cookie" and "session=" in v)
    assert "Secure" in cookie
    # Without trusted hops the headers are ignored: the proxy's address is the client's.
    direct = make_app()  # the same database: the same account
    plain = direct.test_client()
    token = csrf_token(plain)
    res = plain.post(
        "/ta/login",
        data={"username": "tanaka", "password": PASSWORD, "csrf_token": token},
        headers={"X-Forwarded-Proto": "https"},
    )
    cookie = next(v for k, v in res.headers.items() if k == "Set-Cookie" and "session=" in v)
    assert res.status_code == 302 and "Secure" not in cookie


def test_a_session_writes_through_the_api_only_with_its_csrf_token(app: Flask) -> None:
    from tests.api_fixtures import entry_body, row_counts

    client = ta_client(app)
    before = row_counts(app)
    forged = client.post("/api/v1/entries", json=entry_body())
    assert forged.status_code == 403 and forged.json["error"]["code"] == "csrf_failed"
    assert row_counts(app) == before
    # Asking needs no session: without the token it is an anonymous ask, not refused.
    assert (
        client.post("/api/v1/ask", json={"question": "What is double descent?"}).status_code == 200
    )
    made = client.post(
        "/api/v1/entries", json=entry_body(), headers={"X-CSRF-Token": csrf_token(client)}
    )
    assert made.status_code == 201, made.json
