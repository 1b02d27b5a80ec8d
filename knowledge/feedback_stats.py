"""How students rated each entry's answers (for the TA feedback pages). Framework-free."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from knowledge.tables import AskLog, Feedback


@dataclass
class EntryFeedback:
    slug: str
    answered: int = 0  # questions this entry answered
    helpful: int = 0
    not_helpful: int = 0

    @property
    def rated(self) -> int:
        return self.helpful + self.not_helpful

    @property
    def helpful_ratio(self) -> float | None:
        return self.helpful / self.rated if self.rated else None


@dataclass
class UnhelpfulAnswer:
    ask_id: int
    question: str
    lang: str
    comment: str | None
    created_at: datetime


def feedback_by_entry(session: Session, slug: str | None = None) -> dict[str, EntryFeedback]:
    """Per answered slug (or only ``slug``): how often it answered, and its helpful / not
    helpful votes."""
    answers: list[ColumnElement[bool]] = [
        AskLog.abstained.is_(False),
        AskLog.best_slug.is_not(None),
    ]
    if slug is not None:  # one entry's page: an index lookup, not a pass over the whole log
        answers.append(AskLog.best_slug == slug)
    stats: dict[str, EntryFeedback] = {}
    answered = session.execute(
        select(AskLog.best_slug, func.count()).where(*answers).group_by(AskLog.best_slug)
    )
    for answered_slug, count in answered:
        if answered_slug is not None:  # (the filter above excludes it)
            stats[answered_slug] = EntryFeedback(answered_slug, answered=count)
    votes = session.execute(
        select(
            AskLog.best_slug,
            func.sum(case((Feedback.helpful.is_(True), 1), else_=0)),
            func.sum(case((Feedback.helpful.is_(False), 1), else_=0)),
        )
        .join(AskLog, AskLog.id == Feedback.ask_id)
        .where(*answers)
        .group_by(AskLog.best_slug)
    )
    for slug, helpful, not_helpful in votes:
        item = stats.setdefault(slug, EntryFeedback(slug))
        item.helpful, item.not_helpful = int(helpful or 0), int(not_helpful or 0)
    return stats


def recent_unhelpful(session: Session, slug: str, limit: int = 20) -> list[UnhelpfulAnswer]:
    """The newest questions whose answer (this entry) was rated not helpful."""
    rows = session.execute(
        select(AskLog.id, AskLog.question, AskLog.lang, Feedback.comment, Feedback.created_at)
        .join(AskLog, AskLog.id == Feedback.ask_id)
        .where(AskLog.best_slug == slug, AskLog.abstained.is_(False), Feedback.helpful.is_(False))
        .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        .limit(limit)
    )
    return [UnhelpfulAnswer(*row) for row in rows]
