"""SQLAlchemy 2.0 data model. Alembic revisions in ``migrations/`` build the same schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    # Where questions outside the Q&A belong (logistics, other subjects): a sentence per
    # language and a link, shown with a decline that no entry is close to.
    help_text: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    help_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    entries: Mapped[list[Entry]] = relationship(back_populates="course")


class Entry(Base):
    """One curated Q&A. Bilingual fields are dicts keyed by language ("en", "ja")."""

    __tablename__ = "entries"
    __table_args__ = (UniqueConstraint("course_id", "slug", name="uq_entries_course_slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    slug: Mapped[str] = mapped_column(String(120))
    question: Mapped[dict[str, Any]] = mapped_column(JSON)
    aliases: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    runner_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    runner_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Optimistic concurrency: every accepted write increments it.
    version: Mapped[int] = mapped_column(Integer, default=1)
    content_hash: Mapped[str] = mapped_column(String(64))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The knowledge-base version of the entry's last change: what a process must reload
    # to catch its index up from an older version (``knowledge.index``).
    changed_in: Mapped[int] = mapped_column(Integer, default=0, server_default="0", index=True)

    __mapper_args__ = {"version_id_col": version}

    course: Mapped[Course] = relationship(back_populates="entries")
    citations: Mapped[list[Citation]] = relationship(
        back_populates="entry",
        order_by="Citation.position",
        cascade="all, delete-orphan",
    )
    revisions: Mapped[list[EntryRevision]] = relationship(
        back_populates="entry", order_by="EntryRevision.number", cascade="all, delete-orphan"
    )


class Citation(Base):
    __tablename__ = "citations"
    __table_args__ = (UniqueConstraint("entry_id", "key", name="uq_citations_entry_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    authors: Mapped[list[Any]] = mapped_column(JSON)
    year: Mapped[int] = mapped_column(Integer)
    venue: Mapped[str] = mapped_column(String(300))
    url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    doi: Mapped[str | None] = mapped_column(String(200), nullable=True)

    entry: Mapped[Entry] = relationship(back_populates="citations")


class User(Base):
    """A TA account (login arrives with the web workspace)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20), default="ta")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    """A bearer token for bots; only its hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EntryRevision(Base):
    """A full snapshot of an entry after each accepted write."""

    __tablename__ = "entry_revisions"
    __table_args__ = (UniqueConstraint("entry_id", "number", name="uq_entry_revisions_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    action: Mapped[str] = mapped_column(String(20))  # import, create, update, delete, restore
    author: Mapped[str] = mapped_column(String(120), default="import")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    entry: Mapped[Entry] = relationship(back_populates="revisions")


class IndexUnit(Base):
    """A retrievable piece of an entry (question, alias or answer passage) in one language."""

    __tablename__ = "index_units"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # question, alias, passage
    lang: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64), index=True)
    # Lexical terms (space-separated), computed at write time so start-up only splits.
    terms: Mapped[str] = mapped_column(Text, default="")


class Embedding(Base):
    """An embedding cached by (model, text hash): unchanged text is never re-embedded."""

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("model", "text_hash", name="uq_embeddings_model_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(120))
    text_hash: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KbState(Base):
    """One row; ``version`` grows on every knowledge change so processes know to refresh.

    ``epoch`` changes with every change that is not one entry's (a reindex, new vectors,
    a restore): an index built at another epoch cannot be caught up entry by entry.

    ``units_format`` is the format every stored index unit was built with: units older
    than ``knowledge.entry_store.UNITS_FORMAT`` are rebuilt by ``kb import`` and ``kb reindex``.
    """

    __tablename__ = "kb_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    units_format: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    epoch: Mapped[str] = mapped_column(String(32), default="", server_default="")


class AskLog(Base):
    __tablename__ = "ask_log"
    __table_args__ = (
        Index("ix_ask_log_abstained_created", "abstained", "created_at"),
        # TA feedback pages count one entry's answers and votes. Both columns, so SQLite
        # (no planner statistics) prefers it to the index above.
        Index("ix_ask_log_best_slug_abstained", "best_slug", "abstained"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    lang: Mapped[str] = mapped_column(String(8))
    course_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    best_slug: Mapped[str | None] = mapped_column(String(120), nullable=True)
    confidence: Mapped[float] = mapped_column(Float)
    abstained: Mapped[bool] = mapped_column(Boolean)
    # Set when a TA answers a declined question; answered questions leave the queue.
    # A keyed hash of who asked (token or address), never the address: caps one client's
    # share of the TAs' queue.
    client: Mapped[str | None] = mapped_column(String(32), nullable=True)
    resolved_slug: Mapped[str | None] = mapped_column(String(120), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    ask_id: Mapped[int] = mapped_column(ForeignKey("ask_log.id", ondelete="CASCADE"), index=True)
    helpful: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A declined question's rater may name the entry that should have answered it.
    suggested_slug: Mapped[str | None] = mapped_column(String(120), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Candidate(Base):
    """A draft entry mined from a forum export: one question as students asked it in
    different words or languages, with the staff's answer, waiting for a TA's review.

    ``status``: open, accepted (an entry was written from it), merged (its phrasings
    became another entry's aliases) or rejected (remembered: the same question mined
    again joins it and is not proposed again)."""

    __tablename__ = "candidates"
    __table_args__ = (Index("ix_candidates_course_status_score", "course_id", "status", "score"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    # An entry that already answers the question: the proposal is to add its phrasings.
    existing_slug: Mapped[str | None] = mapped_column(String(120), nullable=True)
    asked_count: Mapped[int] = mapped_column(Integer, default=0)
    votes: Mapped[int] = mapped_column(Integer, default=0)
    staff_answered: Mapped[bool] = mapped_column(Boolean, default=False)
    score: Mapped[float] = mapped_column(Float, default=0.0)  # rank: higher first
    question: Mapped[dict[str, Any]] = mapped_column(JSON)  # {lang: text}
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)  # {lang: markdown}, may be empty
    phrasings: Mapped[dict[str, Any]] = mapped_column(JSON)  # {lang: [text, ...]}
    sources: Mapped[list[Any]] = mapped_column(JSON)  # [{forum, thread_id, url, date, title}]
    suggested_runner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The sum of its questions' vectors (float32, MINING_MODEL): new questions of a later
    # export are compared with sum / |sum|, and join.
    vector_sum: Mapped[bytes] = mapped_column(LargeBinary)
    entry_slug: Mapped[str | None] = mapped_column(String(120), nullable=True)  # accepted as
    decided_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MinedThread(Base):
    """A forum thread already mined for a course: mining the same export again skips it,
    a newer export adds only threads not seen (or a staff answer that came since)."""

    __tablename__ = "mined_threads"
    __table_args__ = (UniqueConstraint("course_id", "forum", "thread_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    forum: Mapped[str] = mapped_column(String(16))
    thread_id: Mapped[str] = mapped_column(String(200))
    candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidates.id", ondelete="SET NULL"), nullable=True, index=True
    )
    staff_answered: Mapped[bool] = mapped_column(Boolean, default=False)
    mined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
