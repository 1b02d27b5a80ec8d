"""The OpenAPI document: valid OpenAPI 3.1, complete, and true to real responses; docs page."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import jsonschema_rs
import pytest
from flask import Flask
from flask.testing import FlaskClient
from schemathesis.specs.openapi.definitions import OPENAPI_31
from werkzeug.test import TestResponse

from knowledge.text import normalize
from service.api_models import NOT_BLANK, SPACE_CHARS
from tests.api_fixtures import bearer, entry_body, make_token

METHODS = {"get", "put", "post", "delete", "patch"}
UNDOCUMENTED = {"static", "api_docs.show"}  # asset routes


@pytest.fixture
def spec(client: FlaskClient) -> dict[str, Any]:
    res = client.get("/api/v1/openapi.json")
    assert res.status_code == 200 and res.mimetype == "application/json"
    return res.json


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_document_is_valid_openapi_31(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    jsonschema_rs.Draft202012Validator(OPENAPI_31).validate(spec)
    for name, schema in spec["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_every_ref_resolves(spec: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        target: Any = spec
        assert ref.startswith("#/"), ref
        for part in ref[2:].split("/"):
            target = target[part]


def test_blank_question_pattern_matches_the_api() -> None:
    """A question the document calls blank is exactly one the API finds empty."""
    not_blank = re.compile(NOT_BLANK)
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        assert (normalize(char.replace("\x00", "")) == "") == (not not_blank.search(char)), hex(
            code
        )


def test_space_class_is_what_strip_removes() -> None:
    """Entry strings are stripped before their length is checked; the document's patterns
    for that use this class."""
    space = re.compile(f"[{SPACE_CHARS}]")
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        assert char.isspace() == bool(space.fullmatch(char)) == (char.strip() == ""), hex(code)


def flask_to_openapi(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", r"{\1}", rule)


def test_every_api_route_is_documented_and_nothing_else(app: Flask, spec: dict[str, Any]) -> None:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED or rule.endpoint.endswith(".static"):
            continue
        if not (rule.rule.startswith("/api/") or rule.rule == "/healthz"):
            continue
        for method in rule.methods or ():
            if method.lower() in METHODS:
                routes.add((flask_to_openapi(rule.rule), method.lower()))
    documented = {(path, method) for path, method, _ in operations(spec)}
    assert routes == documented


def test_operations_are_described_and_scoped_like_the_views(
    app: Flask, spec: dict[str, Any]
) -> None:
    adapter = app.url_map.bind("localhost")
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids))
    for path, method, op in operations(spec):
        assert op["summary"] and op["responses"], (path, method)
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)
        concrete = re.sub(r"\{[a-z_]+\}", "1", path).replace("{slug}", "agi")
        endpoint, _ = adapter.match(concrete, method=method.upper())
        view = app.view_functions[endpoint]
        scope = getattr(view, "required_scope", None)
        anonymous = getattr(view, "anonymous", True)
        requirements = op["security"]
        if not hasattr(view, "required_scope"):
            assert requirements == [], path  # healthz and this document are open
            continue
        assert ({} in requirements) == anonymous, (path, method)
        bearer_scopes = [r["bearerAuth"] for r in requirements if "bearerAuth" in r]
        assert bearer_scopes == [[scope] if scope else []], (path, method)
        if op.get("requestBody"):
            assert "413" in op["responses"] and "400" in op["responses"]


# -- real responses validate against the document -----------------------------------


def check(spec: dict[str, Any], path: str, method: str, res: TestResponse) -> None:
    """The response's status, headers and JSON body are what the document promises."""
    op = spec["paths"][path][method]
    documented = op["responses"].get(str(res.status_code))
    assert documented is not None, (path, method, res.status_code, res.get_data(as_text=True))
    for name, header in documented.get("headers", {}).items():
        if header.get("required"):
            assert name in res.headers, (path, res.status_code, name)
    content = documented.get("content")
    if not content:
        assert res.data == b""
        return
    media, body = next(iter(content.items()))
    assert res.mimetype == media
    if media == "application/json":
        root = {**body["schema"], "components": spec["components"]}
        errors = [
            f"{list(err.instance_path)}: {err.message[:200]}"
            for err in jsonschema_rs.Draft202012Validator(root).iter_errors(res.json)
        ]
        assert not errors, (path, method, res.status_code, errors[:5])


def test_real_responses_match_the_document(
    app: Flask, client: FlaskClient, spec: dict[str, Any]
) -> None:
    write = bearer(make_token(app, "write"))
    ask_only = bearer(make_token(app, "ask"))
    e, es, r = "/api/v1/entries/{slug}", "/api/v1/entries", "/api/v1/entries/{slug}/runs"
    ask, fb = "/api/v1/ask", "/api/v1/feedback"
    dd_runs = "/api/v1/entries/double-descent/runs"
    agi = entry_body(slug="agi", runner=None)
    cases: list[tuple[str, str, str, dict[str, Any]]] = [
        ("/healthz", "get", "/healthz", {}),
        ("/api/v1/openapi.json", "get", "/api/v1/openapi.json", {}),
        (ask, "post", ask, {"json": {"question": "What is double descent?"}}),
        (ask, "post", ask, {"json": {"question": "When is the exam?"}}),
        (ask, "post", ask, {"json": {"question": " "}}),
        (ask, "post", ask, {"json": {"question": "x", "top_k": 0}}),
        (ask, "post", ask, {"json": {"q": "x"}}),
        (ask, "post", ask, {"data": "x" * 300_000}),
        (fb, "post", fb, {"json": {"question_id": 1, "helpful": True}}),
        (fb, "post", fb, {"json": {"question_id": 10**9, "helpful": True}}),
        (es, "get", f"{es}?q=attention", {}),
        (es, "get", f"{es}?page=0", {}),
        (es, "get", es, {"headers": bearer("ra_nope")}),
        (e, "get", f"{es}/agi", {}),
        (e, "get", f"{es}/nope", {}),
        (es, "post", es, {"json": entry_body(), "headers": write}),
        (es, "post", es, {"json": entry_body(), "headers": write}),
        (es, "post", es, {"json": entry_body(slug="X"), "headers": write}),
        (es, "post", es, {"json": entry_body()}),
        (es, "post", es, {"json": entry_body(), "headers": ask_only}),
        (e, "put", f"{es}/agi", {"json": agi, "headers": write}),
        (e, "put", f"{es}/agi", {"json": agi, "headers": {**write, "If-Match": '"9"'}}),
        (e, "put", f"{es}/agi", {"json": {**agi, "version": 9}, "headers": write}),
        (e, "put", f"{es}/agi", {"json": agi, "headers": {**write, "If-Match": '"1"'}}),
        (e, "delete", f"{es}/api-made-entry?version=1", {"headers": write}),
        (e, "delete", f"{es}/api-made-entry", {"headers": write}),
        ("/api/v1/experiments", "get", "/api/v1/experiments", {}),
        (r, "post", dd_runs, {"json": {}}),
        (r, "post", f"{es}/agi/runs", {}),
        (r, "post", dd_runs, {"json": {"params": {"ridge": -1}}}),
        ("/api/v1/runs/{run_id}", "get", "/api/v1/runs/nope", {}),
        ("/api/v1/runs/{run_id}/figures/{number}.png", "get", "/api/v1/runs/no/figures/0.png", {}),
    ]
    seen: set[tuple[str, str, int]] = set()
    for path, method, url, kwargs in cases:
        res = getattr(client, method)(url, **kwargs)
        check(spec, path, method, res)
        seen.add((path, method, res.status_code))
        if path == r and res.status_code == 202:
            check(spec, "/api/v1/runs/{run_id}", "get", client.get(res.headers["Location"]))
    expected = {
        (ask, "post", 200), (ask, "post", 400), (ask, "post", 413), (fb, "post", 201),
        (fb, "post", 404), (es, "post", 201), (es, "post", 409), (es, "post", 400),
        (es, "post", 401), (es, "post", 403), (es, "get", 401), (e, "put", 428),
        (e, "put", 412), (e, "put", 409), (e, "put", 200), (e, "delete", 204),
        (e, "delete", 428), (r, "post", 202), (r, "post", 409), (r, "post", 400),
    }  # fmt: skip
    assert expected <= seen, expected - seen


def test_rate_limited_response_matches_the_document(
    app: Flask, client: FlaskClient, spec: dict[str, Any]
) -> None:
    app.config["RATELIMIT_ASK"] = "1 per minute"
    client.post("/api/v1/ask", json={"question": "What is double descent?"})
    res = client.post("/api/v1/ask", json={"question": "What is double descent?"})
    assert res.status_code == 429
    check(spec, "/api/v1/ask", "post", res)


# -- the docs page ---------------------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


def test_docs_page_uses_local_assets_only(client: FlaskClient) -> None:
    assert client.get("/api/docs").status_code in (301, 308)
    res = client.get("/api/docs/")
    assert res.status_code == 200 and res.mimetype == "text/html"
    html = res.get_data(as_text=True)
    assert "/api/v1/openapi.json" in html and '"validatorUrl": null' in html
    parser = _Assets()
    parser.feed(html)
    assert len(parser.urls) >= 3
    for url in parser.urls:
        assert url.startswith("/api/docs/"), url  # nothing from a CDN
        with client.get(url) as asset:  # a file response: close it
            assert asset.status_code == 200, url
            if url.endswith(".js"):
                assert b"swagger" in asset.data.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    policy = dict(
        part.strip().split(" ", 1) for part in res.headers["Content-Security-Policy"].split(";")
    )
    assert "unsafe" not in policy["script-src"] and "'sha256-" in policy["script-src"]
    assert policy["frame-ancestors"] == "'none'" and res.headers["X-Frame-Options"] == "DENY"
