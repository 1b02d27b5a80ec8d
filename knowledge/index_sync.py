"""Keeping a process's index at the database's knowledge version.

- ``load``: the newest valid snapshot of the database's epoch, caught up to its version;
  else a full read of the database (one process per host at a time, which then writes
  the snapshot the others map).
- ``catch_up``: the entries changed since the base's version are reloaded into the
  delta segment and hidden in the base; the cost follows the number of changed entries.
- ``build_snapshot``: a base read from the database, its graph when it is large, saved
  (what ``kb snapshot`` and a process's background rebuild run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from knowledge import snapshot
from knowledge.ann import Ann
from knowledge.entry_store import kb_epoch
from knowledge.index import Base, KnowledgeIndex, fill_levels
from knowledge.segment import Segment, build
from knowledge.tables import Entry, IndexUnit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexOptions:
    snapshot_dir: Path | None = None  # None: no snapshots (every start reads the database)
    snapshot_min_units: int = 30_000  # smaller indexes load from the database in < 0.5 s
    ann_min_units: int = 150_000  # above, a graph finds candidates (``knowledge.ann``)
    delta_max: int = 2_000  # changed entries beyond which the base is rebuilt
    threads: int = 0  # per int8 product (0: EMBED_THREADS, else every core)


def load(session: Session, models: tuple[str, ...], options: IndexOptions) -> KnowledgeIndex:
    """The current index: from a snapshot where one is valid, else from the database."""
    epoch, version = kb_epoch(session)
    index = _from_snapshots(session, models, options, epoch, version)
    if index is not None:
        return index
    directory = options.snapshot_dir
    if directory is None or _units(session) < options.snapshot_min_units:
        return _from_database(session, models, options, epoch, version)
    fresh = None
    try:
        with snapshot.build_lock(directory):
            # Another process may have written one while this one waited.
            index = _from_snapshots(session, models, options, epoch, version)
            if index is not None:
                return index
            fresh = _from_database(session, models, options, epoch, version)
            # The graph of a large base takes minutes: the processes map this one now and
            # the graph follows in the background (``Retriever``).
            fill_levels(fresh.base.segment, fresh.base.threads or 0)
            path = snapshot.write(directory, fresh.base.segment, {}, epoch, version)
    except OSError as e:  # a read-only or full disk: serve without a snapshot
        log.warning("no index snapshot in %s (%s): every start reads the database", directory, e)
        return fresh or _from_database(session, models, options, epoch, version)
    return _open(session, path, options, epoch, version) or fresh


def catch_up(
    session: Session, index: KnowledgeIndex, version: int, options: IndexOptions
) -> KnowledgeIndex:
    """``index`` brought to ``version`` (same epoch) by reloading the changed entries."""
    base = index.base
    changed = np.array(
        session.scalars(select(Entry.id).where(Entry.changed_in > base.version)).all(),
        dtype=np.int64,
    )
    removed = np.zeros(len(base.segment), dtype=bool)
    removed[base.segment.positions_of(np.sort(changed))] = True
    delta = build(session, base.segment.models, changed_after=base.version)
    return KnowledgeIndex(base, version, delta, removed)


def needs_graph(index: KnowledgeIndex, options: IndexOptions) -> bool:
    units = max((len(d.codes) for d in index.base.segment.dense.values()), default=0)
    return not index.base.ann and units >= options.ann_min_units


def needs_rebase(index: KnowledgeIndex, options: IndexOptions) -> bool:
    return len(index.delta) > options.delta_max


def build_snapshot(
    factory: Callable[[], Session],
    models: tuple[str, ...],
    options: IndexOptions,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Read the whole base, add its graph when large, save it; returns the snapshot."""
    assert options.snapshot_dir is not None
    say = progress or (lambda _message: None)
    with factory() as session:
        epoch, version = kb_epoch(session)
        say(f"reading the index at version {version} from the database")
        segment = build(session, models)
    ann = {}
    for model, dense in segment.dense.items():
        if len(dense.codes) >= options.ann_min_units:
            say(f"building the nearest-neighbour graph of {len(dense.codes):,} {model} vectors")
            ann[model] = Ann.build(np.asarray(dense.rows), threads=0)
    say("measuring each entry's level of cosine")
    fill_levels(segment, options.threads or 0)
    say("writing the snapshot")
    return snapshot.write(options.snapshot_dir, segment, ann, epoch, version)


def add_graph(index: KnowledgeIndex, options: IndexOptions) -> Path:
    """Save ``index``'s base again with its graph (for a base mapped without one)."""
    assert options.snapshot_dir is not None
    segment = index.base.segment
    fill_levels(segment, index.base.threads or 0)
    ann = {
        model: Ann.build(np.asarray(d.rows), threads=1)
        for model, d in segment.dense.items()
        if len(d.codes) >= options.ann_min_units
    }
    return snapshot.write(options.snapshot_dir, segment, ann, index.epoch, index.base.version)


def better_snapshot(index: KnowledgeIndex, options: IndexOptions) -> Path | None:
    """A snapshot newer than ``index``'s base, or as new with a graph it lacks."""
    for path in snapshot.find(options.snapshot_dir, index.epoch, index.version, index.models):
        manifest = snapshot.read_manifest(path) or {}
        version = int(manifest.get("version", -1))
        graph = bool(manifest.get("ann")) and not index.base.ann
        if version > index.base.version or (graph and version == index.base.version):
            return path
    return None


def open_base(path: Path, epoch: str, options: IndexOptions) -> Base | None:
    """The base saved at ``path``, checked; None (and the snapshot deleted) if damaged."""
    try:
        segment, ann, manifest = snapshot.open_snapshot(path)
    except (snapshot.SnapshotError, OSError, ValueError, KeyError) as e:
        log.warning("index snapshot %s is not usable (%s): deleted, to be rebuilt", path.name, e)
        snapshot.discard(path)
        return None
    if manifest.get("epoch") != epoch:
        return None
    return Base(segment, epoch, int(manifest["version"]), ann, "snapshot", options.threads)


def on_base(session: Session, base: Base, version: int, options: IndexOptions) -> KnowledgeIndex:
    """The index at ``version`` on ``base``: its entries changed since caught up."""
    empty = np.zeros(len(base.segment), dtype=bool)
    start = KnowledgeIndex(base, base.version, Segment.empty(base.segment.models), empty)
    return catch_up(session, start, version, options)


def _from_snapshots(
    session: Session, models: tuple[str, ...], options: IndexOptions, epoch: str, version: int
) -> KnowledgeIndex | None:
    for path in snapshot.find(options.snapshot_dir, epoch, version, models):
        index = _open(session, path, options, epoch, version)
        if index is not None:
            return index
    return None


def _open(
    session: Session, path: Path, options: IndexOptions, epoch: str, version: int
) -> KnowledgeIndex | None:
    base = open_base(path, epoch, options)
    return None if base is None else on_base(session, base, version, options)


def _from_database(
    session: Session, models: tuple[str, ...], options: IndexOptions, epoch: str, version: int
) -> KnowledgeIndex:
    segment = build(session, models)
    base = Base(segment, epoch, version, {}, "database", options.threads)
    return KnowledgeIndex(base, version, Segment.empty(models), np.zeros(len(segment), dtype=bool))


def _units(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(IndexUnit)) or 0
