"""Generic rows, one post each: JSON Lines (.jsonl/.ndjson/.json; a .json file may also be
one JSON list) or CSV (.csv), with the columns thread_id, post_id, parent_id, author,
author_role, created_at, body and optionally title, votes, url.

Rows may come in any order, so the posts are held (once, as Post objects) until the file
is read, then given out thread by thread in the order threads first appeared."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.forum.importers.common import (
    STAFF_ROLES,
    ExportError,
    ImportStats,
    StaffNames,
    as_int,
    parse_time,
    text_of,
    time_key,
)
from knowledge.forum.importers.jsonstream import JsonStream
from knowledge.forum.model import Post, Thread

REQUIRED = ("thread_id", "post_id", "author", "created_at", "body")
COLUMNS = (*REQUIRED, "parent_id", "author_role", "title", "votes", "url")
_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_EXTRA = "\0extra"  # where csv puts the fields of a row longer than the header

Row = tuple[str, Any]  # (where: "file:line", the row as read, or an error message)


class _BadRow(ValueError):
    pass


@dataclass
class _Rows:
    """One thread's posts as read: (file order, post)."""

    posts: list[tuple[int, Post]] = field(default_factory=list)
    title: str = ""
    url: str | None = None


def read_jsonl(path: Path, staff: StaffNames, stats: ImportStats) -> Iterator[Thread]:
    threads = _group(path, _rows(path), staff, stats)
    for thread_id in list(threads):
        thread = _thread(thread_id, threads.pop(thread_id), stats)  # pop: free as we go
        if thread is not None:
            yield thread


def _rows(path: Path) -> Iterator[Row]:
    suffix = path.suffix.lower()
    if path.is_dir():
        raise ExportError(f"{path}: expected a .jsonl, .ndjson, .json or .csv file, not a folder")
    if suffix == ".csv":
        return _csv_rows(path)
    if suffix in _JSON_SUFFIXES:
        return _json_rows(path)
    raise ExportError(
        f"{path}: unknown file type {suffix or '(no extension)'!r} for the jsonl format: "
        "expected .jsonl, .ndjson, .json or .csv"
    )


def _group(
    path: Path, rows: Iterator[Row], staff: StaffNames, stats: ImportStats
) -> dict[str, _Rows]:
    threads: dict[str, _Rows] = {}
    read = 0
    for seq, (where, row) in enumerate(rows):
        read += 1
        try:
            thread_id, post, title, url = _post(row, staff)
        except _BadRow as exc:
            stats.skipped_rows += 1
            stats.note(f"{where}: {exc}")
            continue
        if post is None:
            stats.dropped_messages += 1
            continue
        entry = threads.setdefault(thread_id, _Rows())
        entry.posts.append((seq, post))
        if title and (not entry.title or not post.parent_id):  # the opening's title wins
            entry.title = title
        entry.url = entry.url or url
    stats.files += 1
    if not read:
        raise ExportError(f"{path}: the file has no rows")
    if not threads:
        why = f"; the first problem: {stats.problems[0]}" if stats.problems else ""
        raise ExportError(f"{path}: no usable row ({read} read, none with a post){why}")
    return threads


def _post(row: object, staff: StaffNames) -> tuple[str, Post | None, str, str | None]:
    """(thread id, post or None when the body is empty, title, url) of one row."""
    if isinstance(row, str):
        raise _BadRow(row)
    if not isinstance(row, dict):
        raise _BadRow(f"expected an object with the columns, found {type(row).__name__}")
    missing = [name for name in REQUIRED if name not in row]
    if missing:
        raise _BadRow(f"missing {', '.join(missing)}")
    thread_id, post_id = text_of(row["thread_id"]).strip(), text_of(row["post_id"]).strip()
    if not thread_id or not post_id:
        raise _BadRow("empty thread_id or post_id")
    try:
        created_at = parse_time(row["created_at"])
    except ValueError as exc:
        raise _BadRow(f"created_at: {exc}") from None
    body = text_of(row["body"]).strip()
    title, url = text_of(row.get("title")).strip(), text_of(row.get("url")).strip() or None
    if not body:
        return thread_id, None, title, url
    author = text_of(row["author"]).strip()
    is_staff = text_of(row.get("author_role")).strip().casefold() in STAFF_ROLES or author in staff
    return (
        thread_id,
        Post(
            post_id=post_id,
            author=author,
            role="staff" if is_staff else "student",
            created_at=created_at,
            body=body,
            parent_id=text_of(row.get("parent_id")).strip() or None,
            votes=as_int(row.get("votes")),
        ),
        title,
        url,
    )


def _thread(thread_id: str, entry: _Rows, stats: ImportStats) -> Thread | None:
    """The opening is the earliest post that answers nothing; the rest follow by time."""
    seen: set[str] = set()
    ordered = []
    for _, post in sorted(entry.posts, key=lambda r: time_key(r[1], r[0])):
        if post.post_id in seen:
            stats.skipped_rows += 1
            stats.note(f"thread {thread_id}: post {post.post_id} appears twice")
            continue
        seen.add(post.post_id)
        ordered.append(post)
    opening = next((p for p in ordered if p.parent_id in (None, p.post_id)), None)
    if opening is None:
        stats.dropped_threads += 1
        stats.dropped_messages += len(ordered)
        return None
    opening.parent_id = None
    return Thread(
        forum="jsonl",
        thread_id=thread_id,
        title=entry.title,
        posts=[opening, *(p for p in ordered if p is not opening)],
        url=entry.url,
    )


# --- reading rows ----------------------------------------------------------------------


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            yield from enumerate(file, 1)
    except UnicodeDecodeError as exc:
        raise ExportError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ExportError(f"{path}: cannot be read ({exc.strerror})") from None


def _json_rows(path: Path) -> Iterator[Row]:
    if _first_char(path) == "[":  # a .json file holding one list of rows
        with path.open("rb") as raw:
            stream = JsonStream(raw, str(path))
            for number, row in enumerate(stream.items(), 1):
                yield f"{path}: row {number}", row
            stream.end()
        return
    for number, line in _text_lines(path):
        if not line.strip():
            continue
        try:
            yield f"{path}:{number}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"{path}:{number}", f"malformed JSON ({exc.msg} at character {exc.pos + 1})"


def _first_char(path: Path) -> str:
    for _, line in _text_lines(path):
        if line.strip():
            return line.strip()[0]
    return ""


def _csv_rows(path: Path) -> Iterator[Row]:
    lines = (line for _, line in _text_lines(path))
    reader = csv.DictReader(lines, restkey=_EXTRA)
    try:
        header = reader.fieldnames
        if not header:
            raise ExportError(f"{path}: the file is empty (no header row)")
        missing = [name for name in REQUIRED if name not in header]
        if missing:
            raise ExportError(
                f"{path}: the CSV header lacks the column(s) {', '.join(missing)} "
                f"(found: {', '.join(header)}; needed: {', '.join(REQUIRED)})"
            )
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if _EXTRA in row:
                yield where, f"more fields than the {len(header)} of the header"
            elif None in row.values():
                yield where, f"fewer fields than the {len(header)} of the header"
            else:
                yield where, row
    except csv.Error as exc:
        raise ExportError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
