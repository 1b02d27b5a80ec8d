"""Read-side queries the API and the TA pages share: listing and searching entries, the
recently deleted, revisions, course codes, queued phrasings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, String, cast, func, or_, select
from sqlalchemy.orm import Session, selectinload

from knowledge.tables import AskLog, Course, Entry, EntryRevision


def live_entries(
    text: str = "", *, course: str | None = None, answers: bool = False
) -> Select[Any]:
    """Entries not deleted, course loaded; with ``text``, those whose slug, question, aliases
    or tags (and answer, if ``answers``) contain it, ignoring case and LIKE wildcards."""
    query = (
        select(Entry)
        .join(Course)
        .where(Entry.deleted_at.is_(None))
        .options(selectinload(Entry.course))
    )
    if course:
        query = query.where(Course.code == course)
    if not text:
        return query
    like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    columns = [
        Entry.slug,
        cast(Entry.question, String),
        cast(Entry.aliases, String),
        cast(Entry.tags, String),
    ]
    if answers:
        columns.append(cast(Entry.answer, String))
    return query.where(or_(*(column.ilike(like, escape="\\") for column in columns)))


def page_of(
    session: Session, query: Select[Any], *order: Any, page: int, per_page: int
) -> tuple[Sequence[Entry], int]:
    """One page of ``query`` in ``order`` (pages count from 1; less is page 1), and how
    many rows in all."""
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(*order).limit(per_page).offset((max(page, 1) - 1) * per_page)
    ).all()
    return rows, total


def entry_with_details(session: Session, entry_id: int) -> Entry:
    """An entry with its citations and course loaded (to render it after the session)."""
    return session.scalars(
        select(Entry)
        .where(Entry.id == entry_id)
        .options(selectinload(Entry.citations), selectinload(Entry.course))
    ).one()


def live_count(session: Session) -> int:
    return session.scalar(select(func.count()).where(Entry.deleted_at.is_(None))) or 0


def live_questions(session: Session) -> list[tuple[str, dict[str, str]]]:
    """(slug, question by language) of every entry not deleted, by slug."""
    rows = session.execute(
        select(Entry.slug, Entry.question).where(Entry.deleted_at.is_(None)).order_by(Entry.slug)
    ).all()
    return [(slug, question) for slug, question in rows]


def recently_deleted(session: Session, limit: int = 20) -> Sequence[Entry]:
    return session.scalars(
        select(Entry)
        .where(Entry.deleted_at.is_not(None))
        .order_by(Entry.deleted_at.desc())
        .limit(limit)
    ).all()


def revisions(session: Session, entry_id: int, limit: int) -> Sequence[EntryRevision]:
    """An entry's newest revisions first."""
    return session.scalars(
        select(EntryRevision)
        .where(EntryRevision.entry_id == entry_id)
        .order_by(EntryRevision.number.desc())
        .limit(limit)
    ).all()


def course_help(session: Session, code: str | None) -> Course | None:
    """The course whose help a decline shows: ``code``'s, or the only course when there
    is one and no code was given. None when it has no help set."""
    if code:
        course = session.scalar(select(Course).where(Course.code == code))
    else:
        courses = session.scalars(select(Course).limit(2)).all()
        course = courses[0] if len(courses) == 1 else None
    return course if course is not None and (course.help_text or course.help_url) else None


def course_codes(session: Session) -> list[str]:
    return list(session.scalars(select(Course.code).order_by(Course.code)))


def queued_phrasings(session: Session, ids: list[int]) -> list[tuple[int, str]]:
    """(id, question) of those unanswered questions among ``ids``, newest first."""
    rows = session.execute(
        select(AskLog.id, AskLog.question)
        .where(AskLog.id.in_(ids), AskLog.abstained.is_(True))
        .order_by(AskLog.created_at.desc(), AskLog.id.desc())
    ).all()
    return [(ask_id, question) for ask_id, question in rows]
