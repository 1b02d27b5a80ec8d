"""Import entry files into the database (idempotent upsert) and export them back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from knowledge import entryfile
from knowledge.db import transaction
from knowledge.entry_store import Progress, entry_data, refresh_index, upsert_entry
from knowledge.entryfile import EntryFileError
from knowledge.schema import EntryData
from knowledge.tables import Entry


class InvalidEntryFiles(Exception):
    """One or more files are invalid; nothing was imported."""

    def __init__(self, errors: list[EntryFileError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def entry_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return sorted(p for p in path.rglob("*.md") if p.is_file())


def load_all(path: Path, known_runners: Collection[str] | None = None) -> list[EntryData]:
    """Parse and check every file first, so one bad file imports nothing."""
    entries: list[EntryData] = []
    errors: list[EntryFileError] = []
    seen: dict[tuple[str, str], Path] = {}
    for file in entry_files(path):
        try:
            data = entryfile.load(file)
        except EntryFileError as exc:
            errors.append(exc)
            continue
        key = (data.course, data.slug)
        if key in seen:
            errors.append(EntryFileError(str(file), 2, "slug", f"also used by {seen[key]}"))
            continue
        seen[key] = file
        if data.runner and known_runners is not None and data.runner.name not in known_runners:
            errors.append(
                EntryFileError(
                    str(file),
                    _line_of(file, "runner:"),
                    "runner.name",
                    f"unknown experiment {data.runner.name!r}; "
                    f"known: {', '.join(sorted(known_runners))}",
                )
            )
            continue
        entries.append(data)
    if errors:
        raise InvalidEntryFiles(errors)
    return entries


def _line_of(file: Path, needle: str) -> int:
    for i, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith(needle):
            return i
    return 1


def import_path(
    factory: sessionmaker[Session],
    path: Path,
    known_runners: Collection[str] | None = None,
    *,
    units_progress: Progress | None = None,
    embed_progress: Callable[[str], Progress] | None = None,
) -> Counter[str]:
    """Upsert every entry file under ``path`` in one transaction; counts per outcome.

    Then the whole index is brought up to date, as after an upgrade: ``rebuilt`` counts
    entries whose units were of an older format, ``embedded`` vectors added for units that
    had none under a current model (both 0 when nothing changed).
    """
    entries = load_all(path, known_runners)
    counts: Counter[str] = Counter(created=0, updated=0, unchanged=0)
    with transaction(factory) as session:
        for data in entries:
            counts[upsert_entry(session, data).outcome] += 1
        stats = refresh_index(session, units_progress=units_progress, embed_progress=embed_progress)
        counts["rebuilt"], counts["embedded"] = stats["entries"], stats["embedded"]
    return counts


def export_path(factory: sessionmaker[Session], out: Path) -> int:
    """Write every live entry to ``out/<course>/<slug>.md``; returns the number written."""
    with factory() as session:
        rows = session.scalars(select(Entry).where(Entry.deleted_at.is_(None)).order_by(Entry.id))
        written = 0
        for entry in rows:
            data = entry_data(entry)
            target = out / data.course / f"{data.slug}.md"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(entryfile.dump(data), encoding="utf-8")
            written += 1
    return written
