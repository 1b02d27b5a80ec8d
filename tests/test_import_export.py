"""kb import is an idempotent upsert; kb export re-imports to the same state."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import delete, func, select

from knowledge.db import transaction
from knowledge.embedders import E5Small
from knowledge.entry_store import bump_version, kb_version
from knowledge.tables import Embedding, Entry, EntryRevision, IndexUnit

E5 = E5Small.name
SEED = Path(__file__).resolve().parent.parent / "knowledge" / "content"


def _state(app: Flask) -> dict[str, tuple[str, int]]:
    with app.extensions["core"].sessions() as session:
        rows = session.execute(select(Entry.slug, Entry.content_hash, Entry.version)).all()
    return {slug: (digest, version) for slug, digest, version in rows}


def _count(app: Flask, model: type) -> int:
    with app.extensions["core"].sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_reimport_changes_nothing(app: Flask, runner: FlaskCliRunner) -> None:
    before = (_state(app), _count(app, EntryRevision), _count(app, IndexUnit))
    with app.extensions["core"].sessions() as session:
        version_before = kb_version(session)[0]
    result = runner.invoke(args=["kb", "import", str(SEED)])
    assert result.exit_code == 0, result.output
    assert "created 0, updated 0, unchanged 8" in result.output
    assert (_state(app), _count(app, EntryRevision), _count(app, IndexUnit)) == before
    with app.extensions["core"].sessions() as session:
        assert kb_version(session)[0] == version_before


def test_changed_file_updates_and_records_a_revision(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    copy = tmp_path / "content"
    shutil.copytree(SEED, copy)
    target = copy / "nyu-dl-f20" / "agi.md"
    target.write_text(target.read_text().replace("<!-- en -->\n", "<!-- en -->\nEdited.\n\n"))
    revisions = _count(app, EntryRevision)
    result = runner.invoke(args=["kb", "import", str(copy)])
    assert "created 0, updated 1, unchanged 7" in result.output, result.output
    assert _count(app, EntryRevision) == revisions + 1
    assert _state(app)["agi"][1] == 2


def test_bad_file_imports_nothing_and_names_file_line_field(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    copy = tmp_path / "content"
    shutil.copytree(SEED, copy)
    good = copy / "nyu-dl-f20" / "agi.md"
    good.write_text(good.read_text().replace("<!-- en -->\n", "<!-- en -->\nChanged.\n\n"))
    bad = copy / "nyu-dl-f20" / "double-descent.md"
    bad.write_text(bad.read_text().replace("year: 2019", "year: nineteen", 1))
    before = _state(app)
    result = runner.invoke(args=["kb", "import", str(copy)])
    assert result.exit_code == 1
    assert f"{bad}:" in result.output
    assert "citations.0.year" in result.output
    assert "nothing imported" in result.output
    assert _state(app) == before


def test_unknown_runner_is_rejected(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    src = (SEED / "nyu-dl-f20" / "double-descent.md").read_text()
    (tmp_path / "x.md").write_text(src.replace("name: double_descent", "name: rm_rf"))
    result = runner.invoke(args=["kb", "import", str(tmp_path)])
    assert result.exit_code == 1
    assert "runner.name" in result.output and "rm_rf" in result.output


def test_missing_path_is_a_clear_error(runner: FlaskCliRunner, tmp_path: Path) -> None:
    result = runner.invoke(args=["kb", "import", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert "no such file or directory" in result.output


def test_export_round_trip(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    out = tmp_path / "export"
    result = runner.invoke(args=["kb", "export", str(out)])
    assert result.exit_code == 0 and "exported 8 entries" in result.output
    assert sorted(p.name for p in (out / "nyu-dl-f20").iterdir()) == sorted(
        p.name for p in (SEED / "nyu-dl-f20").iterdir()
    )
    # Re-importing the export into the same database changes nothing ...
    result = runner.invoke(args=["kb", "import", str(out)])
    assert "created 0, updated 0, unchanged 8" in result.output, result.output
    # ... and a second export is byte-identical to the first.
    again = tmp_path / "again"
    runner.invoke(args=["kb", "export", str(again)])
    for path in (out / "nyu-dl-f20").iterdir():
        assert path.read_bytes() == (again / "nyu-dl-f20" / path.name).read_bytes()


def test_export_imports_into_an_empty_database(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    from knowledge import importer, migrate
    from knowledge.db import make_engine, make_sessionmaker

    out = tmp_path / "export"
    runner.invoke(args=["kb", "export", str(out)])
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    counts = importer.import_path(make_sessionmaker(engine), out)
    assert counts["created"] == 8
    with make_sessionmaker(engine)() as session:
        fresh = dict(session.execute(select(Entry.slug, Entry.content_hash)).all())
    engine.dispose()
    assert fresh == {slug: digest for slug, (digest, _) in _state(app).items()}


def test_reindex_reuses_stored_embeddings(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["kb", "reindex"])
    assert result.exit_code == 0, result.output
    assert "reindexed 8 entries" in result.output
    assert " 0 new embeddings" in result.output


def test_import_backfills_vectors_a_new_model_lacks(
    app: Flask, runner: FlaskCliRunner, caplog: pytest.LogCaptureFixture
) -> None:
    """After an upgrade that changes the models, `kb import` embeds the existing entries."""
    retriever = app.extensions["core"].retriever
    with app.extensions["core"].sessions() as session:
        stored = session.scalar(select(func.count()).where(Embedding.model.like(f"{E5}%")))
    with transaction(app.extensions["core"].sessions) as session:
        session.execute(delete(Embedding).where(Embedding.model.like(f"{E5}%")))
        bump_version(session)
    with caplog.at_level(logging.WARNING, logger="knowledge.ask"):
        index = retriever.refresh()
    assert index.missing_vectors[E5] == _count(app, IndexUnit)
    assert f"have no {E5} vector" in caplog.text

    result = runner.invoke(args=["kb", "import", str(SEED)])
    assert result.exit_code == 0, result.output
    # Questions are stored as questions, everything else as passages: what was deleted.
    assert f"unchanged 8, embedded {stored} missing vectors" in result.output
    assert retriever.refresh().missing_vectors == {}
    again = runner.invoke(args=["kb", "import", str(SEED)])
    assert "missing vectors" not in again.output
