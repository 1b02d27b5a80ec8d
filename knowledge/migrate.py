"""Apply Alembic migrations from code (CLI, tests, deploy)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' must be escaped for configparser (PostgreSQL passwords may contain it).
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def revision_of(conn: Connection) -> str | None:
    """The Alembic revision of the database behind ``conn`` (None when not migrated)."""
    from alembic.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def current_revision(url: str) -> str | None:
    from knowledge.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return revision_of(conn)
    finally:
        engine.dispose()
