"""Helpers for the TA workspace tests: accounts, logging in, CSRF tokens, entry forms."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from knowledge import accounts
from knowledge.db import transaction

PASSWORD = "correct horse battery"


def create_user(app: Flask, username: str = "tanaka", password: str = PASSWORD, **kw: Any) -> None:
    with transaction(app.extensions["core"].sessions) as session:
        accounts.create_user(session, username, password, **kw)


def csrf_token(client: FlaskClient) -> str:
    """This client's session CSRF token (a page render creates it)."""
    with client.session_transaction() as session:
        token = session.get("csrf")
    if token is None:
        client.get("/ta/login")
        with client.session_transaction() as session:
            token = session["csrf"]
    return str(token)


def log_in(client: FlaskClient, username: str = "tanaka", password: str = PASSWORD) -> Any:
    token = csrf_token(client)
    return client.post(
        "/ta/login",
        data={"username": username, "password": password, "csrf_token": token},
    )


def ta_client(app: Flask) -> FlaskClient:
    """A client logged in as a fresh TA account."""
    create_user(app)
    client = app.test_client()
    response = log_in(client)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None) -> Any:
    """A form POST with the session's CSRF token."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client)})


def post_json(client: FlaskClient, path: str, body: Any) -> Any:
    return client.post(path, json=body, headers={"X-CSRF-Token": csrf_token(client)})


def entry_form(**overrides: Any) -> dict[str, Any]:
    """A valid new-entry form (English only, one citation, no experiment)."""
    form = {
        "slug": "why-relu",
        "course": "nyu-dl-f20",
        "tags": "activations, relu",
        "question_en": "Why do deep networks use ReLU instead of the sigmoid function?",
        "aliases_en": "Why is ReLU preferred over sigmoid?\nWhat is wrong with sigmoid units?",
        "answer_en": "Sigmoids saturate, so their gradients vanish in deep stacks [@glorot2011].",
        "question_ja": "",
        "aliases_ja": "",
        "answer_ja": "",
        "cite-0-key": "glorot2011",
        "cite-0-title": "Deep Sparse Rectifier Neural Networks",
        "cite-0-authors": "Xavier Glorot; Antoine Bordes; Yoshua Bengio",
        "cite-0-year": "2011",
        "cite-0-venue": "AISTATS",
        "cite-0-url": "https://proceedings.mlr.press/v15/glorot11a.html",
        "cite-0-doi": "",
        "runner": "",
    }
    form.update(overrides)
    return form
