"""The TAs' review of mined candidates: list them, turn one into an editor draft, reject
or reopen one. Accepting (a new entry) and merging (aliases of an entry) change entries,
so they live in ``knowledge.editing`` with every other entry change."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from knowledge.tables import Candidate, Course, utcnow

Status = Literal["open", "accepted", "merged", "rejected"]
STATUSES: tuple[Status, ...] = ("open", "accepted", "merged", "rejected")
Kind = Literal["answered", "unanswered"]
FORUM_NAMES = {
    "slack": "Slack",
    "discourse": "Discourse",
    "piazza": "Piazza",
    "jsonl": "course forum",
}
MAX_DRAFT_CITATIONS = 3
_SLUG_WORDS = re.compile(r"[a-z0-9]+")


class CandidateNotFound(LookupError):
    pass


class Decided(ValueError):
    """The candidate was already decided (accepted or merged): it cannot change now."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the candidate is already {status}")
        self.status = status


def _listed(kind: Kind | None) -> ColumnElement[bool]:
    """Candidates worth a TA's look: answered by staff (any count), or asked at least
    twice without a staff answer (listed apart). One-off unanswered questions wait."""
    answered = Candidate.staff_answered.is_(True)
    frequent = and_(Candidate.staff_answered.is_(False), Candidate.asked_count >= 2)
    if kind == "answered":
        return answered
    if kind == "unanswered":
        return frequent
    return or_(answered, frequent)


def _where(
    course: str | None, status: Status | tuple[Status, ...] | None, kind: Kind | None
) -> list[ColumnElement[bool]]:
    where = [_listed(kind)]
    if status is not None:
        where.append(Candidate.status.in_((status,) if isinstance(status, str) else status))
    if course is not None:
        code = select(Course.id).where(Course.code == course).scalar_subquery()
        where.append(Candidate.course_id == code)
    return where


def count_candidates(
    session: Session,
    *,
    course: str | None = None,
    status: Status | tuple[Status, ...] | None = "open",
    kind: Kind | None = None,
) -> int:
    """How many candidates ``list_candidates`` lists with these filters."""
    where = _where(course, status, kind)
    return session.scalar(select(func.count()).select_from(Candidate).where(*where)) or 0


@dataclass
class Page:
    candidates: list[Candidate]
    total: int
    course_codes: dict[int, str]


def list_candidates(
    session: Session,
    *,
    course: str | None = None,
    status: Status | tuple[Status, ...] | None = "open",
    kind: Kind | None = None,
    page: int = 1,
    per_page: int = 20,
) -> Page:
    """Candidates, best first (score, then newest)."""
    where = _where(course, status, kind)
    total = count_candidates(session, course=course, status=status, kind=kind)
    rows = list(
        session.scalars(
            select(Candidate)
            .where(*where)
            .order_by(Candidate.score.desc(), Candidate.id.desc())
            .offset((max(page, 1) - 1) * per_page)
            .limit(per_page)
        )
    )
    codes = {cid: code for cid, code in session.execute(select(Course.id, Course.code))}
    return Page(rows, total, codes)


def course_code(session: Session, course_id: int) -> str:
    return session.scalar(select(Course.code).where(Course.id == course_id)) or ""


def candidate_json(candidate: Candidate, course_code: str) -> dict[str, Any]:
    return {
        "id": candidate.id,
        "course": course_code,
        "status": candidate.status,
        "kind": "answered" if candidate.staff_answered else "unanswered",
        "existing_entry": candidate.existing_slug,
        "asked_count": candidate.asked_count,
        "votes": candidate.votes,
        "staff_answered": candidate.staff_answered,
        "score": candidate.score,
        "question": candidate.question,
        "answer": candidate.answer,
        "phrasings": candidate.phrasings,
        "sources": candidate.sources,
        "suggested_experiment": candidate.suggested_runner,
        "entry_slug": candidate.entry_slug,
    }


def get_candidate(session: Session, candidate_id: int) -> Candidate:
    candidate = session.get(Candidate, candidate_id)
    if candidate is None:
        raise CandidateNotFound(candidate_id)
    return candidate


def suggest_slug(question: dict[str, str]) -> str:
    """A slug from the English question's first words ("" without English)."""
    words = _SLUG_WORDS.findall(question.get("en", "").lower())
    return "-".join(words[:8])[:80].strip("-")


def source_key(source: dict[str, Any], n: int) -> str:
    """A citation key for a source thread: forum, date and number (``forum-2020-10-05-1``)."""
    date = source.get("date") or "undated"
    return f"{source.get('forum', 'forum')}-{date}-{n}"


def draft(candidate: Candidate, course_code: str) -> dict[str, Any]:
    """The candidate as an editor draft: its questions, the staff answer citing its source
    threads, its phrasings as aliases, the threads as citations (the TA rewrites the answer
    in the project's words and checks the links)."""
    citations = []
    for n, source in enumerate(candidate.sources[:MAX_DRAFT_CITATIONS], start=1):
        date = source.get("date") or ""
        citations.append(
            {
                "key": source_key(source, n),
                "title": source.get("title") or "",
                "authors": "Course staff",  # authors become roles: no names are kept
                "year": date[:4],
                "venue": FORUM_NAMES.get(source.get("forum", ""), "course forum"),
                "url": source.get("url") or "",
                "doi": "",
            }
        )
    markers = " ".join(f"[@{c['key']}]" for c in citations)
    answer = {
        lang: f"{text.strip()}\n\n{markers}".strip() for lang, text in candidate.answer.items()
    }
    question = dict(candidate.question)
    aliases = {
        lang: [p for p in texts if p != question.get(lang)]
        for lang, texts in candidate.phrasings.items()
    }
    return {
        "slug": suggest_slug(question),
        "course": course_code,
        "question": question,
        "aliases": {k: v for k, v in aliases.items() if v},
        "answer": answer,
        "citations": citations,
        "runner": candidate.suggested_runner,
    }


def decide(
    factory: sessionmaker[Session],
    candidate_id: int,
    status: Literal["open", "rejected"],
    *,
    author: str,
) -> Candidate:
    """Reject a candidate (remembered: mining the same question again joins it and it
    stays out of the list) or reopen a rejected one."""
    with factory() as session, session.begin():
        candidate = get_candidate(session, candidate_id)
        if candidate.status in ("accepted", "merged"):
            raise Decided(candidate.status)
        candidate.status = status
        candidate.decided_by = author if status == "rejected" else None
        candidate.decided_at = utcnow() if status == "rejected" else None
        session.flush()
        session.expunge(candidate)
        return candidate


def mark(session: Session, candidate_id: int, status: Status, slug: str, author: str) -> None:
    """Record that a candidate became entry ``slug`` (accepted) or its aliases (merged);
    called by the editing core inside the write's own transaction."""
    candidate = get_candidate(session, candidate_id)
    if candidate.status in ("accepted", "merged"):
        raise Decided(candidate.status)
    candidate.status = status
    candidate.entry_slug = slug
    candidate.decided_by = author
    candidate.decided_at = utcnow()
