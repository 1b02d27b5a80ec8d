"""The TAs' unanswered queue: declined questions grouped by similarity, newest first.

A question's vector comes from the multilingual encoder the retriever already uses, so
a Japanese and an English phrasing of the same question land in one group. Vectors are
cached in the ``embeddings`` table by (model, text hash) like index units: each question
is embedded once, ever. Grouping is greedy over the newest questions first: a question
joins the group whose centroid it is closest to when the cosine reaches the threshold,
otherwise it starts a new group. Answering or dismissing a group sets ``resolved_slug``
on its questions, which takes them out of the queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from knowledge import embedders
from knowledge.db import rows_changed, transaction
from knowledge.entry_store import ensure_embeddings
from knowledge.tables import AskLog, Embedding
from knowledge.text import normalize, text_hash

MODEL = embedders.MultilingualUSE.name
# Cosine to a group's centroid needed to join it (paraphrases of one question score
# about 0.8 with this encoder; different questions on one topic about 0.5-0.7).
THRESHOLD = 0.75
# The same question in the other language scores lower with this encoder (0.61-0.84 on 8
# hand-written English/Japanese pairs, different questions 0.23-0.60 but for one 0.77):
# joining a group none of whose questions share the asker's language needs this.
CROSS_LANG_THRESHOLD = 0.6
MAX_QUESTIONS = 5000  # the newest open questions grouped (the page says when there are more)
# One client's newest open questions taken at most: a flood cannot bury everyone else's.
MAX_PER_CLIENT = 20
# resolved_slug of questions a TA dismissed (not a valid slug, so never an entry's).
DISMISSED = "~dismissed"


@dataclass
class QueuedQuestion:
    id: int
    question: str
    lang: str
    created_at: datetime
    best_slug: str | None
    confidence: float


@dataclass
class QuestionGroup:
    """Similar declined questions; ``questions`` are newest first."""

    questions: list[QueuedQuestion] = field(default_factory=list)

    @property
    def newest(self) -> QueuedQuestion:
        return self.questions[0]

    @property
    def count(self) -> int:
        return len(self.questions)

    @property
    def ids(self) -> list[int]:
        return [q.id for q in self.questions]

    @property
    def langs(self) -> list[str]:
        return sorted({q.lang for q in self.questions})

    def phrasings(self, limit: int = 10) -> list[str]:
        """Distinct wordings, newest first (the newest question is the first)."""
        seen: set[str] = set()
        out: list[str] = []
        for q in self.questions:
            key = normalize(q.question).casefold()
            if key not in seen:
                seen.add(key)
                out.append(q.question)
            if len(out) == limit:
                break
        return out


def open_questions(
    session: Session, course: str | None = None, limit: int = MAX_QUESTIONS
) -> list[QueuedQuestion]:
    """Declined questions no TA has answered or dismissed yet, newest first; of one
    client's, the newest MAX_PER_CLIENT (questions logged without a client all count)."""
    newest_first = (AskLog.created_at.desc(), AskLog.id.desc())
    rank = func.row_number().over(partition_by=AskLog.client, order_by=newest_first)
    ranked = select(AskLog.id, rank.label("rank")).where(
        AskLog.abstained.is_(True), AskLog.resolved_slug.is_(None)
    )
    if course:
        ranked = ranked.where(AskLog.course_code == course)
    kept = ranked.subquery()
    query = (
        select(AskLog)
        .join(kept, kept.c.id == AskLog.id)
        .where(or_(AskLog.client.is_(None), kept.c.rank <= MAX_PER_CLIENT))
    )
    rows = session.scalars(query.order_by(*newest_first).limit(limit))
    return [
        QueuedQuestion(r.id, r.question, r.lang, r.created_at, r.best_slug, r.confidence)
        for r in rows
    ]


def question_vectors(session: Session, texts: Sequence[str], model: str = MODEL) -> np.ndarray:
    """Normalised vectors for ``texts``; embeds (and stores) only texts never seen before."""
    normalized = [normalize(t) for t in texts]
    ensure_embeddings(session, model, list(dict.fromkeys(normalized)))
    hashes = [text_hash(t) for t in normalized]
    stored: dict[str, bytes] = {}
    unique = list(dict.fromkeys(hashes))
    for i in range(0, len(unique), 500):
        rows = session.execute(
            select(Embedding.text_hash, Embedding.vector).where(
                Embedding.model == model, Embedding.text_hash.in_(unique[i : i + 500])
            )
        )
        stored.update((digest, vector) for digest, vector in rows)
    dim = embedders.get(model).dim
    matrix = np.zeros((len(texts), dim), dtype=np.float32)
    for row, digest in enumerate(hashes):
        matrix[row] = np.frombuffer(stored[digest], dtype="<f4")
    return matrix


def group_vectors(
    vectors: np.ndarray,
    threshold: float = THRESHOLD,
    langs: Sequence[str] | None = None,
    cross_threshold: float = CROSS_LANG_THRESHOLD,
) -> list[list[int]]:
    """Greedy centroid grouping of rows in the given order; returns row indices per group.
    With ``langs`` (one per row), a row joins a group with no question in its language
    at ``cross_threshold``."""
    groups: list[list[int]] = []
    # Per group: the sum of its vectors and that sum normalised (its centroid). Only the
    # group a row joins changes, so only its centroid is recomputed.
    sums = np.zeros(vectors.shape, dtype=np.result_type(np.float32, vectors.dtype))
    centroids = np.zeros_like(sums)
    row_langs = list(langs) if langs is not None else [""] * len(vectors)
    # Per language: which groups hold a question in it (without langs: every group).
    has_lang = {lang: np.full(len(vectors), langs is None) for lang in set(row_langs)}
    for row, vector in enumerate(vectors):
        lang = row_langs[row]
        n = len(groups)
        if n:
            needed = np.where(has_lang[lang][:n], threshold, cross_threshold)
            margin = centroids[:n] @ vector - needed
            best = int(np.argmax(margin))
            if margin[best] >= 0:
                groups[best].append(row)
                has_lang[lang][best] = True
                sums[best] += vector
                _set_centroid(centroids, sums, best)
                continue
        groups.append([row])
        has_lang[lang][n] = True
        sums[n] = vector.astype(np.float32)
        _set_centroid(centroids, sums, n)
    return groups


def _set_centroid(centroids: np.ndarray, sums: np.ndarray, group: int) -> None:
    total = sums[group : group + 1]
    centroids[group] = total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)


def unanswered_groups(
    session: Session, course: str | None = None, threshold: float = THRESHOLD
) -> list[QuestionGroup]:
    """The queue: groups of open declined questions, the group with the newest question first.

    Call inside a transaction: vectors of new questions are stored on the way.
    """
    questions = open_questions(session, course)
    if not questions:
        return []
    vectors = question_vectors(session, [q.question for q in questions])
    langs = [q.lang for q in questions]
    groups = [
        QuestionGroup([questions[i] for i in rows])
        for rows in group_vectors(vectors, threshold, langs)
    ]
    # Rows are newest first, so every group starts with its newest question and groups
    # are opened in the order of their newest questions: the list is already newest first.
    return groups


def current_groups(
    factory: sessionmaker[Session], course: str | None = None
) -> list[QuestionGroup]:
    """``unanswered_groups`` in a transaction of its own (new questions' vectors are
    stored), once more if another request stored the same new vectors a moment ago."""
    try:
        with transaction(factory) as session:
            return unanswered_groups(session, course)
    except IntegrityError:
        with transaction(factory) as session:
            return unanswered_groups(session, course)


def resolve(session: Session, ask_ids: Iterable[int], slug: str) -> int:
    """Mark open declined questions as answered by ``slug`` (or DISMISSED); returns how many."""
    ids = sorted({int(i) for i in ask_ids})
    if not ids:
        return 0
    result = session.execute(
        update(AskLog)
        .where(
            AskLog.id.in_(ids),
            AskLog.abstained.is_(True),
            AskLog.resolved_slug.is_(None),
        )
        .values(resolved_slug=slug)
    )
    return rows_changed(result)


def count_open(session: Session) -> int:
    """Open declined questions (for a badge; not grouped)."""
    return int(
        session.scalar(
            select(func.count()).where(AskLog.abstained.is_(True), AskLog.resolved_slug.is_(None))
        )
        or 0
    )
