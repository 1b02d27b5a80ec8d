"""Alembic environment: the URL comes from the caller (``knowledge.migrate``) or DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from knowledge.db import make_engine
from knowledge.settings import settings
from knowledge.tables import Base
from runners.run_tables import RunBase

config = context.config
target_metadata = [Base.metadata, RunBase.metadata]


def _url() -> str:
    return (
        config.get_main_option("sqlalchemy.url")
        or settings().DATABASE_URL
        or "sqlite:///instance/runnable_answers.db"
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
