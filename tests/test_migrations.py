"""The same Alembic history builds, upgrades and downgrades SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from knowledge import migrate
from knowledge.db import make_engine
from knowledge.tables import Base
from runners.run_tables import RunBase

ALL_TABLES = set(Base.metadata.tables) | set(RunBase.metadata.tables)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    migrate.upgrade(url)
    assert migrate.current_revision(url) is not None
    assert _tables(url) == ALL_TABLES
    migrate.downgrade(url, "base")
    assert _tables(url) == set()
    assert migrate.current_revision(url) is None
    migrate.upgrade(url)
    assert _tables(url) == ALL_TABLES


def test_sqlite_up_down_up(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgresql_up_down_up(pg_url: str) -> None:
    _round_trip(pg_url)


def test_models_match_migrations(tmp_path: Path) -> None:
    """No model change without a migration: autogenerate finds nothing to do."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), [Base.metadata, RunBase.metadata])
    engine.dispose()
    assert diff == []
