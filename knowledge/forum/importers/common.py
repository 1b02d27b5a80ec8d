"""What the format readers share: the error, the counters, timestamps, staff matching,
JSON loading with errors that name the file, and a folder-or-zip view of an export."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath
from typing import IO, Any

from knowledge.forum.model import Post


class ExportError(ValueError):
    """The export cannot be read: a missing path, a malformed file, the wrong format."""


@dataclass
class ImportStats:
    """Counters filled in while an export is read (``read_export(..., stats=...)``)."""

    files: int = 0  # files read (day files, topic files, ...)
    threads: int = 0  # threads yielded
    posts: int = 0  # posts in the threads yielded
    skipped_rows: int = 0  # malformed rows / records skipped (jsonl, csv)
    dropped_messages: int = 0  # empty, deleted, bot and system messages; orphan replies
    dropped_threads: int = 0  # threads without an opening post; private/deleted threads
    problems: list[str] = field(default_factory=list)  # why rows were skipped (the first few)

    def note(self, problem: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(problem)


_MAX_PROBLEMS = 20


STAFF_ROLES = frozenset({"staff", "instructor", "ta", "teacher", "moderator", "professor", "admin"})


class StaffNames:
    """The ``staff`` argument: names, display names, ids or emails, matched case-insensitively."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = frozenset(n.strip().casefold() for n in names if n and n.strip())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().casefold() in self._names

    def any(self, *names: object) -> bool:
        return any(name in self for name in names)


# --- timestamps ------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def parse_time(value: object) -> datetime | None:
    """ISO 8601 text or unix seconds (number or numeric text) as an aware UTC datetime.

    None or "" gives None; anything else unreadable raises ValueError. ISO text without
    an offset is taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float | Decimal):
        return _from_unix(value)
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return _from_unix(Decimal(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time or unix seconds: {value!r}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _from_unix(seconds: float | Decimal) -> datetime:
    try:
        return datetime.fromtimestamp(float(seconds), UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"unix time out of range: {seconds}") from None


def time_or_none(value: object) -> datetime | None:
    """parse_time for formats where one odd timestamp should not sink the export."""
    try:
        return parse_time(value)
    except ValueError:
        return None


def slack_ts(value: object) -> Decimal | None:
    """A Slack ``ts`` ("1709542800.000100") as an exact number (floats can tie), or None."""
    if not isinstance(value, str | int | float):
        return None
    try:
        ts = Decimal(str(value))
    except InvalidOperation:
        return None
    return ts if ts.is_finite() else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def time_key(post: Post, seq: int) -> tuple[bool, datetime, int]:
    """Sort key: by time, undated posts last, ties in reading order."""
    return (post.created_at is None, post.created_at or _EPOCH, seq)


def as_int(value: object) -> int:
    """A count from the export: ints, numeric text; anything else is 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    return 0


def text_of(value: object) -> str:
    """A field that should be text: str as-is, numbers as text, anything else ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


# --- JSON ------------------------------------------------------------------------------


def loads(data: bytes | str, where: str) -> Any:
    """json.loads whose errors say which file and where in it."""
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise ExportError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ExportError(
            f"{where}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


# --- a folder or a zip -----------------------------------------------------------------


class ExportTree:
    """The files of an export, in a folder or a zip, by POSIX path relative to its root.

    A zip may hold the export under a top folder ("export/users.json"): the root is the
    shallowest folder holding ``root_marker``, a file every export of the format has."""

    def __init__(
        self,
        label: str,
        folder: Path | None,
        archive: zipfile.ZipFile | None = None,
        root_marker: str = "",
    ) -> None:
        self.label = label
        self._folder = folder
        self._zip = archive
        self._members = (
            [i.filename for i in archive.infolist() if not i.is_dir()] if archive else []
        )
        self._member_set = frozenset(self._members)
        roots = sorted(
            (
                str(PurePosixPath(m).parent)
                for m in self._members
                if m.split("/")[-1] == root_marker
            ),
            key=lambda p: (p.count("/"), p),
        )
        self._prefix = roots[0] + "/" if roots and roots[0] != "." else ""

    def where(self, rel: str) -> str:
        """How messages name a file of the export."""
        if self._folder is not None:
            return str(self._folder / rel)
        return f"{self.label}:{self._prefix}{rel}"

    def exists(self, rel: str) -> bool:
        if self._folder is not None:
            return (self._folder / rel).is_file()
        return self._prefix + rel in self._member_set

    def read(self, rel: str) -> bytes:
        try:
            if self._folder is not None:
                return (self._folder / rel).read_bytes()
            assert self._zip is not None
            return self._zip.read(self._prefix + rel)
        except (OSError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise ExportError(f"{self.where(rel)}: cannot be read ({exc})") from None

    def open(self, rel: str) -> IO[bytes]:
        try:
            if self._folder is not None:
                return (self._folder / rel).open("rb")
            assert self._zip is not None
            return self._zip.open(self._prefix + rel)
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise ExportError(f"{self.where(rel)}: cannot be read ({exc})") from None

    def files_in(self, rel_dir: str, suffix: str) -> list[str]:
        """The files directly in ``rel_dir`` whose names end with ``suffix``, sorted."""
        if self._folder is not None:
            folder = self._folder / rel_dir
            if not folder.is_dir():
                return []
            names = [p.name for p in folder.iterdir() if p.is_file()]
        else:
            base = f"{self._prefix}{rel_dir}/"
            names = [m[len(base) :] for m in self._members if m.startswith(base)]
            names = [n for n in names if n and "/" not in n]
        return sorted(f"{rel_dir}/{n}" for n in names if n.endswith(suffix))


@contextmanager
def open_tree(path: Path, root_marker: str, what: str) -> Iterator[ExportTree]:
    """A folder or a .zip as an ExportTree (the zip is closed on exit); ``what`` names
    the export in errors ("a Slack export")."""
    if path.is_dir():
        yield ExportTree(str(path), path, None)
        return
    if not zipfile.is_zipfile(path):
        raise ExportError(f"{path}: not {what}: expected a folder or a .zip archive")
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ExportError(f"{path}: not a readable zip archive ({exc})") from None
    with archive:
        yield ExportTree(str(path), None, archive, root_marker)
