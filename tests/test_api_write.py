"""Write API: create, update, delete; per-field errors; If-Match/version; revisions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from knowledge.tables import Entry, EntryRevision
from tests.api_fixtures import bearer, entry_body, make_token, row_counts


@pytest.fixture
def writer(app: Flask) -> dict[str, str]:
    return bearer(make_token(app, "write", name="ta-script"))


def revisions(app: Flask, slug: str) -> list[tuple[int, str, str]]:
    with app.extensions["core"].sessions() as session:
        rows = session.execute(
            select(EntryRevision.number, EntryRevision.action, EntryRevision.author)
            .join(Entry)
            .where(Entry.slug == slug)
            .order_by(EntryRevision.number)
        ).all()
    return [tuple(r) for r in rows]


def create(client: FlaskClient, headers: dict[str, str], **overrides: Any) -> Any:
    res = client.post("/api/v1/entries", json=entry_body(**overrides), headers=headers)
    assert res.status_code == 201, res.json
    return res


def test_create_returns_the_entry_with_etag_and_location(
    app: Flask, client: FlaskClient, writer: dict[str, str]
) -> None:
    res = create(client, writer)
    assert res.headers["ETag"] == '"1"'
    assert res.headers["Location"].endswith("/api/v1/entries/api-made-entry?course=nyu-dl-f20")
    body = res.json
    assert body["slug"] == "api-made-entry" and body["version"] == 1
    assert body["runner"] == {"name": "double_descent", "params": {"ridge": 0.01}}
    assert body["citations"][0]["key"] == "krogh1992"
    assert 'href="#cite-krogh1992"' in body["answer"]["en"]["html"]
    assert revisions(app, "api-made-entry") == [(1, "create", "token:ta-script")]
    got = client.get("/api/v1/entries/api-made-entry")
    assert got.status_code == 200 and got.headers["ETag"] == '"1"'
    # The new entry is searchable at once (the index follows the knowledge version).
    asked = client.post(
        "/api/v1/ask", json={"question": "Why does weight decay help generalisation in small nets?"}
    ).json
    assert asked["answer"] and asked["answer"]["slug"] == "api-made-entry"


def test_create_refuses_a_taken_slug(
    app: Flask, client: FlaskClient, writer: dict[str, str]
) -> None:
    before = row_counts(app)
    res = client.post("/api/v1/entries", json=entry_body(slug="agi"), headers=writer)
    assert res.status_code == 409
    assert res.json["error"] == {
        "code": "slug_taken",
        "message": "An entry with slug 'agi' exists.",
        "field": "slug",
    }
    assert row_counts(app) == before


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"slug": "Not A Slug"}, "slug", "string_pattern_mismatch"),
        ({"question": {"en": "?"}}, "question.en", "string_too_short"),
        ({"question": {"fr": "Pourquoi ?"}}, "question.fr", "literal_error"),
        ({"answer": {"ja": "答え"}}, "answer", "value_error"),
        ({"answer": {"en": "See [@nobody2020]."}}, "answer.en", "value_error"),
        ({"tags": ["Bad Tag"]}, "tags.0", "string_pattern_mismatch"),
        ({"citations": [{"key": "x"}]}, "citations.0.title", "missing"),
        ({"runner": {"name": "rm_rf", "params": {}}}, "runner.name", "unknown_experiment"),
        ({"runner": {"name": "double_descent", "params": {"ridge": 99}}}, "runner.params.ridge",
         "less_than_equal"),
        ({"runner": {"name": "double_descent", "params": {"code": "import os"}}},
         "runner.params.code", "extra_forbidden"),
        ({"question": "just a string"}, "question", "dict_type"),
        ({"course": "c" * 65}, "course", "string_too_long"),  # longer than its column
        ({"citations": [{**entry_body()["citations"][0], "venue": "v" * 301}]},
         "citations.0.venue", "string_too_long"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_field(
    app: Flask,
    client: FlaskClient,
    writer: dict[str, str],
    overrides: dict[str, Any],
    field: str,
    code: str,
) -> None:
    before = row_counts(app)
    res = client.post("/api/v1/entries", json=entry_body(**overrides), headers=writer)
    assert res.status_code == 400, res.json
    error = res.json["error"]
    assert error["code"] == "validation_failed"
    assert error["field"] == field
    assert {"field": field, "code": code} == {
        k: v for k, v in error["errors"][0].items() if k != "message"
    }
    assert row_counts(app) == before


def test_every_invalid_field_is_listed(client: FlaskClient, writer: dict[str, str]) -> None:
    body = entry_body(slug="UPPER", tags=["ok", "NOT OK"], question={"en": "x"})
    errors = client.post("/api/v1/entries", json=body, headers=writer).json["error"]["errors"]
    assert {e["field"] for e in errors} == {"slug", "tags.1", "question.en"}
    assert all(e["message"] for e in errors)


def test_unknown_and_missing_fields(client: FlaskClient, writer: dict[str, str]) -> None:
    res = client.post("/api/v1/entries", json={**entry_body(), "votes": 3}, headers=writer)
    assert res.status_code == 400 and res.json["error"]["field"] == "votes"
    res = client.post("/api/v1/entries", json={"slug": "only-a-slug"}, headers=writer)
    assert res.status_code == 400
    fields = {e["field"] for e in res.json["error"]["errors"]}
    assert {"course", "question", "answer"} <= fields


def test_update_with_if_match_records_a_revision(
    app: Flask, client: FlaskClient, writer: dict[str, str]
) -> None:
    create(client, writer)
    body = entry_body(
        citations=[
            {
                "key": "krogh1992",
                "title": "A Simple Weight Decay Can Improve Generalization",
                "authors": ["Anders Krogh", "John A. Hertz"],
                "year": 1992,
                "venue": "Advances in NIPS 4",
                "doi": "10.5555/example.weight-decay",
            }
        ],
        runner={"name": "double_descent", "params": {"ridge": 0.1, "n_train": 120}},
    )
    del body["slug"], body["course"]  # optional on PUT: they cannot change
    res = client.put(
        "/api/v1/entries/api-made-entry", json=body, headers={**writer, "If-Match": '"1"'}
    )
    assert res.status_code == 200, res.json
    assert res.headers["ETag"] == '"2"' and res.json["version"] == 2
    assert res.json["citations"][0]["venue"] == "Advances in NIPS 4"
    assert res.json["citations"][0]["url"] == "https://doi.org/10.5555/example.weight-decay"
    assert res.json["runner"]["params"] == {"ridge": 0.1, "n_train": 120}
    assert [r[1] for r in revisions(app, "api-made-entry")] == ["create", "update"]
    # The same content again is accepted and changes nothing.
    same = client.put(
        "/api/v1/entries/api-made-entry", json=body, headers={**writer, "If-Match": '"2"'}
    )
    assert same.status_code == 200 and same.headers["ETag"] == '"2"'
    assert len(revisions(app, "api-made-entry")) == 2


def test_stale_writes_are_refused(app: Flask, client: FlaskClient, writer: dict[str, str]) -> None:
    create(client, writer)
    url = "/api/v1/entries/api-made-entry"
    first = entry_body(answer={"en": "First edit of the answer [@krogh1992]."})
    second = entry_body(answer={"en": "Second, concurrent edit [@krogh1992]."})
    assert client.put(url, json=first, headers={**writer, "If-Match": '"1"'}).status_code == 200
    before = row_counts(app)
    # Both edited version 1; the second must not overwrite the first.
    res = client.put(url, json=second, headers={**writer, "If-Match": '"1"'})
    assert res.status_code == 412
    assert res.json["error"]["code"] == "precondition_failed"
    assert res.json["error"]["current_version"] == 2 and res.headers["ETag"] == '"2"'
    res = client.put(url, json={**second, "version": 1}, headers=writer)
    assert res.status_code == 409
    assert res.json["error"]["code"] == "version_conflict"
    assert res.json["error"]["field"] == "version"
    assert row_counts(app) == before
    assert "First edit" in client.get(url).json["answer"]["en"]["markdown"]
    ok = client.put(url, json={**second, "version": 2}, headers=writer)
    assert ok.status_code == 200 and ok.json["version"] == 3


@pytest.mark.parametrize(
    ("headers", "extra", "status", "code"),
    [
        ({}, {}, 428, "precondition_required"),
        ({"If-Match": "*"}, {}, 428, "precondition_required"),
        ({"If-Match": "abc"}, {}, 400, "invalid_if_match"),
        ({"If-Match": '"1", "2"'}, {}, 400, "invalid_if_match"),
        ({"If-Match": '"1"'}, {"version": 2}, 409, "version_conflict"),
        ({"If-Match": '"2"'}, {"version": 1}, 412, "precondition_failed"),
        ({"If-Match": "0"}, {}, 412, "precondition_failed"),
        ({}, {"version": "1"}, 400, "wrong_type"),
        ({}, {"version": True}, 400, "wrong_type"),
        ({"If-Match": '"1"'}, {"slug": "other-slug"}, 400, "slug_mismatch"),
        ({"If-Match": '"1"'}, {"course": "other-course"}, 400, "course_mismatch"),
    ],
)
def test_update_preconditions(
    app: Flask,
    client: FlaskClient,
    writer: dict[str, str],
    headers: dict[str, str],
    extra: dict[str, Any],
    status: int,
    code: str,
) -> None:
    before = row_counts(app)
    body = {**entry_body(slug="agi"), **extra}
    res = client.put("/api/v1/entries/agi", json=body, headers={**writer, **headers})
    assert res.status_code == status, res.json
    assert res.json["error"]["code"] == code
    assert row_counts(app) == before


def test_update_unknown_slug_is_404(client: FlaskClient, writer: dict[str, str]) -> None:
    for slug in ("no-such-entry", "..", "UPPER"):
        res = client.put(
            f"/api/v1/entries/{slug}",
            json=entry_body(slug=slug),
            headers={**writer, "If-Match": '"1"'},
        )
        assert res.status_code in (400, 404), slug
    res = client.put(
        "/api/v1/entries/no-such-entry",
        json=entry_body(slug="no-such-entry"),
        headers={**writer, "If-Match": '"1"'},
    )
    assert res.status_code == 404 and res.json["error"]["code"] == "unknown_slug"


def test_a_slug_with_a_trailing_newline_names_no_entry(
    client: FlaskClient, writer: dict[str, str]
) -> None:
    res = client.delete("/api/v1/entries/agi%0A?version=1", headers=writer)
    assert res.status_code == 404 and res.json["error"]["code"] == "unknown_slug"
    assert client.get("/api/v1/entries/agi").status_code == 200


def test_delete_needs_a_current_version(
    app: Flask, client: FlaskClient, writer: dict[str, str]
) -> None:
    url = "/api/v1/entries/agi"
    before = row_counts(app)
    assert client.delete(url, headers=writer).status_code == 428
    assert client.delete(url, headers={**writer, "If-Match": '"7"'}).status_code == 412
    assert client.delete(f"{url}?version=7", headers=writer).status_code == 409
    assert client.delete(f"{url}?version=x", headers=writer).status_code == 400
    assert client.delete(url, headers={"If-Match": '"1"'}).status_code == 401
    assert row_counts(app) == before
    res = client.delete(url, headers={**writer, "If-Match": '"1"'})
    assert res.status_code == 204 and res.data == b""
    assert client.get(url).status_code == 404
    assert client.delete(f"{url}?version=2", headers=writer).status_code == 404
    assert [r[1] for r in revisions(app, "agi")] == ["create", "delete"]
    # A deleted slug can be created again; it keeps its history.
    again = client.post("/api/v1/entries", json=entry_body(slug="agi"), headers=writer)
    assert again.status_code == 201 and again.json["version"] == 3
    assert [r[1] for r in revisions(app, "agi")] == ["create", "delete", "create"]


def test_concurrent_updates_cannot_both_win(
    app: Flask, client: FlaskClient, writer: dict[str, str]
) -> None:
    create(client, writer)

    def put(i: int) -> int:
        with app.test_client() as c:
            body = entry_body(answer={"en": f"Concurrent edit number {i} [@krogh1992]."})
            res = c.put(
                "/api/v1/entries/api-made-entry", json=body, headers={**writer, "If-Match": '"1"'}
            )
            return res.status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(put, range(4)))
    assert statuses == [200, 412, 412, 412]
    assert client.get("/api/v1/entries/api-made-entry").json["version"] == 2
    assert [r[1] for r in revisions(app, "api-made-entry")] == ["create", "update"]
