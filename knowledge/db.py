"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker


def _json_dumps(value: Any) -> str:
    # Keep Japanese readable in the database so text filters (LIKE) match it.
    return json.dumps(value, ensure_ascii=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with pre-ping; SQLite gets WAL, foreign keys and a busy timeout."""
    kwargs.setdefault("json_serializer", _json_dumps)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def insert_missing(
    session: Session, model: type[Any], rows: list[dict[str, Any]], keys: list[str]
) -> None:
    """INSERT ``rows``, skipping those whose ``keys`` already exist (ON CONFLICT DO NOTHING).

    For rows that concurrent writers may add at once (an embedding shared by two entries,
    a new course): on PostgreSQL the later writer waits for the earlier one and skips the
    row instead of failing on the unique constraint. Rows go in key order so that two
    writers never wait for each other.
    """
    if not rows:
        return
    name = session.get_bind().dialect.name
    insert: Any = postgresql.insert if name == "postgresql" else sqlite.insert
    ordered = sorted(rows, key=lambda row: [row[k] for k in keys])
    session.execute(insert(model).values(ordered).on_conflict_do_nothing(index_elements=keys))


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE statement changed."""
    return int(cast(CursorResult[Any], result).rowcount or 0)
