"""An index caught up entry by entry scores as a fresh load; snapshots; the graph path."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge import importer, index, snapshot
from knowledge.ask import Retriever
from knowledge.db import make_engine, make_sessionmaker, transaction
from knowledge.entry_store import (
    delete_entry,
    entry_data,
    find_entry,
    kb_epoch,
    rebuild_units,
    restore_entry,
    upsert_entry,
)
from knowledge.index_sync import IndexOptions
from knowledge.schema import EntryData
from knowledge.tables import Entry
from tests.conftest import database_from, derived_template, drop_template

ROOT = Path(__file__).resolve().parent.parent
EVAL_ENTRIES = ROOT / "bench" / "eval" / "entries"
QUESTIONS = [
    "why do we divide attention logits by sqrt of the dimension?",
    "バッチ正規化をVAEで使うと何が起きますか？",
    "what does gradient clipping do in an RNN?",
    "ビームサーチが短い文を選びがちなのはなぜ？",
    "When is the final exam?",
]
MIXUP = {
    "slug": "mixup",
    "course": "nyu-dl-f20",
    "question": {
        "en": "Why does mixup, training on blends of two examples and their labels, help?",
        "ja": "2つの例とラベルを混ぜて学習する mixup はなぜ効くのですか？",
    },
    "answer": {
        "en": "Blending inputs and labels asks the network to behave linearly between "
        "examples, which smooths its decision boundaries and tempers overconfidence.",
        "ja": "入力とラベルを混ぜると、例と例の間で線形にふるまうよう求めることになり、"
        "決定境界がなめらかになり、過信が和らぎます。",
    },
}


@pytest.fixture(scope="module")
def eval_template(seeded_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The seed plus the 24 evaluation entries (written as a TA would), built once."""
    template = derived_template(seeded_template, tmp_path_factory.mktemp("eval"), _import_eval)
    yield template
    drop_template(template)


def _import_eval(url: str) -> None:
    engine = make_engine(url)
    importer.import_path(make_sessionmaker(engine), EVAL_ENTRIES)
    engine.dispose()


@pytest.fixture
def sessions(eval_template: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with database_from(eval_template, tmp_path) as url:
        engine = make_engine(url)
        yield make_sessionmaker(engine)
        engine.dispose()


def evidence(retriever: Retriever, question: str) -> dict[str, np.ndarray]:
    """Slug -> every signal's per-kind scores and the coverage, for one question."""
    idx = retriever.index()
    signals, positions = retriever._evidence(idx, question, None, None)
    out = {}
    for i, p in enumerate(positions):
        parts = [signals.scores[s][i] for s in sorted(signals.scores)]
        out[idx.entries[int(p)].slug] = np.r_[np.concatenate(parts), signals.coverage[i]]
    return out


def levels(retriever: Retriever) -> dict[str, np.ndarray]:
    """Slug -> each live entry's levels of cosine (``knowledge.background``), NaN as -9."""
    idx = retriever.index()
    out = {}
    for model in idx.models:
        entry = idx.levels(model)
        for p in idx.live:
            values = np.r_[entry.mean[p], entry.spread[p]]
            out[idx.entries[int(p)].slug] = np.nan_to_num(values, nan=-9.0)
    return out


def assert_same_evidence(caught_up: Retriever, fresh: Retriever, levels_atol: float = 0) -> None:
    """The same scores for every question, and the same levels of cosine (a base keeps
    those it was measured with: entries changed since shift the others' a little)."""
    mine, theirs = levels(caught_up), levels(fresh)
    assert mine.keys() == theirs.keys()
    for slug, values in theirs.items():
        np.testing.assert_allclose(mine[slug], values, atol=levels_atol + 1e-6, err_msg=slug)
    for question in QUESTIONS:
        mine, theirs = evidence(caught_up, question), evidence(fresh, question)
        assert mine.keys() == theirs.keys(), question
        for slug, values in theirs.items():
            np.testing.assert_allclose(mine[slug], values, atol=2e-5, err_msg=f"{question} {slug}")


def edit(factory: sessionmaker[Session], change: Callable[[Session], Any]) -> None:
    with transaction(factory) as session:
        change(session)


def fresh_retriever(factory: sessionmaker[Session], **options: Any) -> Retriever:
    retriever = Retriever(
        factory, refresh_interval_s=0, options=IndexOptions(**options), background_interval_s=0
    )
    retriever.refresh()
    return retriever


def test_caught_up_index_scores_as_a_fresh_load(sessions: sessionmaker[Session]) -> None:
    live = fresh_retriever(sessions)
    base = live.index().base

    def add_alias(session: Session) -> None:
        data = entry_data(find_entry(session, "double-descent"))
        aliases = {**data.aliases, "en": [*data.aliases.get("en", []), "why test error peaks"]}
        upsert_entry(session, data.model_copy(update={"aliases": aliases}), author="ta")

    steps: list[Callable[[Session], Any]] = [
        lambda s: upsert_entry(s, EntryData.model_validate(MIXUP), author="ta"),
        add_alias,
        lambda s: delete_entry(s, find_entry(s, "causal-masking"), author="ta"),
        lambda s: restore_entry(s, find_entry(s, "causal-masking", deleted=True), author="ta"),
        lambda s: delete_entry(s, find_entry(s, "agi"), author="ta"),
    ]
    for step in steps:
        edit(sessions, step)
        caught_up = live.index()
        assert caught_up.base is base, "an edit reloaded the whole index"
        assert caught_up.version == kb_epoch(sessions())[1]
        assert_same_evidence(live, fresh_retriever(sessions), levels_atol=0.01)
    slugs = {e.slug for e in (live.index().entries[int(p)] for p in live.index().live)}
    assert "mixup" in slugs and "causal-masking" in slugs and "agi" not in slugs
    # Changed entries are in the delta once, whatever was done to them.
    assert len(live.index().delta) == 3  # mixup, double-descent, causal-masking
    answer = live.ask("why does mixup, blending two examples and their labels, help?", log=False)
    assert answer.matches[0].entry.slug == "mixup"


def test_a_change_to_every_entry_starts_a_new_epoch_and_a_full_load(
    sessions: sessionmaker[Session],
) -> None:
    live = fresh_retriever(sessions)
    first = live.index()
    edit(sessions, rebuild_units)
    assert kb_epoch(sessions())[0] != first.epoch
    assert live.index().base is not first.base
    assert_same_evidence(live, fresh_retriever(sessions))


def add_tag(session: Session) -> None:
    data = entry_data(find_entry(session, "double-descent"))
    upsert_entry(session, data.model_copy(update={"tags": [*data.tags, "x"]}), author="ta")


def test_an_edit_does_not_count_as_a_new_entry_version(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        before = session.scalar(select(Entry.version).where(Entry.slug == "double-descent"))
    edit(sessions, add_tag)
    with sessions() as session:
        version, changed_in = session.execute(
            select(Entry.version, Entry.changed_in).where(Entry.slug == "double-descent")
        ).one()
    assert version == before + 1  # the entry's own version counts one write
    assert changed_in == kb_epoch(sessions())[1]


def test_a_snapshot_is_mapped_at_start_and_a_damaged_one_rebuilt(
    sessions: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = {"snapshot_dir": tmp_path, "snapshot_min_units": 0}
    reference = fresh_retriever(sessions)
    first = fresh_retriever(sessions, **options)
    assert first.index().base.source == "snapshot"
    (written,) = snapshot.find(tmp_path, *kb_epoch(sessions()), first.models)
    second = fresh_retriever(sessions, **options)
    assert second.index().base.source == "snapshot"
    assert_same_evidence(second, reference)

    # One flipped byte: the checksum refuses the snapshot, and a new one is written.
    target = written / "dense0.rows.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    third = fresh_retriever(sessions, **options)
    assert "checksum mismatch" in caplog.text
    assert_same_evidence(third, reference)
    (rewritten,) = snapshot.find(tmp_path, *kb_epoch(sessions()), first.models)
    snapshot.open_snapshot(rewritten)  # whole again: every checksum matches
    fourth = fresh_retriever(sessions, **options)
    assert fourth.index().base.source == "snapshot"


def test_a_snapshot_of_an_older_version_is_caught_up(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    options = {"snapshot_dir": tmp_path, "snapshot_min_units": 0}
    fresh_retriever(sessions, **options)  # writes the snapshot
    edit(sessions, lambda s: upsert_entry(s, EntryData.model_validate(MIXUP), author="ta"))
    later = fresh_retriever(sessions, **options)
    assert later.index().base.source == "snapshot"
    assert later.index().base.version < later.index().version
    assert len(later.index().delta) == 1
    assert_same_evidence(later, fresh_retriever(sessions), levels_atol=0.01)


def test_past_the_delta_limit_the_base_is_rebuilt_in_the_background(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    live = fresh_retriever(sessions, snapshot_dir=tmp_path, snapshot_min_units=0, delta_max=1)
    old_base = live.index().base
    edit(sessions, lambda s: upsert_entry(s, EntryData.model_validate(MIXUP), author="ta"))
    edit(sessions, lambda s: delete_entry(s, find_entry(s, "agi"), author="ta"))
    edit(sessions, add_tag)
    assert len(live.index().delta) == 2  # caught up at once; the rebuild follows
    live.wait_for_background(60)
    live.index()  # a background job that found nothing to do yet starts the rebuild
    live.wait_for_background(60)
    deadline = time.monotonic() + 30
    while live.index().base is old_base and time.monotonic() < deadline:
        time.sleep(0.05)
    new = live.index()
    assert new.base is not old_base and new.base.version == new.version and len(new.delta) == 0
    assert_same_evidence(live, fresh_retriever(sessions))


def test_graph_candidates_answer_as_exhaustive_search(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exhaustive = fresh_retriever(sessions)
    graph = fresh_retriever(sessions, snapshot_dir=tmp_path, snapshot_min_units=0, ann_min_units=1)
    graph.wait_for_background(120)  # the graph is built after the first load
    deadline = time.monotonic() + 30
    while not graph.index().uses_ann and time.monotonic() < deadline:
        time.sleep(0.05)
    assert graph.index().uses_ann
    # With every unit a candidate, scoring entry by entry equals scoring every row.
    monkeypatch.setattr(index, "ANN_UNITS", 10_000)
    assert_same_evidence(graph, exhaustive)
    # With few candidates, the graph and BM25 still put the right entry forward.
    monkeypatch.setattr(index, "ANN_UNITS", 8)
    monkeypatch.setattr(index, "LEXICAL_UNITS", 8)
    for question in QUESTIONS:
        mine, theirs = graph.ask(question, log=False), exhaustive.ask(question, log=False)
        assert mine.abstained == theirs.abstained, question
        assert mine.matches[0].entry.slug == theirs.matches[0].entry.slug, question
        assert len(evidence(graph, question)) < len(evidence(exhaustive, question))


def test_the_graph_library_loads_in_a_process_that_has_not_loaded_the_encoder() -> None:
    """usearch before onnxruntime crashed the interpreter: a process that maps a graph
    before its first question (a web worker at start) must still encode questions."""
    code = (
        "import numpy as np\n"
        "from knowledge.ann import Ann\n"
        "rows = np.eye(4, dtype=np.int8) * 100\n"
        "graph = Ann.build(rows)\n"
        "import onnxruntime\n"
        "print(graph.search(np.array([1, 0, 0, 0], np.float32), 1).tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0]"


def test_kb_snapshot_writes_what_a_starting_process_maps(make_app: Any, tmp_path: Path) -> None:
    app = make_app(INDEX_SNAPSHOT_DIR=str(tmp_path), INDEX_ANN_MIN_UNITS=1)
    result = app.test_cli_runner().invoke(args=["kb", "snapshot"])
    assert result.exit_code == 0, result.output
    assert "building the nearest-neighbour graph" in result.output
    assert f"in {tmp_path}" in result.output
    retriever = app.extensions["core"].retriever
    index = retriever.refresh()
    assert index.base.source == "snapshot" and index.uses_ann
    answer = retriever.ask("なぜアテンションのロジットを√dで割るのですか？", log=False)
    assert answer.best is not None and answer.best.entry.slug == "attention-sqrt-d-scaling"


def test_a_snapshot_folder_that_cannot_be_written_is_no_reason_to_fail(
    sessions: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    unwritable = tmp_path / "a-file" / "snapshots"
    retriever = fresh_retriever(sessions, snapshot_dir=unwritable, snapshot_min_units=0)
    assert retriever.index().base.source == "database"
    assert "every start reads the database" in caplog.text
    answer = retriever.ask("なぜアテンションのロジットを√dで割るのですか？", log=False)
    assert answer.best is not None and answer.best.entry.slug == "attention-sqrt-d-scaling"


def test_a_snapshot_of_an_older_format_is_replaced_with_one_holding_the_levels(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    options = {"snapshot_dir": tmp_path, "snapshot_min_units": 0}
    fresh_retriever(sessions, **options)
    (written,) = snapshot.find(tmp_path, *kb_epoch(sessions()), Retriever(sessions).models)
    # As the release before wrote it: no levels, an older format number.
    manifest = snapshot.read_manifest(written)
    assert manifest is not None and "levels0.npy" in manifest["files"]
    (written / "levels0.npy").unlink()
    del manifest["files"]["levels0.npy"]
    manifest["format"] = snapshot.FORMAT - 1
    (written / snapshot.MANIFEST).write_text(json.dumps(manifest), "utf-8")

    upgraded = fresh_retriever(sessions, **options)
    assert upgraded.index().base.source == "snapshot"
    (rewritten,) = snapshot.find(tmp_path, *kb_epoch(sessions()), upgraded.models)
    assert (rewritten / "levels0.npy").is_file()
    assert snapshot.read_manifest(rewritten)["format"] == snapshot.FORMAT  # type: ignore[index]
    assert_same_evidence(upgraded, fresh_retriever(sessions))
