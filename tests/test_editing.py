"""The editing core on a real database: its typed refusals change nothing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import select

from knowledge import editing
from knowledge.entry_store import entry_data, find_entry
from knowledge.schema import EntryData
from knowledge.tables import EntryRevision
from tests.api_fixtures import entry_body, row_counts


def data(**overrides: object) -> EntryData:
    return EntryData.model_validate(entry_body(**overrides))


def actions(app: Flask, slug: str) -> list[str]:
    with app.extensions["core"].sessions() as session:
        entry = find_entry(session, slug, deleted=True)
        return list(
            session.scalars(
                select(EntryRevision.action)
                .where(EntryRevision.entry_id == entry.id)
                .order_by(EntryRevision.number)
            )
        )


def test_create_update_delete_and_create_again(app: Flask) -> None:
    sessions = app.extensions["core"].sessions
    result, answered = editing.create(sessions, data(), author="ta")
    assert (result.outcome, result.entry.version, answered) == ("created", 1, 0)
    assert result.entry.course.code == "nyu-dl-f20"  # readable after the session closed

    before = row_counts(app)
    with pytest.raises(editing.SlugTaken):
        editing.create(sessions, data(), author="ta")
    with pytest.raises(editing.Stale) as stale:
        editing.update(
            sessions, "api-made-entry", lambda e: entry_data(e), author="ta", expected=[7]
        )
    assert stale.value.current == 1
    with pytest.raises(editing.NotFound):
        editing.delete(sessions, "no-such-entry", author="ta", expected=[])
    assert row_counts(app) == before

    changed = data(answer={"en": "Weight decay shrinks the weights [@krogh1992]."})
    result = editing.update(
        sessions, "api-made-entry", lambda _: changed, author="ta", expected=[1]
    )
    assert (result.outcome, result.entry.version) == ("updated", 2)
    editing.delete(sessions, "api-made-entry", author="ta", expected=[2])
    with pytest.raises(editing.NotFound):  # deleted entries are not edited
        editing.update(sessions, "api-made-entry", lambda _: changed, author="ta", expected=[])
    result, _ = editing.create(sessions, data(), author="ta")
    assert result.entry.version == 4
    assert actions(app, "api-made-entry") == ["create", "update", "delete", "create"]


def test_restore_and_restore_revision(app: Flask) -> None:
    sessions = app.extensions["core"].sessions
    editing.create(sessions, data(), author="ta")
    with pytest.raises(editing.NotFound):  # only a deleted entry is undeleted
        editing.restore(sessions, "api-made-entry", author="ta")
    editing.delete(sessions, "api-made-entry", author="ta", expected=[1])
    assert editing.restore(sessions, "api-made-entry", author="ta").entry.deleted_at is None
    with pytest.raises(editing.Stale):
        editing.restore_revision(sessions, "api-made-entry", 1, author="ta", expected=[1])
    with pytest.raises(editing.NotFound):
        editing.restore_revision(sessions, "api-made-entry", 99, author="ta", expected=[])
    assert actions(app, "api-made-entry") == ["create", "delete", "restore"]


def test_phrasings_join_an_entry_once_each_in_its_own_languages() -> None:
    question = {"en": "Why divide attention logits by sqrt(d)?"}
    phrasings = [
        "why  divide attention logits by sqrt(d)?",  # the question again, other spacing
        "What does the √d in attention do?",
        "What does the √d in attention do?",
        "アテンションの√dは何のため？",  # no Japanese question: not an alias of this entry
        "ok",  # too short
    ]
    q, aliases = editing.merge_phrasings(question, {}, phrasings, new_languages=False)
    assert q == question
    assert aliases == {"en": ["What does the √d in attention do?"]}
    # A draft from the queue: the first phrasing in a new language becomes its question.
    q, aliases = editing.merge_phrasings({}, {}, phrasings, new_languages=True)
    assert q == {"en": phrasings[0].replace("  ", " "), "ja": "アテンションの√dは何のため？"}
    assert aliases == {"en": ["What does the √d in attention do?"]}


@pytest.mark.parametrize(
    ("runner", "field", "code"),
    [
        ({"name": "rm_rf", "params": {}}, "runner.name", "unknown_experiment"),
        ({"name": "double_descent", "params": {"ridge": 99}}, "runner.params.ridge", None),
        # Strict, as JSON is: a string is not a number even when it reads as one.
        ({"name": "double_descent", "params": {"ridge": "0.5"}}, "runner.params.ridge", None),
    ],
)
def test_an_unusable_experiment_is_refused_by_the_core(
    app: Flask, runner: dict[str, object], field: str, code: str | None
) -> None:
    sessions = app.extensions["core"].sessions
    before = row_counts(app)
    with pytest.raises(editing.Invalid) as refused:
        editing.create(sessions, data(runner=runner), author="ta")
    assert refused.value.field == field
    assert code is None or refused.value.code == code
    assert row_counts(app) == before
    editing.create(sessions, data(), author="ta")
    with pytest.raises(editing.Invalid):
        editing.update(
            sessions,
            "api-made-entry",
            lambda _: data(runner=runner),
            author="ta",
            expected=[1],
        )
    with app.extensions["core"].sessions() as session:
        assert find_entry(session, "api-made-entry").version == 1


def test_every_rule_of_the_schema_has_words_in_both_interface_languages() -> None:
    from pydantic import ValidationError

    from service.i18n import STRINGS

    body = entry_body()
    broken = [
        {**body, "question": {}, "answer": {}},
        {**body, "answer": {"ja": "答え"}},
        {**body, "citations": [body["citations"][0]] * 2},
        {**body, "answer": {"en": "See [@nobody2020]."}},
        {**body, "citations": [{k: v for k, v in body["citations"][0].items() if k != "url"}]},
    ]
    rules = set()
    for case in broken:
        with pytest.raises(ValidationError) as exc:
            EntryData.model_validate(case)
        rules |= {e["ctx"]["rule"] for e in exc.value.errors() if "rule" in e.get("ctx", {})}
    assert rules == {
        "one_language",
        "same_languages",
        "duplicate_key",
        "unknown_keys",
        "needs_link",
    }
    for rule in rules:
        en, ja = STRINGS[f"form.{rule}"]
        assert en and ja and en != ja


def test_concurrent_writes_sharing_new_text_all_land(app: Flask) -> None:
    """Six writers at once, each storing the same new answer text (so the same new
    embeddings) under its own slug: every one lands, then every one's update to another
    shared text does too. On PostgreSQL (the scaled suite) they race for the same rows."""
    sessions = app.extensions["core"].sessions
    writers = 6
    answer = "Shared text that no entry has yet, cited [@krogh1992]. Run {}."
    barrier = threading.Barrier(writers)

    def create(i: int) -> str:
        barrier.wait()
        body = data(slug=f"race-{i}", answer={"en": answer.format("one")}, course="race-course")
        return editing.create(sessions, body, author="ta")[0].outcome

    def update(i: int) -> str:
        barrier.wait()
        body = data(slug=f"race-{i}", answer={"en": answer.format("two")}, course="race-course")
        return editing.update(
            sessions, f"race-{i}", lambda _: body, author="ta", expected=[1]
        ).outcome

    with ThreadPoolExecutor(writers) as pool:
        assert list(pool.map(create, range(writers))) == ["created"] * writers
        assert list(pool.map(update, range(writers))) == ["updated"] * writers
    with sessions() as session:
        for i in range(writers):
            entry = find_entry(session, f"race-{i}")
            assert entry is not None and entry.version == 2
            assert "Run two" in entry.answer["en"]
