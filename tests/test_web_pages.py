"""Student pages: the chat, permalinks, the interface language, headers and assets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from service.i18n import STRINGS

SERVICE = Path(__file__).resolve().parent.parent / "service"


def page(client: FlaskClient, path: str, **headers: str) -> str:
    res = client.get(path, headers=headers)
    assert res.status_code == 200, (path, res.status_code)
    return res.get_data(as_text=True)


def ui_strings(html: str) -> dict[str, str]:
    match = re.search(r'<script type="application/json" id="ui-strings">(.*?)</script>', html)
    assert match
    return json.loads(match.group(1))


def test_chat_in_english_by_default(client: FlaskClient) -> None:
    html = page(client, "/")
    assert '<html lang="en">' in html and "Ask a question about the course" in html
    assert ui_strings(html)["run.start"] == "Run the experiment"
    assert 'id="turn-template"' in html and 'id="experiment-template"' in html


def test_chat_in_japanese_from_accept_language(client: FlaskClient) -> None:
    html = page(client, "/", **{"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.5"})
    assert '<html lang="ja">' in html and "授業について質問しましょう" in html
    assert ui_strings(html)["run.start"] == "実験を実行する"
    assert ">English</a>" in html  # the switch offers the other language


def test_the_language_switch_is_remembered(client: FlaskClient) -> None:
    res = client.get("/lang/ja?next=/entries/agi")
    assert res.status_code == 302 and res.headers["Location"] == "/entries/agi"
    cookie = res.headers["Set-Cookie"]
    assert cookie.startswith("ra_lang=ja") and "SameSite=Lax" in cookie
    html = page(client, "/", **{"Accept-Language": "en"})
    assert '<html lang="ja">' in html
    client.get("/lang/en")
    assert '<html lang="en">' in page(client, "/", **{"Accept-Language": "ja"})


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_the_language_switch_never_leaves_the_site(client: FlaskClient, target: str) -> None:
    res = client.get("/lang/ja", query_string={"next": target})
    assert res.status_code == 302 and res.headers["Location"] == "/"


def test_unknown_language_is_404(client: FlaskClient) -> None:
    assert client.get("/lang/fr").status_code == 404


def test_permalink_follows_the_interface_language_unless_told(client: FlaskClient) -> None:
    english = page(client, "/entries/agi")
    assert "In your opinion, can humanity achieve" in english
    japanese = page(client, "/entries/agi", **{"Accept-Language": "ja"})
    assert "汎用人工知能" in japanese and '<html lang="ja">' in japanese
    explicit = page(client, "/entries/agi?lang=en", **{"Accept-Language": "ja"})
    assert "In your opinion" in explicit and '<html lang="ja">' in explicit
    assert "In your opinion" in page(client, "/entries/agi?lang=xx")


def test_permalink_has_citations_experiment_and_share_metadata(client: FlaskClient) -> None:
    html = page(client, "/entries/attention-sqrt-d-scaling")
    assert 'id="cite-vaswani2017"' in html and 'href="#cite-vaswani2017"' in html
    assert 'data-runner="attention_scaling"' in html and "data-params='{}'" in html
    assert '<meta property="og:title"' in html
    assert 'rel="canonical" href="http://localhost/entries/attention-sqrt-d-scaling"' in html
    assert "/static/run.js" in html
    assert "/static/run.js" not in page(client, "/entries/agi")  # no experiment there


def test_missing_entry_is_a_friendly_404(client: FlaskClient) -> None:
    res = client.get("/entries/no-such-entry")
    assert res.status_code == 404 and "Not found" in res.get_data(as_text=True)
    assert "Back to the questions" in res.get_data(as_text=True)


def test_pages_have_a_strict_content_security_policy(client: FlaskClient) -> None:
    for path in ("/", "/entries/agi", "/ta/login"):
        res = client.get(path)
        policy = res.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "object-src 'none'" in policy, path
        assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in client.get("/").headers  # students get no session


def test_pages_load_nothing_from_elsewhere(client: FlaskClient) -> None:
    for path in ("/", "/entries/attention-sqrt-d-scaling", "/ta/login"):
        html = page(client, path)
        for url in re.findall(r'(?:src|href)="([^"]+)"', html):
            if url.startswith(("http://", "https://", "//")):
                assert "localhost" in url or "arxiv.org" in url or "doi.org" in url, url
        assert "<script>" not in html  # no inline scripts (the CSP would block them)
    for name in ("app.css", "ui.js", "params.js", "run.js", "chat.js", "ta.js", "favicon.svg"):
        with client.get(f"/static/{name}") as res:
            assert res.status_code == 200, name


def test_every_interface_string_exists_in_both_languages() -> None:
    used: set[str] = set()
    for path in SERVICE.rglob("*"):
        if path.suffix in (".html", ".py", ".js"):
            source = path.read_text(encoding="utf-8")
            used |= set(re.findall(r"""_\('([a-z_]+\.[a-z_]+)'""", source))
            used |= set(re.findall(r"""translate\("([a-z_]+\.[a-z_]+)\"""", source))
            used |= set(re.findall(r"""RA\.t\("([a-z_]+\.[a-z_]+)\"""", source))
    assert used, "no strings found"
    dynamic = {key for key in used if key.endswith("_")}  # e.g. 'ta.action_' ~ rev.action
    assert sorted(used - dynamic - set(STRINGS)) == []
    for action in ("import", "create", "update", "delete", "restore"):
        assert f"ta.action_{action}" in STRINGS
    for key, (english, japanese) in STRINGS.items():
        assert english.strip() and japanese.strip(), key
        placeholders = set(re.findall(r"\{(\w+)\}", english))
        assert placeholders == set(re.findall(r"\{(\w+)\}", japanese)), key


def test_citations_are_numbered_by_first_use(client: FlaskClient) -> None:
    from knowledge import editing
    from knowledge.schema import EntryData
    from tests.api_fixtures import entry_body

    cite = entry_body()["citations"][0]
    body = entry_body(
        slug="cited-out-of-order",
        answer={"en": "First [@beta], then [@alpha; @beta], and [@gamma] last."},
        citations=[{**cite, "key": k, "title": f"Paper {k}"} for k in ("alpha", "gamma", "beta")],
    )
    sessions = client.application.extensions["core"].sessions
    editing.create(sessions, EntryData.model_validate(body), author="ta")
    html = client.get("/entries/cited-out-of-order").get_data(as_text=True)
    listed = re.findall(r'<li id="cite-([a-z]+)"', html)
    assert listed == ["beta", "alpha", "gamma"], listed
    links = re.findall(r'href="#cite-([a-z]+)"[^>]*>(\d)<', html)
    assert links[:4] == [("beta", "1"), ("alpha", "2"), ("beta", "1"), ("gamma", "3")], links


@pytest.mark.parametrize("path", ["/no/such/page", "/ta-typo", "/static-nothing"])
def test_unknown_pages_get_the_styled_404(client: FlaskClient, path: str) -> None:
    res = client.get(path, headers={"Accept-Language": "ja"})
    text = res.get_data(as_text=True)
    assert res.status_code == 404 and res.mimetype == "text/html"
    assert "見つかりません" in text and "質問ページへ戻る" in text
    assert "default-src 'self'" in res.headers["Content-Security-Policy"]
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.json["error"]["code"] == "not_found"
