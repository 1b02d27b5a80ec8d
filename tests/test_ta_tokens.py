"""API tokens on the TA pages: shown once, stored hashed, usable, revocable."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import func, select

from knowledge.tables import ApiToken
from tests.ta_support import post, ta_client


def _count(app: Flask) -> int:
    with app.extensions["core"].sessions() as session:
        return session.scalar(select(func.count()).select_from(ApiToken)) or 0


def test_ta_creates_uses_and_revokes_a_token(app: Flask) -> None:
    client = ta_client(app)
    assert client.get("/ta/tokens/").status_code == 200
    res = post(client, "/ta/tokens/", {"name": "forum bot", "scopes": ["ask", "write"]})
    assert res.status_code == 201
    secret = re.search(r'id="token-secret">(ra_[A-Za-z0-9_-]+)<', res.get_data(as_text=True))
    assert secret, "the new secret is shown once"
    with app.extensions["core"].sessions() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    assert secret.group(1) not in stored  # only the hash is kept
    # The token works on the API, then stops working once revoked.
    bearer = {"Authorization": f"Bearer {secret.group(1)}"}
    api = app.test_client()
    assert (
        api.post(
            "/api/v1/ask", json={"question": "What is double descent?"}, headers=bearer
        ).status_code
        == 200
    )
    assert secret.group(1) not in client.get("/ta/tokens/").get_data(as_text=True)
    with app.extensions["core"].sessions() as session:
        token_id = session.scalars(select(ApiToken.id)).one()
    assert post(client, f"/ta/tokens/{token_id}/revoke").status_code == 200
    res = api.post("/api/v1/ask", json={"question": "What is double descent?"}, headers=bearer)
    assert res.status_code == 401 and res.json["error"]["code"] == "token_revoked"


def test_bad_token_forms_store_nothing(app: Flask) -> None:
    client = ta_client(app)
    for form in (
        {"name": "", "scopes": ["ask"]},
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["ask"], "expires_days": "soon"},
        {"name": "x", "scopes": ["ask"], "expires_days": "0"},
    ):
        assert post(client, "/ta/tokens/", form).status_code == 400, form
    assert _count(app) == 0
    assert post(client, "/ta/tokens/999/revoke").status_code == 404


def test_token_pages_need_login_and_csrf(app: Flask) -> None:
    anonymous = app.test_client()
    assert anonymous.get("/ta/tokens/").status_code == 302
    client = ta_client(app)
    res = client.post("/ta/tokens/", data={"name": "x", "scopes": ["ask"]})  # no CSRF token
    assert res.status_code == 400
    assert _count(app) == 0
