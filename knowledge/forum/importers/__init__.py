"""Importers: a course's exported forum or chat history read as ``Thread``s.

    for thread in read_export(Path("export.zip"), "slack", staff=frozenset({"dan"})):
        ...

One module per format (slack, discourse, piazza, jsonl). Each streams its export: one
file, topic, post or line at a time where the format allows (Slack holds one channel's
open threads; jsonl holds its rows, which may come in any order). Bodies keep what the
authors wrote, personal data included, apart from markup reduced to text."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from knowledge.forum.importers.common import ExportError, ImportStats, StaffNames
from knowledge.forum.importers.discourse import read_discourse
from knowledge.forum.importers.jsonl import read_jsonl
from knowledge.forum.importers.piazza import read_piazza
from knowledge.forum.importers.slack import read_slack
from knowledge.forum.model import FORMATS, Thread

__all__ = ["ExportError", "ImportStats", "read_export"]

_Reader = Callable[[Path, StaffNames, ImportStats], Iterator[Thread]]
_READERS: dict[str, _Reader] = {
    "slack": read_slack,
    "discourse": read_discourse,
    "piazza": read_piazza,
    "jsonl": read_jsonl,
}
assert set(_READERS) == set(FORMATS)


def read_export(
    path: Path | str,
    fmt: str,
    staff: Iterable[str] = frozenset(),
    stats: ImportStats | None = None,
) -> Iterator[Thread]:
    """The threads of the export at ``path`` in format ``fmt`` (one of FORMATS).

    ``staff``: user names, display names, user ids or emails (any case) of the people
    who answer for the course; they count as staff besides any roles the export has.
    ``stats``, when given, is filled in as the threads are read.

    A wrong format name or a missing path raises ExportError at once; a malformed file
    raises it while iterating (the export is read lazily), naming the file."""
    if fmt not in _READERS:
        raise ExportError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    path = Path(path)
    if not path.exists():
        raise ExportError(f"{path}: no such file or folder")
    return _counted(_READERS[fmt](path, StaffNames(staff), stats or ImportStats()), stats)


def _counted(threads: Iterator[Thread], stats: ImportStats | None) -> Iterator[Thread]:
    for thread in threads:
        if stats is not None:
            stats.threads += 1
            stats.posts += len(thread.posts)
        yield thread
