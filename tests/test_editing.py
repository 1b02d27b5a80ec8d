"""The editing core on a real database: its typed refusals change nothing."""

from __future__ import annotations

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
