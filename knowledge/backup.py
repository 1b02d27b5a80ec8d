"""Backup and restore of the whole database, portable between SQLite and PostgreSQL.

Framework-free. A backup is one gzip'd JSON-lines file:

- line 1, the header: ``{"format", "version", "created_at", "dialect", "revision",
  "tables": {name: {"columns": [...], "rows": n}}}`` (``revision`` is the Alembic
  revision of the source schema);
- then one line per row, tables in foreign-key order: ``{"t": table, "r": {column:
  value}}``, plus ``"n": [columns]`` naming JSON columns that hold SQL NULL (a JSON
  ``null`` value is a different thing and round-trips as such).

Values: binary columns are base64, datetimes ISO 8601 in UTC with the offset, JSON
columns their JSON value, everything else as is. Every table of ``knowledge.tables.Base``
and ``runners.run_tables.RunBase`` is included (entries, revisions, runs, figures, the ask
log with its unanswered questions, feedback, accounts, tokens, embeddings...).

``create_backup`` reads one consistent snapshot. ``restore_backup`` writes into an empty
database at the same Alembic revision (a database without any table is migrated to
that revision first), keeps every primary key, moves PostgreSQL sequences past them,
checks the row counts and commits once: a failed restore leaves the target empty.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    Table,
    column,
    delete,
    event,
    func,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy.types import TypeEngine

from knowledge import migrate
from knowledge.db import make_engine
from knowledge.tables import Base
from runners.run_tables import RunBase

FORMAT = "runnable-answers-backup"
VERSION = 1
BATCH = 500  # rows per INSERT on restore
# Rows a fresh migration writes (the knowledge-base version counter at 0): they do not
# make a database "non-empty", and a restore replaces them with the backup's.
MIGRATION_ROWS: dict[str, Callable[[Table], ColumnElement[bool]]] = {
    "kb_state": lambda t: t.c.version == 0,
}


class BackupError(Exception):
    """The backup cannot be made or restored (the message says why)."""


def tables() -> list[Table]:
    """Every application table, parents before children."""
    return [*Base.metadata.sorted_tables, *RunBase.metadata.sorted_tables]


# --- encoding ----------------------------------------------------------------------------


def _encode(value: Any, type_: TypeEngine[Any]) -> Any:
    if value is None:
        return None
    if isinstance(type_, LargeBinary):
        return base64.b64encode(value).decode("ascii")
    if isinstance(type_, DateTime):
        # SQLite hands back naive datetimes; the application stores UTC.
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    return value


def _decode(value: Any, type_: TypeEngine[Any]) -> Any:
    if value is None:
        return JSON.NULL if isinstance(type_, JSON) else None
    if isinstance(type_, LargeBinary):
        return base64.b64decode(value)
    if isinstance(type_, DateTime):
        return datetime.fromisoformat(value).astimezone(UTC)
    return value


def _nullable_json(tbl: Table) -> list[str]:
    return [c.name for c in tbl.columns if isinstance(c.type, JSON) and c.nullable]


# --- engines -------------------------------------------------------------------------------


def _engine(url: str) -> Engine:
    """An engine whose transactions really begin at BEGIN (pysqlite defers it otherwise)."""
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")

    return engine


def present_tables(conn: Connection) -> list[Table]:
    """The tables the database has: one at an older revision lacks newer tables (and is
    backed up and restored without them)."""
    have = set(inspect(conn).get_table_names())
    return [t for t in tables() if t.name in have]


def _counts(conn: Connection) -> dict[str, int]:
    return {
        t.name: conn.scalar(select(func.count()).select_from(t)) or 0 for t in present_tables(conn)
    }


# --- backup --------------------------------------------------------------------------------


def _present_columns(conn: Connection, tbl: Table) -> list[Column[Any]]:
    """The table's columns the database has: one at an older revision lacks newer ones."""
    names = {c["name"] for c in inspect(conn).get_columns(tbl.name)}
    return [c for c in tbl.columns if c.name in names]


def _rows(conn: Connection, tbl: Table) -> Iterator[dict[str, Any]]:
    columns = _present_columns(conn, tbl)
    nulls = [name for name in _nullable_json(tbl) if name in {c.name for c in columns}]
    flags = [tbl.c[name].is_(None).label(f"__null_{name}") for name in nulls]
    query = select(*columns, *flags).order_by(*tbl.primary_key.columns)
    for row in conn.execute(query).mappings():
        line: dict[str, Any] = {
            "t": tbl.name,
            "r": {c.name: _encode(row[c.name], c.type) for c in columns},
        }
        sql_null = [name for name in nulls if row[f"__null_{name}"]]
        if sql_null:
            line["n"] = sql_null
        yield line


def create_backup(url: str, path: str | Path) -> dict[str, int]:
    """Write the whole database at ``url`` to ``path``; returns rows per table.

    A database not yet upgraded to this release's schema is backed up as it is (its
    revision and the columns it has), and restores into a database at that revision.
    """
    path = Path(path)
    engine = _engine(url)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":  # one snapshot for every table
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                revision = migrate.revision_of(conn)
                if revision is None:
                    raise BackupError("the database is not migrated: nothing to back up")
                counts = _counts(conn)
                header = {
                    "format": FORMAT,
                    "version": VERSION,
                    "created_at": datetime.now(UTC).isoformat(),
                    "dialect": engine.dialect.name,
                    "revision": revision,
                    "tables": {
                        t.name: {
                            "columns": [c.name for c in _present_columns(conn, t)],
                            "rows": counts[t.name],
                        }
                        for t in present_tables(conn)
                    },
                }
                path.parent.mkdir(parents=True, exist_ok=True)
                with gzip.open(tmp, "wt", encoding="utf-8") as out:
                    out.write(json.dumps(header, ensure_ascii=False) + "\n")
                    for tbl in present_tables(conn):
                        for line in _rows(conn, tbl):
                            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        engine.dispose()
    return counts


# --- restore -------------------------------------------------------------------------------


def read_header(path: str | Path) -> dict[str, Any]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as src:
            return _check_header(src.readline())
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # not gzip, or cut short
        raise BackupError(f"{path}: cannot read the backup ({exc})") from None


def _check_header(line: str) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupError("not a Runnable Answers backup file")
    if header.get("version") != VERSION:
        raise BackupError(f"unsupported backup format version {header.get('version')!r}")
    known = {t.name: {c.name for c in t.columns} for t in tables()}
    for name, meta in header["tables"].items():
        if name not in known:
            raise BackupError(f"the backup has a table this version does not know: {name}")
        extra = set(meta["columns"]) - known[name]
        if extra:
            raise BackupError(f"the backup's table {name} has unknown columns: {sorted(extra)}")
    return header


def _lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    number = 1
    try:
        with gzip.open(path, "rt", encoding="utf-8") as src:
            _check_header(src.readline())
            for raw in src:
                number += 1
                line = json.loads(raw)
                yield line["t"], line
    except (ValueError, KeyError, TypeError, OSError, EOFError) as exc:
        raise BackupError(f"{path}:{number}: damaged backup ({exc})") from None


def _insert_target(tbl: Table) -> Any:
    """A lightweight table whose JSON columns write None as SQL NULL (JSON.NULL as null)."""
    cols = [
        column(c.name, JSON(none_as_null=True) if isinstance(c.type, JSON) else c.type)
        for c in tbl.columns
    ]
    return table(tbl.name, *cols)


def _check_target(conn: Connection, header: dict[str, Any]) -> None:
    revision = migrate.revision_of(conn)
    if revision != header["revision"]:
        raise BackupError(
            f"the target database is at revision {revision}, the backup at "
            f"{header['revision']}: restore into a database migrated to the backup's revision, "
            "then upgrade it"
        )
    busy = {}
    for tbl in present_tables(conn):
        query = select(func.count()).select_from(tbl)
        if tbl.name in MIGRATION_ROWS:
            query = query.where(~MIGRATION_ROWS[tbl.name](tbl))
        if n := conn.scalar(query):
            busy[tbl.name] = n
    if busy:
        listed = ", ".join(f"{name} ({n} rows)" for name, n in sorted(busy.items()))
        raise BackupError(f"the target database is not empty: {listed}; restore needs an empty one")


def _fix_sequences(conn: Connection) -> None:
    """PostgreSQL: move each serial primary key's sequence past the restored ids."""
    for tbl in present_tables(conn):
        for col in tbl.primary_key.columns:
            if not isinstance(col.type, Integer):
                continue
            seq = conn.scalar(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": tbl.name, "c": col.name}
            )
            if seq is None:
                continue
            conn.execute(
                text(
                    f'SELECT setval(:seq, COALESCE(MAX("{col.name}"), 1), MAX("{col.name}") '
                    f'IS NOT NULL) FROM "{tbl.name}"'
                ),
                {"seq": seq},
            )


def _new_epoch(conn: Connection) -> None:
    """A restored database is a new line of versions: index snapshots made from the
    original (which may go on changing at the same version numbers) are not for it."""
    if "epoch" in {c["name"] for c in inspect(conn).get_columns("kb_state")}:
        conn.execute(text("UPDATE kb_state SET epoch = :epoch"), {"epoch": uuid.uuid4().hex})


def restore_backup(url: str, path: str | Path) -> dict[str, int]:
    """Load the backup at ``path`` into the empty database at ``url``; returns rows per table.

    Raises BackupError (and changes nothing) when the target is not empty, is at another
    schema revision, or the file is damaged or incomplete.
    """
    path = Path(path)
    header = read_header(path)
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            blank = migrate.revision_of(conn) is None and not inspect(conn).get_table_names()
        if blank:  # a database without any table: build the backup's schema first
            migrate.upgrade(url, header["revision"])
        with engine.begin() as conn:
            _check_target(conn, header)
            by_name = {t.name: t for t in tables()}
            for name, seeded in MIGRATION_ROWS.items():
                conn.execute(delete(by_name[name]).where(seeded(by_name[name])))
            seen = dict.fromkeys(by_name, 0)
            batch: list[dict[str, Any]] = []
            current: str | None = None

            def flush() -> None:
                if batch and current is not None:
                    conn.execute(_insert_target(by_name[current]).insert(), batch)
                    batch.clear()

            for name, line in _lines(path):
                if name not in by_name:
                    raise BackupError(f"row for an unknown table {name!r}")
                if name != current:
                    flush()
                    current = name
                tbl, sql_null = by_name[name], set(line.get("n", ()))
                row = line["r"]
                batch.append(
                    {
                        c.name: None if c.name in sql_null else _decode(row.get(c.name), c.type)
                        for c in tbl.columns
                        if c.name in row
                    }
                )
                seen[name] += 1
                if len(batch) >= BATCH:
                    flush()
            flush()
            expected = {name: meta["rows"] for name, meta in header["tables"].items()}
            counts = _counts(conn)
            for name, n in counts.items():
                if n != expected.get(name, 0) or seen[name] != n:
                    raise BackupError(
                        f"{name}: the backup lists {expected.get(name, 0)} rows, "
                        f"{seen[name]} were read and {n} are in the database; nothing restored"
                    )
            if engine.dialect.name == "postgresql":
                _fix_sequences(conn)
            _new_epoch(conn)
        return counts
    finally:
        engine.dispose()
