"""Recording a student's rating of an answer: one vote per asked question, changeable."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.entry_store import find_entry
from knowledge.tables import AskLog, Feedback, utcnow


class UnknownQuestion(LookupError):
    pass


class UnknownEntry(LookupError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"no entry with slug {slug!r}")
        self.slug = slug


@dataclass(frozen=True)
class Vote:
    id: int
    ask_id: int
    helpful: bool
    suggested_slug: str | None
    created: bool  # False: an earlier vote on this question was changed


def record(
    factory: sessionmaker[Session],
    ask_id: int,
    helpful: bool,
    comment: str | None = None,
    suggested_slug: str | None = None,
) -> Vote:
    """Store the vote on asked question ``ask_id``, replacing an earlier one (a reason or
    a suggestion given before stays unless this vote brings its own). A suggested entry
    ("this should have been answered by X") must exist."""
    with factory() as session, session.begin():
        ask = session.get(AskLog, ask_id, with_for_update=True)
        if ask is None:
            raise UnknownQuestion(ask_id)
        if suggested_slug is not None and find_entry(session, suggested_slug) is None:
            raise UnknownEntry(suggested_slug)
        row = session.scalar(
            select(Feedback).where(Feedback.ask_id == ask_id).order_by(Feedback.id.desc()).limit(1)
        )
        created = row is None
        if row is None:
            row = Feedback(ask_id=ask_id, helpful=helpful)
            session.add(row)
        else:
            row.updated_at = utcnow()
        row.helpful = helpful
        row.comment = comment if comment is not None else row.comment
        row.suggested_slug = suggested_slug if suggested_slug is not None else row.suggested_slug
        session.flush()
        return Vote(row.id, ask_id, helpful, row.suggested_slug, created)
