"""Writes to the knowledge base: the one code path for imports, TA edits and the write API.

Every accepted write stores a revision, rebuilds the entry's index units, embeds only
text not seen before (cache by model + text hash) and bumps the knowledge-base version
so every process refreshes its in-memory index.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from knowledge import embedders
from knowledge.db import insert_missing
from knowledge.lexical import tokens
from knowledge.schema import EntryData, is_slug
from knowledge.tables import (
    Citation,
    Course,
    Embedding,
    Entry,
    EntryRevision,
    IndexUnit,
    KbState,
    utcnow,
)
from knowledge.text import normalize, passages, plain_text, text_hash

Outcome = Literal["created", "updated", "unchanged"]
# Models whose embeddings are stored for every unit.
DEFAULT_MODELS: tuple[str, ...] = (embedders.E5Small.name,)
# The format units are built in (kinds, texts, lexical terms); stored units of an older
# format are rebuilt by `kb import` and `kb reindex`. 2: whole-answer units, Latin words in
# Japanese text tokenised as English.
UNITS_FORMAT = 2
# progress(done, total): called as long work advances (the CLI draws a bar).
Progress = Callable[[int, int], None]


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
    if course is None and create:  # another writer may be adding the same course
        insert_missing(session, Course, [{"code": code, "title": code}], ["code"])
        course = session.scalar(select(Course).where(Course.code == code))
    return course


def set_course(
    factory: sessionmaker[Session],
    code: str,
    *,
    title: str | None = None,
    help_url: str | None = None,
    help_en: str | None = None,
    help_ja: str | None = None,
) -> Course:
    """Create or change a course: its title, and the help a decline with nothing close
    shows (a sentence per language, a link; an empty value clears it)."""
    if not is_slug(code) or len(code) > 64:
        raise ValueError(f"not a course code: {code!r} (lower-case words joined by hyphens)")
    if help_url and not re.fullmatch(r"https?://[^\s<>\"']{1,490}", help_url):
        raise ValueError("the help URL must be an http(s) URL")
    with factory() as session, session.begin():
        course = get_course(session, code, create=True)
        assert course is not None
        if title is not None:
            course.title = title.strip()[:200]
        if help_url is not None:
            course.help_url = help_url or None
        texts = dict(course.help_text or {})
        for lang, text in (("en", help_en), ("ja", help_ja)):
            if text is not None:
                texts.pop(lang, None)
                if text.strip():
                    texts[lang] = text.strip()[:500]
        course.help_text = texts or None
        session.flush()
        return course


def find_entry(
    session: Session,
    slug: str,
    course: str | None = None,
    deleted: bool = False,
    for_update: bool = False,
) -> Entry | None:
    """The entry with ``slug`` (in ``course``; deleted ones too if ``deleted``); with
    ``for_update``, its row locked until the transaction ends (PostgreSQL)."""
    query = select(Entry).join(Course).where(Entry.slug == slug)
    if course:
        query = query.where(Course.code == course)
    if not deleted:
        query = query.where(Entry.deleted_at.is_(None))
    if for_update:
        query = query.limit(1).with_for_update(of=Entry)
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
    bump_version(session, entry.id)
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
    bump_version(session, entry.id)


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
    bump_version(session, entry.id)
    return WriteResult("updated", entry)


def _apply(entry: Entry, data: EntryData, digest: str) -> None:
    entry.question = {str(k): v for k, v in data.question.items()}
    entry.aliases = {k: list(v) for k, v in data.aliases.items()}
    entry.answer = {str(k): v for k, v in data.answer.items()}
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
    """(kind, lang, text) for every retrievable piece of an entry.

    Kinds: ``question`` and ``alias`` (question-like), ``passage`` (one paragraph of the
    answer) and ``answer`` (the whole answer, which a question paraphrasing several of
    its paragraphs matches best).
    """
    units: list[tuple[str, str, str]] = []
    for lang, question in data.question.items():
        units.append(("question", lang, normalize(question)))
    for lang, aliases in data.aliases.items():
        units.extend(("alias", lang, normalize(a)) for a in aliases)
    for lang, answer in data.answer.items():
        units.extend(("passage", lang, p) for p in passages(answer))
        if whole := plain_text(answer):
            units.append(("answer", lang, whole))
    seen: set[tuple[str, str, str]] = set()
    unique: list[tuple[str, str, str]] = []
    for kind, unit_lang, text in units:
        key = ("question" if kind == "alias" else kind, unit_lang, text)
        if key not in seen:
            seen.add(key)
            unique.append((kind, unit_lang, text))
    return unique


def _rebuild_units(session: Session, entry: Entry, data: EntryData, models: Iterable[str]) -> None:
    units = _write_units(session, entry.id, data)
    for name, texts in _texts_by_vector_name(units, models).items():
        ensure_embeddings(session, name, texts)


def _texts_by_vector_name(
    units: Iterable[tuple[str, str]], models: Iterable[str]
) -> dict[str, list[str]]:
    """(kind, text) units -> the texts to embed under each stored vector name."""
    out: dict[str, list[str]] = {}
    units = list(units)
    for model in models:
        for kind, text in units:
            out.setdefault(embedders.vector_name(model, kind), []).append(text)
    return out


def _write_units(session: Session, entry_id: int, data: EntryData) -> list[tuple[str, str]]:
    """Replace an entry's index units; returns their (kind, text)."""
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
    return [(kind, text) for kind, _, text in units]


def ensure_embeddings(
    session: Session,
    model: str,
    texts: list[str],
    progress: Progress | None = None,
    batch: int = 256,
) -> int:
    """Embed the texts that have no stored embedding for ``model``; return how many were new.

    Long runs (an upgrade embeds every unit) go in batches of ``batch`` texts, reporting
    ``progress`` after each.
    """
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
    for start in range(0, len(to_encode), batch):
        chunk = to_encode[start : start + batch]
        vectors = embedders.get(model).encode([by_hash[h] for h in chunk])
        for h, v in zip(chunk, vectors, strict=True):
            blobs[h] = v.astype("<f4").tobytes()
            _recent.put(model, h, blobs[h])
        if progress:
            progress(start + len(chunk), len(to_encode))
    rows = [
        {"model": model, "text_hash": h, "dim": len(blobs[h]) // 4, "vector": blobs[h]}
        for h in missing
    ]
    for start in range(0, len(rows), 500):  # bounded statements (bind parameter limits)
        insert_missing(session, Embedding, rows[start : start + 500], ["model", "text_hash"])
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


def bump_version(session: Session, entry_id: int | None = None) -> int:
    """Count one knowledge change; returns the new version.

    A change of one entry (``entry_id``) marks that entry, so that a process can catch
    its index up by reloading the entries changed since its version. Any other change
    (``entry_id`` None: new vectors, rebuilt units) starts a new epoch, which every
    index and snapshot of the old one must be rebuilt for.
    """
    values: dict[str, Any] = {"version": KbState.version + 1, "updated_at": utcnow()}
    if entry_id is None:
        values["epoch"] = new_epoch()
    version = session.scalar(
        update(KbState).where(KbState.id == 1).values(**values).returning(KbState.version)
    )
    if version is None:
        version = 1
        session.add(
            KbState(
                id=1, version=1, updated_at=utcnow(), units_format=UNITS_FORMAT, epoch=new_epoch()
            )
        )
        session.flush()
    if entry_id is not None:
        # Core UPDATE: an ORM write would count as a new entry version (version_id_col).
        entries = cast(Table, Entry.__table__)
        session.execute(update(entries).where(entries.c.id == entry_id).values(changed_in=version))
    return int(version)


def new_epoch() -> str:
    return uuid.uuid4().hex


def units_format(session: Session) -> int:
    """The format the stored units were built with (see UNITS_FORMAT)."""
    return session.scalar(select(KbState.units_format).where(KbState.id == 1)) or UNITS_FORMAT


def kb_version(session: Session) -> tuple[int, datetime | None]:
    row = session.execute(
        select(KbState.version, KbState.updated_at).where(KbState.id == 1)
    ).first()
    return (row[0], row[1]) if row else (0, None)


def kb_epoch(session: Session) -> tuple[str, int]:
    """(epoch, version): what an index must match to be current."""
    row = session.execute(select(KbState.epoch, KbState.version).where(KbState.id == 1)).first()
    return (row[0], row[1]) if row else ("", 0)


def embed_missing(
    session: Session,
    models: Iterable[str] = DEFAULT_MODELS,
    progress: Callable[[str], Progress] | None = None,
) -> int:
    """Embed every live index unit that has no vector for one of ``models``.

    Needed after the set of models changes (a new model has no stored vectors yet);
    costs a scan of the units and no encoding when nothing is missing. ``progress(model)``
    gives the callback for one model's embedding run.
    """
    units = session.execute(  # ensure_embeddings drops repeated texts itself
        select(IndexUnit.kind, IndexUnit.text)
        .join(Entry, Entry.id == IndexUnit.entry_id)
        .where(Entry.deleted_at.is_(None))
        .order_by(IndexUnit.id)
    ).all()
    added = sum(
        ensure_embeddings(session, name, texts, progress(name) if progress else None)
        for name, texts in _texts_by_vector_name(units, models).items()
    )
    if added:
        bump_version(session)
    return added


def rebuild_units(session: Session, progress: Progress | None = None) -> dict[str, int]:
    """Rebuild every live entry's units at the current format (no embedding here)."""
    entries = list(
        session.scalars(select(Entry).where(Entry.deleted_at.is_(None)).order_by(Entry.id))
    )
    stats = {"entries": 0, "units": 0}
    for i, entry in enumerate(entries, start=1):
        stats["units"] += len(_write_units(session, entry.id, entry_data(entry)))
        stats["entries"] += 1
        if progress and (i % 50 == 0 or i == len(entries)):
            progress(i, len(entries))
    session.execute(update(KbState).where(KbState.id == 1).values(units_format=UNITS_FORMAT))
    bump_version(session)
    return stats


def refresh_index(
    session: Session,
    models: Iterable[str] = DEFAULT_MODELS,
    *,
    rebuild: bool = False,
    units_progress: Progress | None = None,
    embed_progress: Callable[[str], Progress] | None = None,
) -> dict[str, int]:
    """Bring stored units and vectors up to date: what `kb import` and `kb reindex` run.

    Units are rebuilt when ``rebuild`` is set or they are of an older format; then every
    unit gets a vector under each of ``models`` (only new text is encoded).
    """
    stats = {"entries": 0, "units": 0, "embedded": 0}
    if rebuild or units_format(session) < UNITS_FORMAT:
        stats.update(rebuild_units(session, units_progress))
    stats["embedded"] = embed_missing(session, models, embed_progress)
    return stats


def unused_vectors(session: Session, keep: Iterable[str]) -> dict[str, int]:
    """Stored vectors per model not in ``keep`` (left by models no longer in use)."""
    rows = session.execute(
        select(Embedding.model, func.count())
        .where(Embedding.model.not_in(list(keep)))
        .group_by(Embedding.model)
    )
    return {model: n for model, n in rows}


def drop_vectors(session: Session, keep: Iterable[str]) -> dict[str, int]:
    """Delete stored vectors of every model not in ``keep``; returns how many per model."""
    keep = list(keep)
    dropped = unused_vectors(session, keep)
    if dropped:
        session.execute(delete(Embedding).where(Embedding.model.not_in(keep)))
    return dropped


def reindex(session: Session, models: Iterable[str] = DEFAULT_MODELS) -> dict[str, int]:
    """Rebuild units for every live entry; embeds only text with no stored embedding."""
    return refresh_index(session, models, rebuild=True)
