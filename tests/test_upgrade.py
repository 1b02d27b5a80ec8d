"""Upgrading a database the previous release left (MiniLM vectors, units without whole
answers, schema 0002) to this one's retrieval: nothing lost, `kb import` fills the gaps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select, update

from knowledge import entry_store, migrate
from knowledge.backup import create_backup, read_header, restore_backup
from knowledge.db import make_engine, make_sessionmaker, transaction
from knowledge.embedders import E5Small
from knowledge.entry_store import UNITS_FORMAT
from knowledge.settings import settings
from knowledge.tables import Citation, Embedding, Entry, EntryRevision, IndexUnit, KbState

SEED = Path(__file__).resolve().parent.parent / "knowledge" / "content"
OLD_MODEL = "all-MiniLM-L6-v2-int8"  # the previous release's English encoder


def previous_release(url: str) -> None:
    """Turn a current database into what the previous release stored: its vectors under
    the old model's name (none for the new one), no whole-answer units, schema 0002."""
    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as session:
        session.execute(delete(Embedding).where(Embedding.model == f"{E5Small.name}/query"))
        session.execute(
            update(Embedding).where(Embedding.model == E5Small.name).values(model=OLD_MODEL)
        )
        session.execute(delete(IndexUnit).where(IndexUnit.kind == "answer"))
    engine.dispose()
    migrate.downgrade(url, "0002")


def counts(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        out = {
            "entries": session.scalar(select(func.count()).select_from(Entry)),
            "revisions": session.scalar(select(func.count()).select_from(EntryRevision)),
            "answer_units": session.scalar(select(func.count()).where(IndexUnit.kind == "answer")),
            "old_vectors": session.scalar(select(func.count()).where(Embedding.model == OLD_MODEL)),
            "new_vectors": session.scalar(
                select(func.count()).where(Embedding.model.like(f"{E5Small.name}%"))
            ),
        }
        if migrate.revision_of(session.connection()) != "0002":
            out["units_format"] = session.scalar(select(KbState.units_format))
    engine.dispose()
    return out


def test_kb_import_upgrades_the_index_and_keeps_everything(
    db_url: str, make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a new process: no vector is remembered from the seeding, all are encoded.
    monkeypatch.setattr(entry_store, "_recent", entry_store._RecentVectors())
    before = counts(db_url)
    previous_release(db_url)
    migrate.upgrade(db_url)
    old = counts(db_url)
    assert old["units_format"] == 1 and old["answer_units"] == 0 and old["new_vectors"] == 0

    app: Flask = make_app()
    result = app.test_cli_runner().invoke(args=["kb", "import", str(SEED)])
    assert result.exit_code == 0, result.output
    assert "unchanged 8, rebuilt the units of 8 entries, embedded" in result.output
    assert f"kept {old['old_vectors']} {OLD_MODEL} vectors no longer used" in result.output
    assert "rebuilding index units" in result.output  # the progress bars
    assert f"embedding with {E5Small.name}" in result.output

    after = counts(db_url)
    assert after["entries"] == before["entries"] and after["revisions"] == before["revisions"]
    assert after["units_format"] == UNITS_FORMAT
    assert after["answer_units"] == before["answer_units"] > 0
    assert after["new_vectors"] == before["new_vectors"]
    assert after["old_vectors"] == old["old_vectors"]  # kept by default
    body = app.test_client().post("/api/v1/ask", json={"question": "What is double descent?"})
    assert body.json["answer"]["slug"] == "double-descent"

    again = app.test_cli_runner().invoke(args=["kb", "import", str(SEED)])
    assert "rebuilt" not in again.output and "embedded" not in again.output
    # A new `flask kb reindex` process with DROP_OLD_VECTORS=1 reads its settings afresh.
    monkeypatch.setenv("DROP_OLD_VECTORS", "1")
    settings.cache_clear()
    try:
        dropped = app.test_cli_runner().invoke(args=["kb", "reindex"])
    finally:
        monkeypatch.delenv("DROP_OLD_VECTORS")
        settings.cache_clear()
    assert dropped.exit_code == 0, dropped.output
    assert f"dropped {old['old_vectors']} old {OLD_MODEL} vectors" in dropped.output
    assert counts(db_url)["old_vectors"] == 0
    assert counts(db_url)["new_vectors"] == before["new_vectors"]


def test_a_backup_of_the_previous_release_restores_then_upgrades(
    db_url: str, make_app: Any, tmp_path: Path
) -> None:
    before = counts(db_url)
    previous_release(db_url)
    backup = tmp_path / "old.jsonl.gz"
    create_backup(db_url, backup)
    assert read_header(backup)["revision"] == "0002"

    target = f"sqlite:///{tmp_path / 'restored.db'}"
    restore_backup(target, backup)  # migrates the empty database to 0002 first
    migrate.upgrade(target)
    app: Flask = make_app(DATABASE_URL=target)
    result = app.test_cli_runner().invoke(args=["kb", "import", str(SEED), "--drop-old-vectors"])
    assert result.exit_code == 0, result.output
    assert "dropped" in result.output
    after = counts(target)
    assert after["entries"] == before["entries"] and after["revisions"] == before["revisions"]
    assert after["new_vectors"] == before["new_vectors"] and after["old_vectors"] == 0
    body = app.test_client().post("/api/v1/ask", json={"question": "なぜ√dで割るのですか？"})
    assert body.json["answer"]["slug"] == "attention-sqrt-d-scaling"
    app.extensions["core"].engine.dispose()


def test_migration_marks_existing_units_for_rebuild(tmp_path: Path) -> None:
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate.upgrade(fresh)
    assert counts(fresh)["units_format"] == UNITS_FORMAT  # nothing to rebuild


def test_the_change_tracking_migration_keeps_every_row(db_url: str) -> None:
    """0008 adds a column to ``entries``: rows that point at entries must all survive it
    (a table copy on SQLite would cascade-delete them), down and up again."""

    def rows(url: str) -> dict[str, int]:
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            out = {
                t.__tablename__: session.scalar(select(func.count()).select_from(t)) or 0
                for t in (Entry, EntryRevision, IndexUnit, Citation)
            }
            out["epoch"] = len(session.scalar(select(KbState.epoch)) or "")
        engine.dispose()
        return out

    before = rows(db_url)
    assert min(before.values()) > 0 and before["epoch"] == 32
    migrate.downgrade(db_url, "0007")
    migrate.upgrade(db_url)
    assert rows(db_url) == before
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.max(Entry.changed_in))) == 0  # all in any base
    engine.dispose()
