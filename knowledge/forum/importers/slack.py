"""Slack workspace export (a folder or a .zip): users.json, channels.json and
``<channel>/<YYYY-MM-DD>.json`` day files, each a list of messages.

Threads are grouped by ``thread_ts``. Replies can sit in later day files, so a channel's
open threads are held while its day files are read in date order; a thread is given out
as soon as its parent's ``reply_count`` replies have been seen, the rest at the end of the
channel. Public channels only (channels.json): private channels and DMs are not read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from knowledge.forum.importers.common import (
    ExportError,
    ExportTree,
    ImportStats,
    StaffNames,
    as_int,
    loads,
    open_tree,
    slack_ts,
    text_of,
)
from knowledge.forum.importers.markup import slack_to_text
from knowledge.forum.model import Post, Thread

_DAY_FILE = re.compile(r"\d{4}-\d{2}-\d{2}\.json")
# Subtypes that are people talking; every other subtype (channel_join, bot_message,
# tombstone, channel_topic, ...) is a system or bot message.
_KEPT_SUBTYPES = frozenset({"thread_broadcast", "file_share", "me_message"})


@dataclass
class _User:
    name: str  # what a mention shows
    is_staff: bool
    is_bot: bool


@dataclass
class _OpenThread:
    opening: Post | None = None
    parent_read: bool = False  # the parent was read, even if it was dropped
    expected: int | None = None  # the parent's reply_count
    seen: int = 0  # replies read, kept or dropped
    replies: dict[str, tuple[Decimal, Post]] = field(default_factory=dict)  # by ts


def read_slack(path: Path, staff: StaffNames, stats: ImportStats) -> Iterator[Thread]:
    with open_tree(path, "users.json", "a Slack export") as tree:
        users = _read_users(tree, staff, stats)
        for channel in _read_channels(tree, stats):
            yield from _read_channel(tree, channel, users, staff, stats)


def _read_json_list(tree: ExportTree, rel: str, stats: ImportStats) -> list[Any]:
    if not tree.exists(rel):
        raise ExportError(
            f"{tree.where(rel)} is missing: not a Slack export (it has users.json, "
            "channels.json and a folder of day files per channel)"
        )
    data = loads(tree.read(rel), tree.where(rel))
    stats.files += 1
    if not isinstance(data, list):
        raise ExportError(f"{tree.where(rel)}: expected a JSON list, found {type(data).__name__}")
    return data


def _read_users(tree: ExportTree, staff: StaffNames, stats: ImportStats) -> dict[str, _User]:
    users = {}
    for record in _read_json_list(tree, "users.json", stats):
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            continue
        profile = record.get("profile")
        if not isinstance(profile, dict):
            profile = {}
        names = (
            record.get("name"),
            record.get("real_name"),
            profile.get("real_name"),
            profile.get("display_name"),
            profile.get("email"),
        )
        is_admin = any(record.get(k) for k in ("is_admin", "is_owner", "is_primary_owner"))
        users[record["id"]] = _User(
            name=next((n for n in names if isinstance(n, str) and n), record["id"]),
            is_staff=bool(is_admin or staff.any(record["id"], *names)),
            is_bot=bool(record.get("is_bot")),
        )
    return users


def _read_channels(tree: ExportTree, stats: ImportStats) -> list[str]:
    names = []
    for record in _read_json_list(tree, "channels.json", stats):
        name = record.get("name") if isinstance(record, dict) else None
        # The name is a folder of the export: never let it climb out of it.
        if isinstance(name, str) and name not in ("", ".", "..") and not re.search(r"[/\\]", name):
            names.append(name)
    return names


def _read_channel(
    tree: ExportTree, channel: str, users: dict[str, _User], staff: StaffNames, stats: ImportStats
) -> Iterator[Thread]:
    open_threads: dict[str, _OpenThread] = {}
    for rel in tree.files_in(channel, ".json"):
        if not _DAY_FILE.fullmatch(rel.rsplit("/", 1)[-1]):
            continue
        messages = loads(tree.read(rel), tree.where(rel))
        stats.files += 1
        if not isinstance(messages, list):
            raise ExportError(f"{tree.where(rel)}: expected a list of messages")
        for message in messages:
            thread = _add_message(message, channel, open_threads, users, staff, stats)
            if thread is not None:
                yield thread
    # Threads whose replies did not all turn up (or whose parent had no reply_count).
    for key in sorted(open_threads, key=lambda k: slack_ts(k) or Decimal(0)):
        thread = _finish(channel, key, open_threads.pop(key), stats)
        if thread is not None:
            yield thread


def _add_message(
    message: object,
    channel: str,
    open_threads: dict[str, _OpenThread],
    users: dict[str, _User],
    staff: StaffNames,
    stats: ImportStats,
) -> Thread | None:
    """Files one message; returns a thread when this message completes one."""
    if not isinstance(message, dict):
        stats.dropped_messages += 1
        return None
    ts = text_of(message.get("ts"))
    thread_ts = text_of(message.get("thread_ts")) or None
    post = _post(message, channel, users, staff)
    if post is None:
        stats.dropped_messages += 1
    if thread_ts is None:  # a message of its own
        return None if post is None else _thread(channel, ts, [post])
    entry = open_threads.setdefault(thread_ts, _OpenThread())
    if thread_ts == ts:
        entry.opening, entry.parent_read = post, True
        entry.expected = as_int(message["reply_count"]) if "reply_count" in message else None
    else:
        entry.seen += 1
        if post is not None:
            post.parent_id = f"{channel}/{thread_ts}"
            entry.replies.setdefault(ts, (slack_ts(ts) or Decimal(0), post))
    if entry.parent_read and entry.expected is not None and entry.seen >= entry.expected:
        return _finish(channel, thread_ts, open_threads.pop(thread_ts), stats)
    return None


def _finish(channel: str, key: str, entry: _OpenThread, stats: ImportStats) -> Thread | None:
    if entry.opening is None:  # the parent was deleted, a system message, or never seen
        stats.dropped_threads += 1
        stats.dropped_messages += len(entry.replies)
        return None
    replies = [post for _, post in sorted(entry.replies.values(), key=lambda r: r[0])]
    return _thread(channel, key, [entry.opening, *replies])


def _thread(channel: str, key: str, posts: list[Post]) -> Thread:
    return Thread(
        forum="slack", thread_id=f"{channel}/{key}", title="", posts=posts, tags=[channel]
    )


def _post(
    message: dict[str, Any], channel: str, users: dict[str, _User], staff: StaffNames
) -> Post | None:
    """The message as a post, or None for system, bot, deleted and empty messages."""
    if message.get("type", "message") != "message":
        return None
    subtype = message.get("subtype")
    if subtype and subtype not in _KEPT_SUBTYPES:
        return None
    author = text_of(message.get("user"))
    user = users.get(author)
    ts = slack_ts(message.get("ts"))
    if not author or ts is None or (user is not None and user.is_bot):
        return None
    text = slack_to_text(text_of(message.get("text")), lambda uid: _mention(users, uid)).strip()
    if not text:
        return None
    return Post(
        post_id=f"{channel}/{text_of(message.get('ts'))}",
        author=author,
        role="staff" if (user.is_staff if user else author in staff) else "student",
        created_at=datetime.fromtimestamp(float(ts), UTC),
        body=text,
        votes=_votes(message.get("reactions")),
    )


def _mention(users: dict[str, _User], user_id: str) -> str:
    user = users.get(user_id)
    return user.name if user else user_id


def _votes(reactions: object) -> int:
    if not isinstance(reactions, list):
        return 0
    total = 0
    for reaction in reactions:
        if isinstance(reaction, dict):
            count = reaction.get("count")
            users = reaction.get("users")
            total += as_int(count) if count is not None else len(users or ())
    return total
