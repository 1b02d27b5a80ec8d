"""GET /api/v1/entries (paging, filters), /api/v1/entries/{slug}, /healthz, sanitising."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from knowledge.db import transaction
from knowledge.entry_store import entry_data, find_entry, upsert_entry
from knowledge.schema import EntryData


def test_list_pages_through_everything(client: FlaskClient) -> None:
    seen = []
    for page in (1, 2, 3):
        res = client.get(f"/api/v1/entries?per_page=3&page={page}")
        assert res.status_code == 200
        assert res.json["total"] == 8 and res.json["per_page"] == 3
        seen += [item["slug"] for item in res.json["items"]]
    assert len(seen) == len(set(seen)) == 8
    assert client.get("/api/v1/entries?page=4&per_page=3").json["items"] == []


def test_list_filters(client: FlaskClient) -> None:
    res = client.get("/api/v1/entries?q=attention")
    assert [i["slug"] for i in res.json["items"]] == ["attention-sqrt-d-scaling"]
    res = client.get("/api/v1/entries", query_string={"q": "二重降下"})
    assert [i["slug"] for i in res.json["items"]] == ["double-descent"]
    assert client.get("/api/v1/entries?course=nyu-dl-f20").json["total"] == 8
    assert client.get("/api/v1/entries?course=nope").json["total"] == 0
    assert client.get("/api/v1/entries?q=100%25_").json["total"] == 0  # LIKE wildcards are literal


def test_list_rejects_bad_paging(client: FlaskClient) -> None:
    for query in ("page=0", "page=x", "per_page=101", "per_page=-1"):
        res = client.get(f"/api/v1/entries?{query}")
        assert res.status_code == 400, query
        assert res.json["error"]["field"] in ("page", "per_page")


def test_entry_detail(client: FlaskClient) -> None:
    res = client.get("/api/v1/entries/double-descent")
    assert res.status_code == 200
    body = res.json
    assert body["slug"] == "double-descent" and body["version"] == 1
    assert set(body["answer"]) == {"en", "ja"}
    assert body["runner"]["name"] == "double_descent"
    assert body["citations"][0]["number"] == 1
    assert 'href="#cite-' in body["answer"]["en"]["html"]


def test_unknown_slug_and_path_tricks(client: FlaskClient) -> None:
    for path in ("/api/v1/entries/nope", "/api/v1/entries/..%2F..%2Fetc%2Fpasswd", "/api/v1/nope"):
        res = client.get(path)
        assert res.status_code == 404
        assert res.json["error"]["code"] in ("unknown_slug", "not_found")


def test_healthz(app: Flask, client: FlaskClient) -> None:
    res = client.get("/healthz")
    assert res.status_code == 200
    assert res.json["status"] == "ok" and res.json["entries"] == 8
    client.post("/api/v1/ask", json={"question": "What is double descent?"})
    with transaction(app.extensions["core"].sessions) as session:
        data = entry_data(find_entry(session, "double-descent"))
        upsert_entry(session, data.model_copy(update={"tags": ["edited"]}), author="test")
    app.extensions["core"].retriever.refresh()
    index = client.get("/healthz").json["index"]
    assert index["loaded"] and index["version"] == client.get("/healthz").json["knowledge_version"]
    # The edit was caught up on the loaded base: one changed entry, no full reload.
    assert index["source"] == "database" and index["changed_entries"] == 1
    assert index["base_version"] == index["version"] - 1 and index["graph"] is False


def test_raw_html_and_javascript_links_never_reach_a_page(app: Flask, client: FlaskClient) -> None:
    data = EntryData.model_validate(
        {
            "slug": "xss",
            "course": "nyu-dl-f20",
            "question": {"en": "Is this entry hostile to browsers?"},
            "answer": {
                "en": "Hi <script>alert(1)</script> [click](javascript:alert(2)) "
                '<img src=x onerror="alert(3)"> [ok](https://example.org)'
            },
        }
    )
    with transaction(app.extensions["core"].sessions) as session:
        upsert_entry(session, data, author="test")
    html = client.get("/api/v1/entries/xss").json["answer"]["en"]["html"]
    assert "<script" not in html and "<img" not in html
    assert 'href="javascript' not in html and "[click](javascript:alert(2))" in html  # inert text
    assert 'href="https://example.org"' in html
    page = client.get("/entries/xss").get_data(as_text=True)
    assert "<script>alert" not in page and 'href="javascript' not in page
    assert '<img src=x onerror="alert(3)">' not in page
    res = client.post("/api/v1/ask", json={"question": "Is this entry hostile to browsers?"})
    assert res.json["answer"]["slug"] == "xss"
    assert "<script" not in res.json["answer"]["answer_html"]


def test_feedback(client: FlaskClient) -> None:
    qid = client.post("/api/v1/ask", json={"question": "What is double descent?"}).json[
        "question_id"
    ]
    res = client.post("/api/v1/feedback", json={"question_id": qid, "helpful": True})
    assert res.status_code == 201
    assert (
        client.post("/api/v1/feedback", json={"question_id": qid, "helpful": "yes"}).status_code
        == 400
    )
    assert (
        client.post("/api/v1/feedback", json={"question_id": 10**9, "helpful": True}).status_code
        == 404
    )


def test_a_vote_can_be_changed_with_a_reason_and_a_better_entry(client: FlaskClient) -> None:
    from sqlalchemy import select

    from knowledge.tables import Feedback

    asked = client.post("/api/v1/ask", json={"question": "How do I bake sourdough bread?"}).json
    qid = asked["question_id"]
    first = client.post("/api/v1/feedback", json={"question_id": qid, "helpful": True})
    assert first.status_code == 201
    changed = client.post(
        "/api/v1/feedback",
        json={
            "question_id": qid,
            "helpful": False,
            "comment": "It is about the course's notes on bread, really.",
            "suggested_slug": "agi",
        },
    )
    assert changed.status_code == 200 and changed.json["id"] == first.json["id"]
    assert changed.json["suggested_slug"] == "agi" and changed.json["helpful"] is False
    unknown = client.post(
        "/api/v1/feedback", json={"question_id": qid, "helpful": False, "suggested_slug": "nope"}
    )
    assert unknown.status_code == 404 and unknown.json["error"]["field"] == "suggested_slug"
    with client.application.extensions["core"].sessions() as session:
        rows = session.scalars(select(Feedback).where(Feedback.ask_id == qid)).all()
        assert [(r.helpful, r.suggested_slug) for r in rows] == [(False, "agi")]
        assert rows[0].comment and rows[0].updated_at is not None


def test_pages_render(client: FlaskClient) -> None:
    assert "Ask a question" in client.get("/").get_data(as_text=True)
    page = client.get("/entries/agi?lang=ja").get_data(as_text=True)
    assert "意見" in page
    assert client.get("/entries/nope").status_code == 404
