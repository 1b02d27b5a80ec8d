"""The one place that changes entries and the TAs' queue: create, update, delete, restore,
restore a revision; answer, dismiss and reopen queued questions, with their phrasings as
aliases; accept a mined candidate as a new entry or merge it into one as aliases.

Each call is one transaction that takes the write lock first, checks the version the
caller edited, and records a revision (``knowledge.entry_store``). Failures are typed, and the
JSON API and the TA pages only translate them:

- ``NotFound``: no live entry (or, for restores, no entry) has that slug;
- ``SlugTaken``: creating a slug a live entry has;
- ``Stale``: the caller edited another version than the stored one (``current``: the
  stored version, or None when another write landed between the check and ours);
- ``InvalidRevision``: an old revision no longer meets today's rules.

A slug whose entry was deleted can be created again on both paths: the entry comes back
with the new content and keeps its history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from knowledge import queue_groups
from knowledge.db import rows_changed
from knowledge.entry_store import (
    StaleVersion,
    WriteResult,
    delete_entry,
    entry_data,
    find_entry,
    restore_entry,
    upsert_entry,
)
from knowledge.forum import review
from knowledge.schema import LANGS, EntryData, Lang, is_slug
from knowledge.tables import AskLog, Entry, EntryRevision
from knowledge.text import detect_lang, normalize
from runners import registry


class EditError(Exception):
    """A write that was refused; nothing was changed."""


class NotFound(EditError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"no entry with slug {slug!r}")
        self.slug = slug


class SlugTaken(EditError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"an entry with slug {slug!r} exists")
        self.slug = slug


class Stale(EditError):
    def __init__(self, current: int | None) -> None:
        super().__init__("the entry was changed by someone else")
        self.current = current  # the stored version, when known


@dataclass(frozen=True)
class FieldError:
    field: str  # a dotted path into the entry, e.g. "runner.params.ridge"
    code: str
    message: str


class Invalid(EditError):
    """The entry breaks a rule the schema alone cannot check (its experiment and params)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{errors[0].field}: {errors[0].message}")
        self.errors = errors
        self.field, self.code = errors[0].field, errors[0].code


def check_runner(data: EntryData) -> None:
    """The entry's experiment is registered and its params are valid for it (strictly:
    "3" is not an integer here, as it is not in JSON)."""
    if data.runner is None:
        return
    name = data.runner.name
    if name not in registry.EXPERIMENTS:
        known = ", ".join(registry.names())
        message = f"Unknown experiment {name!r}; known: {known}."
        raise Invalid([FieldError("runner.name", "unknown_experiment", message)])
    try:
        registry.spec(name).Params.model_validate(data.runner.params, strict=True)
    except ValidationError as exc:
        raise Invalid(
            [
                FieldError(
                    ".".join(["runner.params", *(str(p) for p in err["loc"])]),
                    err["type"],
                    err["msg"],
                )
                for err in exc.errors(include_url=False, include_input=False)
            ]
        ) from None


class InvalidRevision(EditError):
    def __init__(self, number: int) -> None:
        super().__init__(f"revision {number} does not meet the current rules")
        self.number = number


def lock_writes(session: Session) -> None:
    """Take SQLite's write lock now, so the version read next cannot go stale before our
    UPDATE (PostgreSQL locks the entry row instead, in ``_for_update``)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE kb_state SET version = version WHERE id = 1"))


def _for_update(
    session: Session, slug: str, course: str | None, deleted: bool = False
) -> Entry | None:
    if not is_slug(slug):  # a malformed slug names no entry (and never reaches the database)
        return None
    return find_entry(session, slug, course, deleted=deleted, for_update=True)


def _locked(session: Session, slug: str, course: str | None, deleted: bool = False) -> Entry:
    lock_writes(session)
    entry = _for_update(session, slug, course, deleted=deleted)
    if entry is None:
        raise NotFound(slug)
    return entry


def _check(entry: Entry, expected: Sequence[int]) -> None:
    """Every version the caller says it edited must be the stored one."""
    if any(version != entry.version for version in expected):
        raise Stale(entry.version)


def _loaded(entry: Entry) -> Entry:
    """Load what presenters read, so the entry can be shown after its session closes."""
    _ = entry.course.code, list(entry.citations)
    return entry


def create(
    factory: sessionmaker[Session],
    data: EntryData,
    *,
    author: str,
    resolves: Sequence[int] = (),
    candidate: int | None = None,
) -> tuple[WriteResult, int]:
    """A new entry (or a deleted one back, with this content); the queued questions in
    ``resolves`` are marked answered by it, and the mined ``candidate`` it was written
    from accepted. Returns the write and how many queued questions were answered."""
    check_runner(data)
    with factory() as session:
        try:
            with session.begin():
                lock_writes(session)
                existing = _for_update(session, data.slug, data.course, deleted=True)
                if existing is not None and existing.deleted_at is None:
                    raise SlugTaken(data.slug)
                result = upsert_entry(
                    session,
                    data,
                    author=author,
                    expected_version=existing.version if existing is not None else None,
                )
                answered = queue_groups.resolve(session, list(resolves), data.slug)
                if candidate is not None:
                    review.mark(session, candidate, "accepted", data.slug, author)
                _loaded(result.entry)
        except IntegrityError as exc:
            if "uq_entries_course_slug" not in str(exc) and "entries.slug" not in str(exc):
                raise  # not the slug: no other error may pass for a taken slug
            # Another writer created the same slug between our check and our INSERT.
            raise SlugTaken(data.slug) from None
        except (StaleVersion, StaleDataError):
            raise SlugTaken(data.slug) from None
    return result, answered


def update(
    factory: sessionmaker[Session],
    slug: str,
    changes: Callable[[Entry], EntryData],
    *,
    author: str,
    expected: Sequence[int],
    course: str | None = None,
) -> WriteResult:
    """Replace the live entry's content with ``changes(entry)`` (the caller builds the
    data from the stored entry: its slug and course stay), if it is at every version in
    ``expected``."""
    with factory() as session:
        try:
            with session.begin():
                entry = _locked(session, slug, course)
                _check(entry, expected)
                data = changes(entry)
                check_runner(data)
                result = upsert_entry(session, data, author=author, expected_version=entry.version)
                _loaded(result.entry)
        except (StaleVersion, StaleDataError):
            # Someone else's write landed between our check and our UPDATE.
            raise Stale(None) from None
    return result


def delete(
    factory: sessionmaker[Session],
    slug: str,
    *,
    author: str,
    expected: Sequence[int],
    course: str | None = None,
) -> None:
    """Soft-delete the live entry (undo: ``restore``), if it is at every version in
    ``expected``."""
    with factory() as session:
        try:
            with session.begin():
                entry = _locked(session, slug, course)
                _check(entry, expected)
                delete_entry(session, entry, author=author, expected_version=entry.version)
        except (StaleVersion, StaleDataError):
            raise Stale(None) from None


def restore(factory: sessionmaker[Session], slug: str, *, author: str) -> WriteResult:
    """Undo the deletion of a deleted entry."""
    with factory() as session, session.begin():
        entry = _locked(session, slug, None, deleted=True)
        if entry.deleted_at is None:
            raise NotFound(slug)
        return restore_entry(session, entry, author=author)


def restore_revision(
    factory: sessionmaker[Session],
    slug: str,
    number: int,
    *,
    author: str,
    expected: Sequence[int],
) -> WriteResult:
    """Bring back revision ``number``'s content (a deleted entry comes back too)."""
    with factory() as session:
        try:
            with session.begin():
                entry = _locked(session, slug, None, deleted=True)
                revision = session.scalar(
                    select(EntryRevision).where(
                        EntryRevision.entry_id == entry.id, EntryRevision.number == number
                    )
                )
                if revision is None:
                    raise NotFound(slug)
                try:
                    data = EntryData.model_validate(revision.snapshot)
                except ValidationError:  # written under older rules the entry no longer meets
                    raise InvalidRevision(number) from None
                _check(entry, expected)
                return restore_entry(session, entry, author=author, data=data)
        except (StaleVersion, StaleDataError):
            raise Stale(None) from None


# -- the TAs' queue ------------------------------------------------------------------

MAX_ALIASES = 50  # per language, from queued questions
MAX_PHRASING_CHARS = 500


def merge_phrasings(
    question: Mapping[Lang, str],
    aliases: Mapping[Lang, list[str]],
    phrasings: Iterable[str],
    *,
    new_languages: bool,
) -> tuple[dict[Lang, str], dict[Lang, list[str]]]:
    """Students' phrasings added to an entry's question and aliases, as they wrote them
    (spaces collapsed), each language apart, none twice (after normalisation).

    A phrasing in a language the entry lacks becomes its question there when
    ``new_languages`` (a draft from the queue), and is left out otherwise (an entry's
    aliases stay in the languages it is written in).
    """
    question = dict(question)
    aliases = {lang: list(aliases.get(lang, [])) for lang in LANGS}
    known = {normalize(q).casefold() for q in question.values()}
    known |= {normalize(a).casefold() for values in aliases.values() for a in values}
    for phrasing in phrasings:
        text = " ".join(phrasing.split())[:MAX_PHRASING_CHARS]
        key = normalize(text).casefold()
        if len(text) < 3 or key in known:
            continue
        lang = detect_lang(text)
        if lang not in question:
            if new_languages:
                question[lang] = text
                known.add(key)
            continue
        if len(aliases[lang]) < MAX_ALIASES:
            aliases[lang].append(text)
            known.add(key)
    return question, {lang: values for lang, values in aliases.items() if values}


def answer_queued(
    factory: sessionmaker[Session],
    ask_ids: Sequence[int],
    slug: str,
    *,
    author: str,
    add_aliases: bool,
) -> int:
    """Mark queued questions answered by the live entry ``slug`` (its phrasings added as
    aliases when ``add_aliases``); returns how many were open."""
    with factory() as session, session.begin():
        entry = _locked(session, slug, None)
        if add_aliases:
            data = entry_data(entry)
            questions = session.scalars(select(AskLog.question).where(AskLog.id.in_(ask_ids)))
            _, aliases = merge_phrasings(
                data.question, data.aliases, questions, new_languages=False
            )
            upsert_entry(
                session,
                data.model_copy(update={"aliases": aliases}),
                author=author,
                expected_version=entry.version,
            )
        return queue_groups.resolve(session, ask_ids, entry.slug)


def merge_candidate(
    factory: sessionmaker[Session], candidate_id: int, slug: str, *, author: str
) -> int:
    """A mined candidate's phrasings become aliases of the live entry ``slug`` (in the
    languages the entry has); the candidate is merged. Returns how many aliases were added."""
    with factory() as session, session.begin():
        candidate = review.get_candidate(session, candidate_id)
        entry = _locked(session, slug, None)
        data = entry_data(entry)
        phrasings = [p for texts in candidate.phrasings.values() for p in texts]
        _, aliases = merge_phrasings(data.question, data.aliases, phrasings, new_languages=False)
        added = sum(len(v) for v in aliases.values()) - sum(len(v) for v in data.aliases.values())
        if added:
            upsert_entry(
                session,
                data.model_copy(update={"aliases": aliases}),
                author=author,
                expected_version=entry.version,
            )
        review.mark(session, candidate_id, "merged", entry.slug, author)
        return added


def dismiss_queued(factory: sessionmaker[Session], ask_ids: Sequence[int]) -> int:
    """Take queued questions off the queue without an answer (undo: ``reopen_queued``)."""
    with factory() as session, session.begin():
        return queue_groups.resolve(session, ask_ids, queue_groups.DISMISSED)


def reopen_queued(factory: sessionmaker[Session], ask_ids: Sequence[int]) -> int:
    """Put dismissed questions back on the queue; returns how many."""
    with factory() as session, session.begin():
        result = session.execute(
            sa_update(AskLog)
            .where(AskLog.id.in_(list(ask_ids)), AskLog.resolved_slug == queue_groups.DISMISSED)
            .values(resolved_slug=None)
        )
        return rows_changed(result)
