"""Writes to the knowledge base: the one code path for imports, TA edits and the write API.

Every accepted write stores a revision, rebuilds the entry's index units, embeds only
text not seen before (cache by model + text hash) and bumps the knowledge-base version
so every process refreshes its in-memory index.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from knowledge import embedders
from knowledge.lexical import tokens
from knowledge.models import (
    Citation,
    Course,
    Embedding,
    Entry,
    EntryRevision,
    IndexUnit,
    KbState,
    utcnow,
)
from knowledge.schema import EntryData
from knowledge.text import normalize, passages, text_hash

Outcome = Literal["created", "updated", "unchanged"]
# Models whose embeddings are stored for every unit.
DEFAULT_MODELS: tuple[str, ...] = (embedders.MiniLMInt8.name, embedders.MultilingualUSE.name)


class StaleVersion(Exception):
    """The caller edited an older version than the one stored."""

    def __init__(self, current: Entry) -> None:
        super().__init__(f"entry {current.slug} is at version {current.version}")
        self.current = current


class NotFound(Exception):
    pass


@dataclass
class WriteResult:
    outcome: Outcome
    entry: Entry


def entry_data(entry: Entry) -> EntryData:
    """The EntryData an Entry row holds (for export, revisions and the API)."""
    raw = {
        "slug": entry.slug,
        "course": entry.course.code,
        "question": entry.question,
        "aliases": entry.aliases or {},
        "answer": entry.answer,
        "tags": entry.tags or [],
        "citations": [
            {
                k: v
                for k, v in {
                    "key": c.key,
                    "title": c.title,
                    "authors": c.authors,
                    "year": c.year,
                    "venue": c.venue,
                    "url": c.url,
                    "doi": c.doi,
                }.items()
                if v is not None
            }
            for c in entry.citations
        ],
    }
    if entry.runner_name:
        raw["runner"] = {"name": entry.runner_name, "params": entry.runner_params or {}}
    return EntryData.model_validate(raw)


def get_course(session: Session, code: str, create: bool = False) -> Course | None:
    course = session.scalar(select(Course).where(Course.code == code))
    if course is None and create:
        course = Course(code=code, title=code)
        session.add(course)
        session.flush()
    return course


def find_entry(session: Session, slug: str, course: str | None = None, deleted: bool = False):  # type: ignore[no-untyped-def]
    query = select(Entry).join(Course).where(Entry.slug == slug)
    if course:
        query = query.where(Course.code == course)
    if not deleted:
        query = query.where(Entry.deleted_at.is_(None))
    return session.scalars(query.order_by(Entry.id)).first()


def upsert_entry(
    session: Session,
    data: EntryData,
    *,
    author: str = "import",
    expected_version: int | None = None,
    models: Iterable[str] = DEFAULT_MODELS,
) -> WriteResult:
    """Create or update one entry. Unchanged content writes nothing."""
    course = get_course(session, data.course, create=True)
    assert course is not None
    entry = session.scalar(
        select(Entry).where(Entry.course_id == course.id, Entry.slug == data.slug)
    )
    digest = data.content_hash()
    if entry is not None and expected_version is not None and entry.version != expected_version:
        raise StaleVersion(entry)
    if entry is not None and entry.content_hash == digest and entry.deleted_at is None:
        return WriteResult("unchanged", entry)
    outcome: Outcome = "created" if entry is None or entry.deleted_at is not None else "updated"
    if entry is None:
        entry = Entry(course=course, slug=data.slug)
        session.add(entry)
    else:
        # Old citations go first: the unit of work would insert new rows before deleting.
        entry.citations.clear()
        session.flush()
    _apply(entry, data, digest)
    session.flush()  # assigns id; the version column guards against lost updates
    _record_revision(session, entry, data, "create" if outcome == "created" else "update", author)
    _rebuild_units(session, entry, data, models)
    bump_version(session)
    return WriteResult(outcome, entry)


def delete_entry(
    session: Session, entry: Entry, *, author: str, expected_version: int | None = None
) -> None:
    """Soft delete (undo = restore the last revision)."""
    if expected_version is not None and entry.version != expected_version:
        raise StaleVersion(entry)
    entry.deleted_at = utcnow()
    entry.updated_at = utcnow()
    session.flush()
    _record_revision(session, entry, entry_data(entry), "delete", author)
    session.execute(delete(IndexUnit).where(IndexUnit.entry_id == entry.id))
    bump_version(session)


def restore_entry(
    session: Session,
    entry: Entry,
    *,
    author: str,
    data: EntryData | None = None,
    expected_version: int | None = None,
    models: Iterable[str] = DEFAULT_MODELS,
) -> WriteResult:
    """Undo a soft delete, or bring back an older revision's content (``data``).

    Recorded as a ``restore`` revision; the index and the knowledge-base version follow
    as for any other write.
    """
    if expected_version is not None and entry.version != expected_version:
        raise StaleVersion(entry)
    data = data or entry_data(entry)
    if data.slug != entry.slug or data.course != entry.course.code:
        raise ValueError("a restore keeps the entry's slug and course")
    digest = data.content_hash()
    if entry.deleted_at is None and entry.content_hash == digest:
        return WriteResult("unchanged", entry)
    entry.citations.clear()
    session.flush()
    _apply(entry, data, digest)
    session.flush()
    _record_revision(session, entry, data, "restore", author)
    _rebuild_units(session, entry, data, models)
    bump_version(session)
    return WriteResult("updated", entry)


def _apply(entry: Entry, data: EntryData, digest: str) -> None:
    entry.question = dict(data.question)
    entry.aliases = {k: list(v) for k, v in data.aliases.items()}
    entry.answer = dict(data.answer)
    entry.tags = list(data.tags)
    entry.runner_name = data.runner.name if data.runner else None
    entry.runner_params = dict(data.runner.params) if data.runner else None
    entry.content_hash = digest
    entry.deleted_at = None
    entry.updated_at = utcnow()
    entry.citations = [
        Citation(position=i, **c.model_dump(exclude_none=True))
        for i, c in enumerate(data.citations)
    ]


def _record_revision(
    session: Session, entry: Entry, data: EntryData, action: str, author: str
) -> None:
    last = session.scalar(
        select(EntryRevision.number)
        .where(EntryRevision.entry_id == entry.id)
        .order_by(EntryRevision.number.desc())
        .limit(1)
    )
    session.add(
        EntryRevision(
            entry_id=entry.id,
            number=(last or 0) + 1,
            snapshot=data.canonical(),
            action=action,
            author=author,
        )
    )


def units_for(data: EntryData) -> list[tuple[str, str, str]]:
    """(kind, lang, text) for every retrievable piece of an entry."""
    units: list[tuple[str, str, str]] = []
    for lang, question in data.question.items():
        units.append(("question", lang, normalize(question)))
    for lang, aliases in data.aliases.items():
        units.extend(("alias", lang, normalize(a)) for a in aliases)
    for lang, answer in data.answer.items():
        units.extend(("passage", lang, p) for p in passages(answer))
    seen: set[tuple[str, str]] = set()
    unique = []
    for kind, lang, text in units:
        if (lang, text) not in seen:
            seen.add((lang, text))
            unique.append((kind, lang, text))
    return unique


def _rebuild_units(session: Session, entry: Entry, data: EntryData, models: Iterable[str]) -> None:
    units = _write_units(session, entry.id, data)
    for model in models:
        ensure_embeddings(session, model, units)


def _write_units(session: Session, entry_id: int, data: EntryData) -> list[str]:
    """Replace an entry's index units; returns their texts."""
    session.execute(delete(IndexUnit).where(IndexUnit.entry_id == entry_id))
    units = units_for(data)
    session.add_all(
        IndexUnit(
            entry_id=entry_id,
            kind=kind,
            lang=lang,
            text=text,
            text_hash=text_hash(text),
            terms=" ".join(tokens(text)),
        )
        for kind, lang, text in units
    )
    return [text for _, _, text in units]


def ensure_embeddings(session: Session, model: str, texts: list[str]) -> int:
    """Embed the texts that have no stored embedding for ``model``; return how many were new."""
    by_hash = {text_hash(t): t for t in texts}
    if not by_hash:
        return 0
    known: set[str] = set()
    hashes = list(by_hash)
    for i in range(0, len(hashes), 500):
        known.update(
            session.scalars(
                select(Embedding.text_hash).where(
                    Embedding.model == model, Embedding.text_hash.in_(hashes[i : i + 500])
                )
            )
        )
    missing = [h for h in hashes if h not in known]
    if not missing:
        return 0
    blobs = _recent.get_many(model, missing)
    to_encode = [h for h in missing if h not in blobs]
    if to_encode:
        vectors = embedders.get(model).encode([by_hash[h] for h in to_encode])
        for h, v in zip(to_encode, vectors, strict=True):
            blobs[h] = v.astype("<f4").tobytes()
            _recent.put(model, h, blobs[h])
    session.add_all(
        Embedding(model=model, text_hash=h, dim=len(blobs[h]) // 4, vector=blobs[h])
        for h in missing
    )
    session.flush()
    return len(missing)


class _RecentVectors:
    """A bounded in-process memo of recent embeddings by (model, text hash).

    Saves re-encoding when the same text is written to another database in this process
    (imports into fresh databases, tests, benchmarks); the database stays the store.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._data: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, model: str, hashes: list[str]) -> dict[str, bytes]:
        with self._lock:
            found = {h: self._data[(model, h)] for h in hashes if (model, h) in self._data}
            for h in found:
                self._data.move_to_end((model, h))
            return found

    def put(self, model: str, digest: str, blob: bytes) -> None:
        with self._lock:
            self._data[(model, digest)] = blob
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)


_recent = _RecentVectors()


def bump_version(session: Session) -> None:
    updated = session.execute(
        update(KbState)
        .where(KbState.id == 1)
        .values(version=KbState.version + 1, updated_at=utcnow())
    )
    if updated.rowcount == 0:
        session.add(KbState(id=1, version=1, updated_at=utcnow()))
        session.flush()


def kb_version(session: Session) -> tuple[int, datetime | None]:
    row = session.execute(
        select(KbState.version, KbState.updated_at).where(KbState.id == 1)
    ).first()
    return (row[0], row[1]) if row else (0, None)


def embed_missing(session: Session, models: Iterable[str] = DEFAULT_MODELS) -> int:
    """Embed every live index unit that has no vector for one of ``models``.

    Needed after the set of models changes (a new model has no stored vectors yet);
    costs a scan of the units and no encoding when nothing is missing.
    """
    texts = list(  # ensure_embeddings drops repeated texts itself
        session.scalars(
            select(IndexUnit.text)
            .join(Entry, Entry.id == IndexUnit.entry_id)
            .where(Entry.deleted_at.is_(None))
            .order_by(IndexUnit.id)
        )
    )
    added = sum(ensure_embeddings(session, model, texts) for model in models)
    if added:
        bump_version(session)
    return added


def reindex(session: Session, models: Iterable[str] = DEFAULT_MODELS) -> dict[str, int]:
    """Rebuild units for every live entry; embeds only text with no stored embedding."""
    models = tuple(models)
    stats = {"entries": 0, "units": 0, "embedded": 0}
    entries = session.scalars(select(Entry).where(Entry.deleted_at.is_(None)).order_by(Entry.id))
    all_texts: list[str] = []
    for entry in entries:
        texts = _write_units(session, entry.id, entry_data(entry))
        all_texts.extend(texts)
        stats["entries"] += 1
        stats["units"] += len(texts)
    for model in models:
        stats["embedded"] += ensure_embeddings(session, model, all_texts)
    bump_version(session)
    return stats
