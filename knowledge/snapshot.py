"""Index snapshots: a base segment and its graphs saved as files, mapped at start.

A snapshot is a directory ``<epoch>-v<version>`` holding ``.npy`` arrays, the graphs
and ``manifest.json`` (format, epoch, version, models, and each file's size and xxh3
checksum). It is written into a temporary directory and renamed into place, so a reader
never sees half of one; the checksums are verified before it is used, and a damaged
snapshot is deleted and rebuilt. A process maps the newest snapshot of the database's
epoch at or below its version and catches up from there, so the web processes of one
host start in about a second and share the pages of one copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import xxhash

from knowledge.ann import Ann
from knowledge.segment import Segment

log = logging.getLogger(__name__)

FORMAT = 3  # bump when the files' layout or meaning changes (2: int8 graphs, 3: levels)
MANIFEST = "manifest.json"
STALE_AFTER_S = 24 * 3600  # other epochs' snapshots are deleted after a day unused


class SnapshotError(RuntimeError):
    """A snapshot is damaged or does not belong here."""


def checksum(path: Path) -> str:
    digest = xxhash.xxh3_64()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def name(epoch: str, version: int, graphs: int) -> str:
    return f"{epoch or 'none'}-v{version}-g{graphs}"


def write(directory: Path, segment: Segment, ann: dict[str, Ann], epoch: str, version: int) -> Path:
    """Save a base; returns its directory (an existing one for the same base is kept)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name(epoch, version, len(ann))
    existing = read_manifest(final)
    if existing is not None and existing.get("format") == FORMAT:
        return final
    if final.exists():  # of an older format (an upgrade): replaced
        shutil.rmtree(final, ignore_errors=True)
    tmp = directory / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        files = segment.save(tmp)
        graphs = {}
        for i, (model, graph) in enumerate(ann.items()):
            graphs[model] = f"ann{i}.usearch"
            graph.save(tmp / graphs[model])
            files.append(graphs[model])
        manifest = {
            "format": FORMAT,
            "epoch": epoch,
            "version": version,
            "models": list(segment.dense),
            "entries": len(segment),
            "ann": graphs,
            "created_at": time.time(),
            "files": {
                f: {"bytes": (tmp / f).stat().st_size, "xxh3": checksum(tmp / f)} for f in files
            },
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), "utf-8")
        try:
            tmp.rename(final)
        except OSError:  # another process renamed its copy of the same base first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_older(directory, epoch, version, len(ann))
    return final


def find(directory: Path | None, epoch: str, version: int, models: tuple[str, ...]) -> list[Path]:
    """Snapshots of ``epoch`` at or below ``version`` for ``models``, newest first."""
    if directory is None or not directory.is_dir():
        return []
    found = []
    for path in directory.glob(f"{epoch or 'none'}-v*"):
        manifest = read_manifest(path)
        if (
            manifest
            and manifest.get("format") == FORMAT
            and manifest.get("epoch") == epoch
            and int(manifest.get("version", -1)) <= version
            and tuple(manifest.get("models", ())) == models
        ):
            found.append((int(manifest["version"]), len(manifest.get("ann", {})), path))
    return [p for *_, p in sorted(found, reverse=True)]


def open_snapshot(path: Path) -> tuple[Segment, dict[str, Ann], dict[str, Any]]:
    """Map a snapshot after checking every file against its manifest."""
    manifest = read_manifest(path)
    if not manifest:
        raise SnapshotError(f"{path.name}: no readable manifest")
    for file, meta in manifest["files"].items():
        target = path / file
        if not target.is_file() or target.stat().st_size != meta["bytes"]:
            raise SnapshotError(f"{path.name}/{file}: missing or of the wrong size")
        if checksum(target) != meta["xxh3"]:
            raise SnapshotError(f"{path.name}/{file}: checksum mismatch")
    segment = Segment.open(path)
    ann = {
        model: Ann.open(path / file, segment.dense[model].rows.shape[1])
        for model, file in manifest["ann"].items()
    }
    with contextlib.suppress(OSError):
        os.utime(path)  # in use: not stale
    return segment, ann, manifest


def discard(path: Path) -> None:
    """Delete a damaged snapshot (processes that mapped it keep their pages)."""
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """One builder per host: others wait, then find its snapshot."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".build.lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def try_build_lock(directory: Path | None) -> Iterator[bool]:
    """The build lock if it is free (True), else nothing (False): background work is
    left to the process already doing it."""
    if directory is None:
        yield False
        return
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".build.lock").open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        raw = json.loads((path / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _remove_older(directory: Path, epoch: str, version: int, graphs: int) -> None:
    """Older snapshots of this epoch (or as old, with fewer graphs), and other epochs'
    unused for a day."""
    now = time.time()
    for path in directory.iterdir():
        if not path.is_dir() or path.name == name(epoch, version, graphs):
            continue
        manifest = read_manifest(path)
        if path.name.startswith(".tmp-"):
            stale = now - path.stat().st_mtime > STALE_AFTER_S
        elif manifest is None:
            stale = False
        elif manifest.get("epoch") == epoch:
            older = (int(manifest.get("version", 0)), len(manifest.get("ann", {})))
            stale = older < (version, graphs)
        else:
            stale = now - path.stat().st_mtime > STALE_AFTER_S
        if stale:
            shutil.rmtree(path, ignore_errors=True)
