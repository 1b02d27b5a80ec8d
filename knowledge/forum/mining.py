"""Mine a forum export into candidate entries (``flask --app service kb mine``).

1. Read the export's threads (``importers``), skip those already mined for the course.
2. Keep each thread's question and the staff's answer, personal data removed (``extract``).
3. Encode the questions (multilingual e5) and group the same question across wording and
   language by average linkage, after the candidates of earlier mining, which new
   questions may join (``grouping``): a rejected candidate's question mined again stays
   rejected.
4. Per group: a draft (a question per language used, the best staff answer, the group's
   phrasings, a source per thread), ranked by how often it was asked, its votes and
   whether staff answered. Candidates and mined threads are stored in one transaction:
   mining again adds nothing.
5. Then each new candidate a TA will see is matched against the existing entries (a group
   an entry already answers is a proposal to add its phrasings as aliases), and an
   experiment is suggested where one fits.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.db import transaction
from knowledge.entry_store import get_course
from knowledge.forum.extract import MinedQuestion, extract
from knowledge.forum.grouping import Group, Seed, group_questions, represent
from knowledge.forum.importers import ImportStats, read_export
from knowledge.forum.scrub import Removed
from knowledge.tables import Candidate, MinedThread, utcnow

ENCODE_BATCH = 64
MAX_PHRASINGS = 20  # per language, kept as the draft's aliases
MAX_SOURCES = 50
# An entry "already answers" a group when the service would answer its question with it;
# an experiment "fits" when the nearest entry (at least this confident) has one.
SUGGEST_MIN_CONFIDENCE = 0.3

Progress = Callable[[str, int, int | None], None]  # (stage, done, total or None)


class Asker(Protocol):
    """What mining needs of the retriever (``knowledge.ask.Retriever``)."""

    def ask(
        self, question: str, course: str | None = None, lang: str | None = None,
        top_k: int = 3, log: bool = True, client: str | None = None,
    ) -> Any: ...  # fmt: skip


@dataclass
class Summary:
    threads: int = 0
    posts: int = 0
    already_mined: int = 0
    questions: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # why a thread has no question
    groups: int = 0  # groups the new questions formed or joined
    new_candidates: int = 0
    updated_candidates: int = 0
    matched_existing: int = 0  # new candidates an existing entry already answers
    unanswered_frequent: int = 0  # asked at least twice, no staff answer
    joined_rejected: int = 0  # questions that repeat a rejected candidate
    unreadable_rows: int = 0  # rows the importer skipped (malformed, no thread or body)
    removed: Removed = field(default_factory=Removed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "threads": self.threads,
            "posts": self.posts,
            "already_mined": self.already_mined,
            "questions": self.questions,
            "skipped": dict(self.skipped),
            "groups": self.groups,
            "new_candidates": self.new_candidates,
            "updated_candidates": self.updated_candidates,
            "matched_existing": self.matched_existing,
            "unanswered_frequent": self.unanswered_frequent,
            "joined_rejected": self.joined_rejected,
            "unreadable_rows": self.unreadable_rows,
            "removed": self.removed.as_dict(),
        }


def mine(
    factory: sessionmaker[Session],
    path: Path,
    fmt: str,
    course: str,
    staff: Iterable[str] = (),
    asker: Asker | None = None,
    progress: Progress | None = None,
    base_url: str | None = None,
) -> Summary:
    """Mine the export at ``path`` (format ``fmt``) into candidates of ``course``.
    ``base_url`` (the forum's address) makes a thread link the export gives as a path,
    such as Discourse's ``/t/slug/123``, a full link."""
    report = progress or (lambda stage, done, total: None)
    summary = Summary()
    with factory() as session:
        course_row = get_course(session, course)
        if course_row is None:
            raise ValueError(f"unknown course {course!r}: add it with `kb course {course}`")
        course_id = course_row.id
        seen = _mined_threads(session, course_id)

    questions, fresh, answered_since = _read(path, fmt, staff, seen, summary, report)
    for q in questions:
        q.url = _full_link(q.url, base_url)
    if not fresh and not answered_since:
        return summary
    vectors = _encode([q.text for q in questions], report)
    with transaction(factory) as session:
        seeds = _seeds(session, course_id, vectors.shape[1])
        report("grouping", 0, None)
        groups = group_questions(vectors, seeds)
        report("storing", 0, None)
        touched = [g for g in groups if g.members]
        summary.groups = len(touched)
        stored: list[tuple[Group, Candidate]] = []
        for k, group in enumerate(touched):
            stored.append((group, _store_group(session, course_id, group, questions, summary)))
            report("storing", k + 1, len(touched))
        session.flush()  # candidate ids
        candidate_of = {
            (questions[row].forum, questions[row].thread_id): candidate.id
            for group, candidate in stored
            for row in group.members
        }
        by_thread = {(q.forum, q.thread_id): q for q in questions}
        _record_threads(session, course_id, fresh, by_thread, candidate_of)
        _answered_since(session, course_id, answered_since, summary)
        to_match = [(c.id, dict(c.question)) for _, c in stored if _worth_matching(c)]
    if asker is not None and to_match:
        # Asking takes a while at scale: it runs after the commit, so that the write lock
        # (SQLite has one for the whole database) is not held while students ask.
        found = []
        for k, (candidate_id, question) in enumerate(to_match):
            found.append((candidate_id, *_match(question, asker, course)))
            report("matching", k + 1, len(to_match))
        with transaction(factory) as session:
            for candidate_id, slug, runner in found:
                candidate = session.get(Candidate, candidate_id)
                if candidate is None or candidate.status != "open":
                    continue  # a TA decided it meanwhile
                candidate.existing_slug = slug
                candidate.suggested_runner = runner
                summary.matched_existing += slug is not None
    return summary


# -- reading --------------------------------------------------------------------------


def _mined_threads(session: Session, course_id: int) -> dict[tuple[str, str], bool]:
    rows = session.execute(
        select(MinedThread.forum, MinedThread.thread_id, MinedThread.staff_answered).where(
            MinedThread.course_id == course_id
        )
    )
    return {(forum, thread): answered for forum, thread, answered in rows}


def _read(
    path: Path,
    fmt: str,
    staff: Iterable[str],
    seen: dict[tuple[str, str], bool],
    summary: Summary,
    report: Progress,
) -> tuple[list[MinedQuestion], list[tuple[str, str]], list[MinedQuestion]]:
    """The new threads' questions; the new threads' keys; the questions of threads mined
    before without a staff answer that have one now."""
    stats = ImportStats()
    questions: list[MinedQuestion] = []
    fresh: list[tuple[str, str]] = []
    answered_since: list[MinedQuestion] = []
    staff_names = frozenset(s.strip() for s in staff if s.strip())
    for thread in read_export(path, fmt, staff_names, stats=stats):
        summary.threads += 1
        summary.posts += len(thread.posts)
        key = (thread.forum, thread.thread_id)
        if key in seen and seen[key]:
            summary.already_mined += 1
            continue
        question, why, removed = extract(thread)
        if key in seen:  # mined before without a staff answer
            summary.already_mined += 1
            if question is not None and question.staff_answered:
                answered_since.append(question)
            continue
        fresh.append(key)
        summary.removed += removed
        if question is None:
            summary.skipped[why] += 1
        else:
            questions.append(question)
            summary.questions += 1
        if summary.threads % 200 == 0:
            report("reading", summary.posts, None)
    report("reading", summary.posts, summary.posts)
    summary.unreadable_rows = stats.skipped_rows
    return questions, fresh, answered_since


def _full_link(url: str | None, base_url: str | None) -> str | None:
    """An http(s) link to the thread, or None (a path without a base, another scheme)."""
    if url and base_url and url.startswith("/") and not url.startswith("//"):
        url = urljoin(base_url.rstrip("/") + "/", url.lstrip("/"))
    return url if url and url.startswith(("https://", "http://")) else None


def _encode(texts: list[str], report: Progress) -> np.ndarray:
    parts = []
    for start in range(0, len(texts), ENCODE_BATCH):
        parts.append(represent(texts[start : start + ENCODE_BATCH]))
        report("encoding", min(start + ENCODE_BATCH, len(texts)), len(texts))
    return np.vstack(parts) if parts else np.zeros((0, 1), dtype=np.float32)


# -- grouping into candidates ------------------------------------------------------------


def _seeds(session: Session, course_id: int, dim: int) -> list[Seed]:
    """Earlier candidates as finished groups (each question added one vector to its sum);
    sums of another representation (``grouping.represent`` changed: another dimension)
    are left out."""
    rows = session.execute(
        select(Candidate.id, Candidate.vector_sum, Candidate.asked_count).where(
            Candidate.course_id == course_id
        )
    )
    return [
        Seed(cid, np.frombuffer(blob, dtype="<f4").copy(), max(count, 1))
        for cid, blob, count in rows
        if len(blob) == 4 * dim
    ]


def _worth_matching(candidate: Candidate) -> bool:
    """An open candidate a TA will see (answered, or asked twice) not matched before."""
    listed = candidate.staff_answered or candidate.asked_count >= 2
    return candidate.status == "open" and listed and candidate.existing_slug is None


def _store_group(
    session: Session,
    course_id: int,
    group: Group,
    questions: list[MinedQuestion],
    summary: Summary,
) -> Candidate:
    members = [questions[i] for i in group.members]
    if group.candidate_id is not None:
        candidate = session.get(Candidate, group.candidate_id)
        assert candidate is not None
        summary.updated_candidates += 1
        if candidate.status == "rejected":
            summary.joined_rejected += len(members)
    else:
        candidate = Candidate(
            course_id=course_id, status="open", asked_count=0, votes=0, staff_answered=False,
            question={}, answer={}, phrasings={}, sources=[], vector_sum=b"",
        )  # fmt: skip
        session.add(candidate)
        summary.new_candidates += 1
    was_frequent_unanswered = not candidate.staff_answered and candidate.asked_count >= 2
    candidate.asked_count += len(members)
    candidate.votes += sum(q.votes for q in members)
    candidate.staff_answered = candidate.staff_answered or any(q.staff_answered for q in members)
    candidate.vector_sum = group.vector_sum.astype("<f4").tobytes()
    candidate.phrasings = _phrasings(candidate.phrasings, members)
    candidate.question = _questions(candidate.phrasings, candidate.question)
    candidate.answer = _answer(candidate.answer, members)
    candidate.sources = _sources(candidate.sources, members)
    candidate.score = rank(candidate.asked_count, candidate.votes, candidate.staff_answered)
    candidate.updated_at = utcnow()
    if not candidate.staff_answered and candidate.asked_count >= 2 and not was_frequent_unanswered:
        summary.unanswered_frequent += 1
    return candidate


def rank(asked: int, votes: int, staff_answered: bool) -> float:
    """How much a group deserves a TA's time: askings count most, then votes (damped),
    then a staff answer to start from."""
    return round(asked + math.log1p(max(votes, 0)) + (1.5 if staff_answered else 0.0), 4)


# Importers give aware (UTC) times, or None when a post's time cannot be read: last.
_UNDATED = datetime.max.replace(tzinfo=UTC)


def _by_votes_then_time(q: MinedQuestion) -> tuple[int, datetime]:
    return (-q.votes, q.asked_at or _UNDATED)


def _phrasings(current: dict[str, list[str]], members: list[MinedQuestion]) -> dict[str, Any]:
    out = {lang: list(texts) for lang, texts in current.items()}
    for q in sorted(members, key=lambda q: -q.votes):
        texts = out.setdefault(q.lang, [])
        folded = {t.casefold() for t in texts}
        if q.phrasing.casefold() not in folded and len(texts) < MAX_PHRASINGS:
            texts.append(q.phrasing)
    return out


def _questions(phrasings: dict[str, list[str]], current: dict[str, str]) -> dict[str, Any]:
    """The draft's question per language: kept once set, else the most voted phrasing."""
    return {lang: current.get(lang) or texts[0] for lang, texts in phrasings.items() if texts}


def _answer(current: dict[str, str], members: list[MinedQuestion]) -> dict[str, Any]:
    if current:
        return current
    answered = [q for q in members if q.answer and q.answer_lang]
    if not answered:
        return {}
    best = min(answered, key=lambda q: (not q.staff_answered, *_by_votes_then_time(q)))
    assert best.answer_lang is not None and best.answer is not None
    return {best.answer_lang: best.answer}


def _sources(current: list[dict[str, Any]], members: list[MinedQuestion]) -> list[Any]:
    out = list(current)
    known = {(s["forum"], s["thread_id"]) for s in out}
    for q in members:
        if (q.forum, q.thread_id) in known or len(out) >= MAX_SOURCES:
            continue
        known.add((q.forum, q.thread_id))
        out.append(
            {
                "forum": q.forum,
                "thread_id": q.thread_id,
                "url": q.url,
                "date": q.asked_at.date().isoformat() if q.asked_at else None,
                "title": q.title or q.phrasing,
            }
        )
    return out


def _match(question: dict[str, str], asker: Asker, course: str) -> tuple[str | None, str | None]:
    """An existing entry that already answers the question (in any of its languages),
    else an experiment that fits: the nearest entry's, when it is close enough."""
    best_runner: tuple[float, str] | None = None
    for lang, text in question.items():
        result = asker.ask(text, course=course, lang=lang, top_k=1, log=False)
        if not result.abstained and result.best is not None:
            return result.best.entry.slug, None
        for match in result.matches[:1]:
            runner = getattr(match.entry, "runner", None)
            if runner and match.confidence >= SUGGEST_MIN_CONFIDENCE:
                name = runner["name"] if isinstance(runner, dict) else str(runner)
                if best_runner is None or match.confidence > best_runner[0]:
                    best_runner = (match.confidence, name)
    return None, best_runner[1] if best_runner else None


# -- remembering threads ------------------------------------------------------------------


def _record_threads(
    session: Session,
    course_id: int,
    fresh: list[tuple[str, str]],
    by_thread: dict[tuple[str, str], MinedQuestion],
    candidate_of: dict[tuple[str, str], int],
) -> None:
    """Every new thread (a question or not) with its candidate."""
    now = utcnow()
    session.add_all(
        MinedThread(
            course_id=course_id,
            forum=forum,
            thread_id=thread_id,
            candidate_id=candidate_of.get((forum, thread_id)),
            staff_answered=(forum, thread_id) in by_thread
            and by_thread[(forum, thread_id)].staff_answered,
            mined_at=now,
        )
        for forum, thread_id in fresh
    )


def _answered_since(
    session: Session, course_id: int, answered: list[MinedQuestion], summary: Summary
) -> None:
    """Threads mined before without a staff answer that a newer export shows answered:
    their candidate gets the answer when it has none yet."""
    for q in answered:
        row = session.scalars(
            select(MinedThread).where(
                MinedThread.course_id == course_id,
                MinedThread.forum == q.forum,
                MinedThread.thread_id == q.thread_id,
            )
        ).one()
        row.staff_answered = True
        candidate = session.get(Candidate, row.candidate_id) if row.candidate_id else None
        if candidate is None:
            continue
        candidate.staff_answered = True
        candidate.answer = _answer(candidate.answer, [q])
        candidate.score = rank(candidate.asked_count, candidate.votes, True)
        candidate.updated_at = utcnow()
        summary.updated_candidates += 1
