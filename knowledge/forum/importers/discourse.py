"""Discourse topics in the ``/t/{id}.json`` shape: one topic per file, a JSON list of
topics, or a folder of such files. Lists are read one topic at a time.

Note: Discourse puts only the first posts (20 by default) in ``post_stream.posts``; an
export made with ``?print=true`` (up to 1000) or post by post has them all."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from knowledge.forum.importers.common import (
    ExportError,
    ImportStats,
    StaffNames,
    as_int,
    text_of,
    time_key,
    time_or_none,
)
from knowledge.forum.importers.jsonstream import JsonStream
from knowledge.forum.importers.markup import html_to_text
from knowledge.forum.model import Post, Thread

_LIKE = 2  # the actions_summary id of a like


def read_discourse(path: Path, staff: StaffNames, stats: ImportStats) -> Iterator[Thread]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            raise ExportError(f"{path}: no .json topic files in this folder")
    else:
        files = [path]
    for file in files:
        stats.files += 1
        for where, topic in _topics(file):
            thread = _thread(topic, where, staff, stats)
            if thread is not None:
                yield thread


def _topics(file: Path) -> Iterator[tuple[str, Any]]:
    """(where, topic) for a file of one topic or of a list of topics."""
    try:
        raw = file.open("rb")
    except OSError as exc:
        raise ExportError(f"{file}: cannot be read ({exc.strerror})") from None
    with raw:
        stream = JsonStream(raw, str(file))
        first = stream.peek()
        if first == "[":
            for number, topic in enumerate(stream.items(), 1):
                yield f"{file} (topic {number} of the list)", topic
        elif first == "{":
            yield str(file), stream.value()
        else:
            what = "the file is empty" if not first else "expected a JSON object or list"
            raise ExportError(f"{file}: not a Discourse topic: {what}")
        stream.end()


def _thread(topic: object, where: str, staff: StaffNames, stats: ImportStats) -> Thread | None:
    stream = topic.get("post_stream") if isinstance(topic, dict) else None
    records = stream.get("posts") if isinstance(stream, dict) else None
    if not isinstance(topic, dict) or not isinstance(records, list):
        raise ExportError(
            f"{where}: not a Discourse topic: expected an object with post_stream.posts "
            "(the /t/{id}.json shape)"
        )
    topic_id = text_of(topic.get("id"))
    accepted = topic.get("accepted_answer")
    accepted_number = accepted.get("post_number") if isinstance(accepted, dict) else None

    kept: list[tuple[int, Post]] = []  # (post_number, post)
    reply_to: dict[str, int] = {}
    for record in records:
        post = _post(record, topic_id, accepted_number, staff)
        if post is None:
            stats.dropped_messages += 1
            continue
        kept.append((as_int(record.get("post_number")), post))
        if record.get("reply_to_post_number"):
            reply_to[post.post_id] = as_int(record["reply_to_post_number"])

    # Replies point at post numbers; a reply to a dropped post keeps no parent.
    ids = {number: post.post_id for number, post in kept}
    for _, post in kept:
        if post.post_id in reply_to:
            post.parent_id = ids.get(reply_to[post.post_id])
    opening = next((post for number, post in kept if number == 1), None)
    if opening is None:
        stats.dropped_threads += 1
        stats.dropped_messages += len(kept)
        return None
    replies = [post for _, post in kept if post is not opening]
    replies = [p for _, p in sorted(enumerate(replies), key=lambda r: time_key(r[1], r[0]))]
    return Thread(
        forum="discourse",
        thread_id=topic_id,
        title=text_of(topic.get("title")) or html.unescape(text_of(topic.get("fancy_title"))),
        posts=[opening, *replies],
        url=_url(topic, topic_id),
        tags=_tags(topic.get("tags")),
    )


def _post(record: object, topic_id: str, accepted_number: object, staff: StaffNames) -> Post | None:
    """The post, or None for small actions, whispers, deleted and empty posts."""
    if not isinstance(record, dict) or as_int(record.get("post_type", 1)) != 1:
        return None
    if record.get("user_deleted") or record.get("deleted_at"):
        return None
    raw = text_of(record.get("raw")).strip()
    body = raw or html_to_text(text_of(record.get("cooked")))
    if not body:
        return None
    username = text_of(record.get("username"))
    is_staff = any(record.get(k) for k in ("staff", "moderator", "admin")) or staff.any(
        username, record.get("name"), text_of(record.get("user_id"))
    )
    number = record.get("post_number")
    return Post(
        post_id=text_of(record.get("id")) or f"{topic_id}#{text_of(number)}",
        author=username or text_of(record.get("user_id")),
        role="staff" if is_staff else "student",
        created_at=time_or_none(record.get("created_at")),
        body=body,
        votes=_likes(record),
        endorsed=bool(record.get("accepted_answer"))
        or (number is not None and number == accepted_number),
    )


def _likes(record: dict[str, Any]) -> int:
    if "like_count" in record:
        return as_int(record["like_count"])
    actions = record.get("actions_summary")
    if not isinstance(actions, list):
        return 0
    return sum(
        as_int(a.get("count")) for a in actions if isinstance(a, dict) and a.get("id") == _LIKE
    )


def _tags(tags: object) -> list[str]:
    if not isinstance(tags, list):
        return []
    names = (t.get("name") if isinstance(t, dict) else t for t in tags)
    return [n for n in names if isinstance(n, str) and n]


def _url(topic: dict[str, Any], topic_id: str) -> str:
    """The topic's path, under the export's base URL when it names one."""
    slug = text_of(topic.get("slug"))
    path = f"/t/{slug}/{topic_id}" if slug else f"/t/{topic_id}"
    base = text_of(topic.get("base_url")).rstrip("/")
    return base + path
