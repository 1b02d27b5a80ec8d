"""Backup and restore: SQLite -> PostgreSQL -> SQLite, row by row; refusals leave no trace."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import JSON, Engine, func, null, select, update
from sqlalchemy.orm import Session

from knowledge import accounts, api_tokens, migrate
from knowledge.backup import BackupError, create_backup, restore_backup, tables
from knowledge.db import make_engine, transaction
from knowledge.entry_store import entry_data, find_entry, kb_epoch, upsert_entry
from knowledge.tables import AskLog, Entry, EntryRevision
from runners import result_store
from runners.result import Result
from runners.run_tables import Run, RunFigure
from runners.sandbox import Outcome
from service import create_app

# Not a real image, but every byte value, so base64 and bytea are both exercised.
FIGURE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def populate(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """Add what a live service accumulates: edits, asks (answered and declined),
    feedback, runs (succeeded with a figure, failed, queued), an account and a token."""
    sessions = app.extensions["core"].sessions
    with transaction(sessions) as session:
        entry = find_entry(session, "double-descent")
        data = entry_data(entry).model_copy(update={"tags": [*entry.tags, "edited"]})
        upsert_entry(session, data, author="ta:alice")  # a second revision
        user = accounts.create_user(session, "alice", "correct horse battery", "ta")
        api_tokens.create_token(session, "forum bot", ["ask", "run"], user_id=user.id)
    answered = client.post("/api/v1/ask", json={"question": "What is double descent?"}).json
    declined = client.post("/api/v1/ask", json={"question": "When is the final exam?"}).json
    assert not answered["abstained"] and declined["abstained"]
    for qid, helpful in ((answered["question_id"], True), (declined["question_id"], False)):
        res = client.post("/api/v1/feedback", json={"question_id": qid, "helpful": helpful})
        assert res.status_code == 201
    ok = result_store.request_run(
        sessions, "double_descent", {}, 1, entry_slug="double-descent"
    ).run
    assert result_store.claim(sessions, ok.id) is not None
    result = Result(
        metrics={"peak_test_error": 1.5, "n_params": 40},
        figures=[FIGURE],
        finding={"en": "The peak is at the interpolation threshold.", "ja": "ピーク。"},
        supports_claim=True,
        series={"test_error": [0.5, 1.5, 0.25]},
    )
    result_store.record(
        sessions,
        ok.id,
        Outcome("succeeded", result, duration_s=1.25, cpu_s=1.0, peak_rss_mb=120.0),
    )
    failed = result_store.request_run(sessions, "double_descent", {}, 2).run
    result_store.claim(sessions, failed.id)
    result_store.record(sessions, failed.id, Outcome("failed", error="boom", error_code="crashed"))
    result_store.request_run(sessions, "double_descent", {}, 3)  # still queued
    return {"run_id": ok.id, "declined": declined["question_id"]}


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, datetimes as UTC, JSON SQL NULL told apart from JSON null."""

    def norm(value: Any) -> Any:
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        return value

    out = {}
    with engine.connect() as conn:
        for tbl in tables():
            # A restore starts a new epoch of the index (tested on its own): the rest is equal.
            columns = [c for c in tbl.columns if not (tbl.name == "kb_state" and c.name == "epoch")]
            nulls = [c.is_(None) for c in columns if c.nullable]
            query = select(*columns, *nulls).order_by(*tbl.primary_key.columns)
            out[tbl.name] = [tuple(norm(v) for v in row) for row in conn.execute(query)]
    return out


@pytest.fixture
def populated(app: Flask, client: FlaskClient) -> dict[str, Any]:
    return populate(app, client)


@pytest.mark.postgres
def test_round_trip_sqlite_to_postgres_and_back(
    app: Flask, populated: dict[str, Any], pg_url: str, tmp_path: Path
) -> None:
    source_url = app.config["DATABASE_URL"]
    source = snapshot(app.extensions["core"].engine)
    assert source["entry_revisions"] and source["run_figures"] and source["feedback"]
    assert source["users"] and source["api_tokens"] and source["embeddings"]

    backup = tmp_path / "kb.jsonl.gz"
    counts = create_backup(source_url, backup)
    assert counts == {name: len(rows) for name, rows in source.items()}

    migrate.upgrade(pg_url)
    assert restore_backup(pg_url, backup) == counts
    pg_engine = make_engine(pg_url)
    try:
        assert snapshot(pg_engine) == source
        # Index snapshots of the source are not for the copy, which changes on its own.
        epochs = []
        for engine in (app.extensions["core"].engine, pg_engine):
            with Session(engine) as session:
                epochs.append(kb_epoch(session)[0])
        assert epochs[0] != epochs[1] and all(len(e) == 32 for e in epochs)
    finally:
        pg_engine.dispose()

    # The scaled app serves the restored data, and new rows get fresh ids (sequences moved).
    pg_app = create_app(
        {"TESTING": True, "DATABASE_URL": pg_url, "QUEUE_URL": app.config["QUEUE_URL"]}
    )
    try:
        client = pg_app.test_client()
        run = client.get(f"/api/v1/runs/{populated['run_id']}").json
        assert run["status"] == "succeeded" and run["metrics"]["peak_test_error"] == 1.5
        assert client.get(run["figures"][0]).data == FIGURE
        detail = client.get("/api/v1/entries/double-descent").json
        assert "edited" in detail["tags"]
        asked = client.post("/api/v1/ask", json={"question": "Why divide attention logits by √d?"})
        assert asked.json["answer"]["slug"] == "attention-sqrt-d-scaling"
        assert asked.json["question_id"] > max(row[0] for row in source["ask_log"])
        # (A vote on an already rated question changes that vote: rate the new one.)
        res = client.post(
            "/api/v1/feedback", json={"question_id": asked.json["question_id"], "helpful": True}
        )
        assert res.status_code == 201 and res.json["id"] > max(r[0] for r in source["feedback"])
        with transaction(pg_app.extensions["core"].sessions) as session:
            entry = find_entry(session, "agi")
            data = entry_data(entry).model_copy(update={"tags": ["restored"]})
            upsert_entry(session, data, author="ta:bob")
            assert session.scalar(select(func.max(EntryRevision.id))) > max(
                r[0] for r in source["entry_revisions"]
            )
        target = snapshot(pg_app.extensions["core"].engine)
    finally:
        pg_app.extensions["core"].engine.dispose()

    # ...and PostgreSQL back into a blank SQLite file (migrated by the restore itself).
    again = tmp_path / "from-pg.jsonl.gz"
    create_backup(pg_url, again)
    sqlite_url = f"sqlite:///{tmp_path / 'blank.db'}"
    restore_backup(sqlite_url, again)
    sqlite_engine = make_engine(sqlite_url)
    try:
        assert snapshot(sqlite_engine) == target
    finally:
        sqlite_engine.dispose()


def test_cli_round_trip_between_sqlite_files(
    app: Flask, populated: dict[str, Any], runner: FlaskCliRunner, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.jsonl.gz"
    res = runner.invoke(args=["backup", "create", str(backup)])
    assert res.exit_code == 0, res.output
    assert "backed up" in res.output and "run_figures 1" in res.output

    target = tmp_path / "restored.db"
    migrate.upgrade(f"sqlite:///{target}")
    other = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{target}"})
    try:
        res = other.test_cli_runner().invoke(args=["backup", "restore", str(backup)])
        assert res.exit_code == 0, res.output
        assert "restored" in res.output and "feedback 2" in res.output
        assert snapshot(other.extensions["core"].engine) == snapshot(app.extensions["core"].engine)
        with other.extensions["core"].sessions() as session:
            run = session.get(Run, populated["run_id"])
            assert run is not None and run.result is not None
            assert session.scalar(select(RunFigure.png)) == FIGURE
            assert session.scalar(select(func.count()).where(AskLog.abstained.is_(True))) >= 1
    finally:
        other.extensions["core"].engine.dispose()


def test_restore_into_a_non_empty_database_is_refused(
    app: Flask, populated: dict[str, Any], runner: FlaskCliRunner, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.jsonl.gz"
    create_backup(app.config["DATABASE_URL"], backup)
    before = snapshot(app.extensions["core"].engine)
    with pytest.raises(BackupError, match="not empty: .*entries"):
        restore_backup(app.config["DATABASE_URL"], backup)
    res = runner.invoke(args=["backup", "restore", str(backup)])
    assert res.exit_code != 0
    assert "restore refused: the target database is not empty" in res.output
    assert snapshot(app.extensions["core"].engine) == before


def test_a_damaged_backup_restores_nothing(
    app: Flask, populated: dict[str, Any], tmp_path: Path
) -> None:
    backup = tmp_path / "backup.jsonl.gz"
    create_backup(app.config["DATABASE_URL"], backup)
    with gzip.open(backup, "rt", encoding="utf-8") as src:
        lines = src.readlines()
    cut = tmp_path / "cut.jsonl.gz"
    with gzip.open(cut, "wt", encoding="utf-8") as out:
        out.writelines(line for line in lines if json.loads(line).get("t") != "feedback")
    url = f"sqlite:///{tmp_path / 'target.db'}"
    with pytest.raises(BackupError, match="feedback: the backup lists 2 rows, 0 were read"):
        restore_backup(url, cut)
    engine = make_engine(url)
    try:
        left = {name: rows for name, rows in snapshot(engine).items() if rows}
        assert list(left) == ["kb_state"] and left["kb_state"][0][1] == 0  # the migration's
    finally:
        engine.dispose()
    restore_backup(url, backup)  # rolled back, so still empty: the intact file restores
    not_a_backup = tmp_path / "x.gz"
    with gzip.open(not_a_backup, "wt") as out:
        out.write('{"hello": 1}\n')
    with pytest.raises(BackupError, match="not a Runnable Answers backup"):
        restore_backup(url, not_a_backup)


def test_json_null_and_sql_null_stay_distinct(app: Flask, tmp_path: Path) -> None:
    engine = app.extensions["core"].engine
    with engine.begin() as conn:  # one entry with SQL NULL params, one with JSON null
        conn.execute(update(Entry).where(Entry.slug == "agi").values(runner_params=null()))
        conn.execute(
            update(Entry).where(Entry.slug == "double-descent").values(runner_params=JSON.NULL)
        )

    def sql_nulls(engine: Engine) -> set[str]:
        with engine.connect() as conn:
            return set(conn.scalars(select(Entry.slug).where(Entry.runner_params.is_(None))))

    assert "agi" in sql_nulls(engine) and "double-descent" not in sql_nulls(engine)
    backup = tmp_path / "b.jsonl.gz"
    create_backup(app.config["DATABASE_URL"], backup)
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    restore_backup(url, backup)
    copy = make_engine(url)
    try:
        assert sql_nulls(copy) == sql_nulls(engine)
        assert snapshot(copy) == snapshot(engine)
    finally:
        copy.dispose()
