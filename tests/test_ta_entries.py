"""The TA entry pages: create, validate, edit with stale-version detection, history, delete/undo."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select

from knowledge.db import transaction
from knowledge.entry_store import entry_data, find_entry, upsert_entry
from knowledge.schema import EntryData
from knowledge.tables import Entry, EntryRevision
from runners import registry
from tests.ta_support import entry_form, post, post_json, ta_client


@pytest.fixture
def ta(app: Flask) -> FlaskClient:
    return ta_client(app)


def text(res: object) -> str:
    return res.get_data(as_text=True)  # type: ignore[attr-defined]


def fresh_index(app: Flask) -> None:
    """Every process picks up a change within a second; a test need not wait for that."""
    app.extensions["core"].retriever.refresh()


def current_version(app: Flask, slug: str) -> int:
    with app.extensions["core"].sessions() as session:
        return int(find_entry(session, slug).version)


def test_create_an_entry_that_students_can_ask_for_at_once(
    app: Flask, ta: FlaskClient, client: FlaskClient
) -> None:
    page = ta.get("/ta/entries/new")
    assert page.status_code == 200 and 'id="entry-form"' in text(page)
    res = post(ta, "/ta/entries/new", entry_form())
    assert res.status_code == 302, text(res)
    assert res.headers["Location"] == "/ta/entries/why-relu/edit"
    saved = client.get("/api/v1/entries/why-relu").json
    assert saved["tags"] == ["activations", "relu"]
    assert saved["aliases"]["en"] == [
        "Why is ReLU preferred over sigmoid?",
        "What is wrong with sigmoid units?",
    ]
    assert saved["citations"][0]["authors"] == ["Xavier Glorot", "Antoine Bordes", "Yoshua Bengio"]
    assert saved["runner"] is None
    fresh_index(app)
    answer = client.post("/api/v1/ask", json={"question": "Why is ReLU preferred over sigmoid?"})
    assert answer.json["answer"]["slug"] == "why-relu"
    with app.extensions["core"].sessions() as session:
        revision = session.scalar(select(EntryRevision).order_by(EntryRevision.id.desc()))
        assert revision.author == "tanaka" and revision.action == "create"
    edit = ta.get("/ta/entries/why-relu/edit")
    assert "Created" in text(edit) and "glorot2011" in text(edit)


def test_an_experiment_stores_only_parameters_that_differ_from_its_defaults(
    client: FlaskClient, ta: FlaskClient
) -> None:
    form = entry_form(
        runner="attention_scaling",
        **{
            "param-n_keys": "32",
            "param-n_queries": "256",
            "param-dims": "8, 16,64",
            "param-scale": "true",
        },
    )
    assert post(ta, "/ta/entries/new", form).status_code == 302
    runner = client.get("/api/v1/entries/why-relu").json["runner"]
    assert runner == {
        "name": "attention_scaling",
        "params": {"scale": True, "dims": [8, 16, 64], "n_keys": 32},
    }


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"answer_en": ""}, "answer_en", "needs its answer"),
        ({"question_en": "", "answer_en": ""}, "question_en", "at least one language"),
        ({"slug": "Not A Slug"}, "slug", "single hyphens"),
        ({"answer_en": "See [@nobody2020]."}, "answer_en", "@nobody2020"),
        ({"cite-0-url": ""}, "cite-0-url", "url or a doi"),
        ({"cite-0-url": "javascript:alert(1)"}, "cite-0-url", "http:// or https://"),
        ({"cite-0-year": "twenty"}, "cite-0-year", "year"),
        ({"runner": "rm_rf"}, "runner", "listed experiments"),
        ({"runner": "attention_scaling", "param-n_keys": "100000"}, "param-n_keys", "256"),
        ({"runner": "attention_scaling", "param-n_keys": "many"}, "param-n_keys", "whole number"),
        ({"runner": "attention_scaling", "param-dims": "1, x"}, "param-dims", "whole numbers"),
        ({"tags": "Bad Tag!"}, "tags", "lower-case words"),
        ({"version": "abc"}, "form", "version"),
    ],
)
def test_invalid_forms_come_back_with_the_field_marked(
    client: FlaskClient, ta: FlaskClient, overrides: dict, field: str, message: str
) -> None:
    res = post(ta, "/ta/entries/new", entry_form(**overrides))
    assert res.status_code == 400, text(res)
    page = text(res)
    errors = re.search(r'id="form-errors".*?</section>', page, re.S)
    assert errors and message.lower() in errors.group(0).lower(), errors
    if field != "form":
        assert f'aria-invalid="true" aria-describedby="err-{field}"' in page or (
            field.startswith("param-") and '"param_errors"' in page
        )
    # What the TA typed comes back unchanged.
    for name, value in overrides.items():
        if name != "version" and value:
            assert str(escape(value)) in page, name
    assert client.get("/api/v1/entries/why-relu").status_code == 404


def test_the_editor_s_own_checks_speak_the_interface_language(ta: FlaskClient) -> None:
    ta.get("/lang/ja")
    res = post(ta, "/ta/entries/new", entry_form(answer_en="", **{"cite-0-year": "twenty"}))
    assert res.status_code == 400
    errors = re.search(r'id="form-errors".*?</section>', text(res), re.S)
    assert errors, text(res)
    assert "回答も書いてください" in errors.group(0) and "年を入力してください" in errors.group(0)
    res = post(ta, "/ta/entries/new", entry_form(slug="Not A Slug"))
    assert "連続しないハイフン" in text(res)


def test_schema_checks_speak_the_interface_language_too(ta: FlaskClient) -> None:
    """Limits the form does not check itself (pydantic's) come back in Japanese, too."""
    ta.get("/lang/ja")
    res = post(ta, "/ta/entries/new", entry_form(**{"cite-0-title": "t" * 501}))
    assert res.status_code == 400
    errors = re.search(r'id="form-errors".*?</section>', text(res), re.S)
    assert errors and "500 文字以内で入力してください" in errors.group(0), text(res)
    assert "出典 1: 題名" in errors.group(0) and "cite-0-title</a>" not in errors.group(0)
    assert 'aria-describedby="err-cite-0-title"' in text(res)


def test_raw_html_in_a_form_is_shown_as_text_not_run(ta: FlaskClient, client: FlaskClient) -> None:
    hostile = entry_form(
        slug="hostile",
        question_en="Is <script>alert(1)</script> dangerous in a question?",
        answer_en="<script>alert(2)</script> [x](javascript:alert(3)) ok",
    )
    hostile.update({k: "" for k in hostile if k.startswith("cite-")})
    assert post(ta, "/ta/entries/new", hostile).status_code == 302
    edit = text(ta.get("/ta/entries/hostile/edit"))
    assert "<script>alert" not in edit and "&lt;script&gt;alert(2)" in edit
    page = text(client.get("/entries/hostile"))
    assert "<script>alert" not in page and 'href="javascript' not in page


def test_a_taken_slug_is_refused_and_a_deleted_one_created_again(
    app: Flask, ta: FlaskClient
) -> None:
    res = post(ta, "/ta/entries/new", entry_form(slug="agi"))
    assert res.status_code == 400 and "exists" in text(res)
    assert post(ta, "/ta/entries/agi/delete", {}).status_code == 302
    # As through the API: the entry comes back with the new content and keeps its history.
    res = post(ta, "/ta/entries/new", entry_form(slug="agi"))
    assert res.status_code == 302
    assert "history is kept" in text(ta.get(res.headers["Location"]))
    with transaction(app.extensions["core"].sessions) as session:
        entry = find_entry(session, "agi")
        actions = session.scalars(
            select(EntryRevision.action)
            .where(EntryRevision.entry_id == entry.id)
            .order_by(EntryRevision.number)
        ).all()
        question = entry_data(entry).question
    assert actions == ["create", "delete", "create"]
    assert question == {"en": entry_form()["question_en"]}  # the new content


def test_a_probable_duplicate_needs_confirmation(client: FlaskClient, ta: FlaskClient) -> None:
    duplicate = entry_form(
        slug="sqrt-again",
        question_en="Why are attention logits divided by the square root of the dimension?",
    )
    res = post(ta, "/ta/entries/new", duplicate)
    assert res.status_code == 409
    assert 'id="duplicate-notice"' in text(res) and "attention-sqrt-d-scaling" in text(res)
    assert client.get("/api/v1/entries/sqrt-again").status_code == 404
    res = post(ta, "/ta/entries/new", {**duplicate, "not_duplicate": "1"})
    assert res.status_code == 302
    assert client.get("/api/v1/entries/sqrt-again").status_code == 200


def test_similar_entries_for_a_draft(ta: FlaskClient) -> None:
    res = post_json(
        ta, "/ta/similar", {"questions": {"ja": "VAEでバッチ正規化を使うと何が問題ですか？"}}
    )
    assert res.status_code == 200
    assert res.json["matches"][0]["slug"] == "batchnorm-in-vae"
    assert res.json["matches"][0]["edit_url"] == "/ta/entries/batchnorm-in-vae/edit"
    excluded = post_json(
        ta,
        "/ta/similar",
        {"questions": {"en": "BatchNorm in a VAE?"}, "exclude": "batchnorm-in-vae"},
    )
    assert "batchnorm-in-vae" not in [m["slug"] for m in excluded.json["matches"]]
    assert post_json(ta, "/ta/similar", {"questions": "x"}).status_code == 400
    assert post_json(ta, "/ta/similar", [1, 2]).status_code == 400


def test_preview_is_the_sanitised_student_view(ta: FlaskClient) -> None:
    res = post_json(
        ta,
        "/ta/preview",
        {
            "markdown": "**Hi** <script>alert(1)</script> [x](javascript:alert(2)) [@a2020] [@b]",
            "keys": ["a2020"],
        },
    )
    assert res.status_code == 200
    html = res.json["html"]
    assert "<strong>Hi</strong>" in html and "<script" not in html
    assert 'href="javascript' not in html and 'href="#cite-a2020"' in html
    assert res.json["unknown_keys"] == ["b"]
    assert "[@b]" in res.json["html"]  # an unknown key stays visible, not a silent "[]"
    for body in ({"markdown": 5}, {"markdown": "x" * 50_001}, {"keys": [1]}, "text"):
        assert post_json(ta, "/ta/preview", body).status_code == 400


def test_edit_saves_a_new_version(app: Flask, ta: FlaskClient, client: FlaskClient) -> None:
    version = current_version(app, "double-descent")
    page = text(ta.get("/ta/entries/double-descent/edit"))
    assert f'name="version" value="{version}"' in page
    with app.extensions["core"].sessions() as session:
        data = entry_data(find_entry(session, "double-descent"))
    form = _form_from(data, version, answer_en=data.answer["en"] + "\n\nEdited by a TA.")
    res = post(ta, "/ta/entries/double-descent/edit", form)
    assert res.status_code == 302, text(res)
    assert current_version(app, "double-descent") == version + 1
    body = client.get("/api/v1/entries/double-descent").json
    assert body["answer"]["en"]["markdown"].endswith("Edited by a TA.")
    assert body["answer"]["ja"]["markdown"] == data.answer["ja"]
    # Saving the same content again changes nothing.
    same = post(ta, "/ta/entries/double-descent/edit", {**form, "version": str(version + 1)})
    assert same.status_code == 302
    assert current_version(app, "double-descent") == version + 1
    assert "Nothing changed" in text(ta.get("/ta/entries/double-descent/edit"))


def test_a_stale_save_shows_the_difference_and_keeps_the_draft(app: Flask, ta: FlaskClient) -> None:
    version = current_version(app, "agi")
    with app.extensions["core"].sessions() as session:
        data = entry_data(find_entry(session, "agi"))
    # Someone else saves first.
    with transaction(app.extensions["core"].sessions) as session:
        other = data.model_copy(update={"tags": [*data.tags, "someone-else"]})
        upsert_entry(session, other, author="other-ta", expected_version=version)
    mine = _form_from(data, version, answer_en=data.answer["en"] + "\n\nMy addition.")
    res = post(ta, "/ta/entries/agi/edit", mine)
    assert res.status_code == 409
    page = text(res)
    assert 'id="stale-notice"' in page and "other-ta" in page
    assert '<span class="del">-tags:' in page and "someone-else" in page
    assert '<span class="add">+  My addition.</span>' in page
    assert "My addition." in page.split('id="answer_en"')[1]  # the draft is kept
    assert f'name="version" value="{version + 1}"' in page
    # Saving again, knowingly, replaces their version.
    res = post(ta, "/ta/entries/agi/edit", {**mine, "version": str(version + 1)})
    assert res.status_code == 302
    assert current_version(app, "agi") == version + 2


def test_history_shows_diffs_and_restores_a_revision(app: Flask, ta: FlaskClient) -> None:
    version = current_version(app, "embedding-dimension")
    with app.extensions["core"].sessions() as session:
        data = entry_data(find_entry(session, "embedding-dimension"))
    form = _form_from(data, version, tags="embeddings, changed-tag")
    assert post(ta, "/ta/entries/embedding-dimension/edit", form).status_code == 302
    page = text(ta.get("/ta/entries/embedding-dimension/history"))
    assert "#2" in page and "#1" in page and "tanaka" in page
    assert '<span class="add">+tags: embeddings, changed-tag</span>' in page
    res = post(
        ta,
        "/ta/entries/embedding-dimension/revisions/1/restore",
        {"version": str(version + 1)},
    )
    assert res.status_code == 302
    with app.extensions["core"].sessions() as session:
        entry = find_entry(session, "embedding-dimension")
        assert entry.tags == data.tags
        actions = session.scalars(
            select(EntryRevision.action)
            .where(EntryRevision.entry_id == entry.id)
            .order_by(EntryRevision.number)
        ).all()
    assert actions == ["create", "update", "restore"]
    assert post(ta, "/ta/entries/embedding-dimension/revisions/99/restore").status_code == 404
    assert ta.get("/ta/entries/nope/history").status_code == 404


def test_delete_and_undo(app: Flask, ta: FlaskClient, client: FlaskClient) -> None:
    res = post(ta, "/ta/entries/online-vs-minibatch-sgd/delete", {})
    assert res.status_code == 302
    assert res.headers["Location"] == "/ta/entries/?deleted=online-vs-minibatch-sgd"
    assert client.get("/api/v1/entries/online-vs-minibatch-sgd").status_code == 404
    listing = text(ta.get(res.headers["Location"]))
    assert 'id="undo-delete"' in listing and "Recently deleted" in listing
    fresh_index(app)
    asked = client.post(
        "/api/v1/ask", json={"question": "Is online SGD better than minibatch SGD?"}
    ).json
    assert (asked["answer"] or {}).get("slug") != "online-vs-minibatch-sgd"
    undo = post(ta, "/ta/entries/online-vs-minibatch-sgd/restore")
    assert undo.status_code == 302
    assert client.get("/api/v1/entries/online-vs-minibatch-sgd").status_code == 200
    fresh_index(app)
    asked = client.post(
        "/api/v1/ask", json={"question": "Is online SGD better than minibatch SGD?"}
    ).json
    assert asked["answer"]["slug"] == "online-vs-minibatch-sgd"
    assert post(ta, "/ta/entries/online-vs-minibatch-sgd/restore").status_code == 404
    assert post(ta, "/ta/entries/nope/delete").status_code == 404


def test_a_stale_delete_is_refused(app: Flask, ta: FlaskClient, client: FlaskClient) -> None:
    version = current_version(app, "agi")
    res = post(ta, "/ta/entries/agi/delete", {"version": str(version - 1)})
    assert res.status_code == 302 and res.headers["Location"] == "/ta/entries/agi/edit"
    assert client.get("/api/v1/entries/agi").status_code == 200


def test_list_and_search(ta: FlaskClient) -> None:
    page = text(ta.get("/ta/entries/"))
    assert page.count('<tr data-slug="') == 8
    found = text(ta.get("/ta/entries/?q=VAE"))
    assert '<tr data-slug="batchnorm-in-vae"' in found and found.count('<tr data-slug="') < 8
    assert '<tr data-slug="' not in text(ta.get("/ta/entries/?q=%25%25_nothing"))
    japanese = text(ta.get("/ta/entries/?q=汎用人工知能"))
    assert '<tr data-slug="agi"' in japanese
    assert '<tr data-slug="' not in text(ta.get("/ta/entries/?page=2"))
    assert text(ta.get("/ta/entries/?page=x")).count('<tr data-slug="') == 8


def test_unknown_entries_are_404(ta: FlaskClient) -> None:
    assert ta.get("/ta/entries/nope/edit").status_code == 404
    assert post(ta, "/ta/entries/nope/edit", entry_form()).status_code == 404


def test_new_entry_prefilled_from_a_question(ta: FlaskClient) -> None:
    page = text(ta.get("/ta/entries/new?question=ドロップアウトとは何ですか？"))
    assert "ドロップアウトとは何ですか？</textarea>" in page.split('id="question_ja"')[1][:600]


def test_entries_pages_in_japanese(ta: FlaskClient) -> None:
    page = text(ta.get("/ta/entries/", headers={"Accept-Language": "ja"}))
    assert '<html lang="ja">' in page and "エントリー" in page


def _form_from(data: EntryData, version: int, **overrides: str) -> dict[str, str]:
    form: dict[str, str] = {
        "version": str(version),
        "tags": ", ".join(data.tags),
        "runner": data.runner.name if data.runner else "",
    }
    for lang in ("en", "ja"):
        form[f"question_{lang}"] = data.question.get(lang, "")
        form[f"aliases_{lang}"] = "\n".join(data.aliases.get(lang, []))
        form[f"answer_{lang}"] = data.answer.get(lang, "")
    for i, c in enumerate(data.citations):
        form.update(
            {
                f"cite-{i}-key": c.key,
                f"cite-{i}-title": c.title,
                f"cite-{i}-authors": "; ".join(c.authors),
                f"cite-{i}-year": str(c.year),
                f"cite-{i}-venue": c.venue,
                f"cite-{i}-url": c.url or "",
                f"cite-{i}-doi": c.doi or "",
            }
        )
    if data.runner:
        params = registry.spec(data.runner.name).Params(**data.runner.params)
        defaults = params.model_dump(mode="json")
        for name, value in defaults.items():
            if isinstance(value, bool):
                if value:
                    form[f"param-{name}"] = "true"
            elif isinstance(value, list):
                form[f"param-{name}"] = ", ".join(map(str, value))
            else:
                form[f"param-{name}"] = str(value)
    form.update(overrides)
    return form


def test_an_edit_never_renames(app: Flask, ta: FlaskClient) -> None:
    version = current_version(app, "agi")
    with app.extensions["core"].sessions() as session:
        data = entry_data(find_entry(session, "agi"))
    form = _form_from(data, version, slug="renamed", course="other")
    assert post(ta, "/ta/entries/agi/edit", form).status_code == 302
    with app.extensions["core"].sessions() as session:
        assert session.scalar(select(Entry).where(Entry.slug == "renamed")) is None


def test_nul_characters_and_malformed_slugs_are_harmless(
    ta: FlaskClient, client: FlaskClient
) -> None:
    res = post(ta, "/ta/entries/new", entry_form(answer_en="Sigmoids\x00 saturate [@glorot2011]."))
    assert res.status_code == 302
    saved = client.get("/api/v1/entries/why-relu").json["answer"]["en"]["markdown"]
    assert saved == "Sigmoids saturate [@glorot2011]."
    for path in ("/ta/entries/a%00b/edit", "/ta/entries/" + "a" * 200 + "/history"):
        assert ta.get(path).status_code == 404
    assert client.get("/entries/a%00b").status_code == 404
    assert ta.get("/ta/entries/?q=%00").status_code == 200
    assert (
        post(ta, "/ta/queue/resolve", {"ids": "1", "action": "link", "slug": "a\x00"}).status_code
        == 400
    )


def test_an_uncited_citation_is_saved_with_a_warning(ta: FlaskClient) -> None:
    form = entry_form(answer_en="An answer that forgets to cite its source at all.")
    res = post(ta, "/ta/entries/new", form)
    assert res.status_code == 302, text(res)
    page = text(ta.get(res.headers["Location"]))
    assert "flash-warning" in page and "never cites @" in page


def test_a_taken_slug_links_to_the_entry(ta: FlaskClient) -> None:
    res = post(ta, "/ta/entries/new", entry_form(slug="agi"))
    assert res.status_code == 400
    assert 'id="slug-taken"' in text(res) and 'href="/ta/entries/agi/edit"' in text(res)


@pytest.mark.parametrize("page", ["0", "00", "-1", "x", "999999", "1e3"])
def test_odd_page_numbers_show_a_page(ta: FlaskClient, page: str) -> None:
    res = ta.get(f"/ta/entries/?page={page}")
    assert res.status_code == 200, page
    queue = ta.get(f"/ta/queue?page={page}")
    assert queue.status_code == 200, page
