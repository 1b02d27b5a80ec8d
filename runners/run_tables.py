"""Tables for experiment runs. Own metadata: ``runners`` never imports ``knowledge``.

The one Alembic history in ``migrations/`` builds these alongside the knowledge tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
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

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
ACTIVE = ("queued", "running", "succeeded")
FINAL = ("succeeded", "failed", "timed_out")


def utcnow() -> datetime:
    return datetime.now(UTC)


class RunBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Run(RunBase):
    """One experiment run. ``cache_key`` names an identical result (see runners.result_store)."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    runner_name: Mapped[str] = mapped_column(String(80))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(Integer)
    cache_key: Mapped[str] = mapped_column(String(64), index=True)
    # Equal to cache_key while the run is queued, running or succeeded, else NULL: the
    # unique constraint makes identical concurrent requests share one run.
    active_key: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    torch_version: Mapped[str] = mapped_column(String(40))
    entry_slug: Mapped[str | None] = mapped_column(String(120), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # queued running succeeded failed timed_out
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(120), nullable=True)  # host:pid
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    isolation: Mapped[str | None] = mapped_column(String(20), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpu_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_rss_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    figures: Mapped[list[RunFigure]] = relationship(
        order_by="RunFigure.number", cascade="all, delete-orphan"
    )


class RunFigure(RunBase):
    __tablename__ = "run_figures"
    __table_args__ = (UniqueConstraint("run_id", "number", name="uq_run_figures_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    png: Mapped[bytes] = mapped_column(LargeBinary)
