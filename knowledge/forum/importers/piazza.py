"""Piazza class export: a JSON list of posts (or an object holding the list under
"posts"/"content"), alone or as ``class_content.json`` in a folder or .zip, with
``users.json`` beside it. The list is read one post at a time.

A post's ``history`` and its answers' are newest first; the latest version gives the
text, the oldest the author (an edit by someone else does not change who asked)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from knowledge.forum.importers.common import (
    STAFF_ROLES,
    ExportError,
    ExportTree,
    ImportStats,
    StaffNames,
    loads,
    open_tree,
    text_of,
    time_key,
    time_or_none,
)
from knowledge.forum.importers.jsonstream import JsonStream
from knowledge.forum.importers.markup import html_to_text
from knowledge.forum.model import Post, Role, Thread

_CONTENT = "class_content.json"
_LIST_KEYS = ("posts", "content", "class_content", "data", "result")
_NID_KEYS = ("nid", "network_id")
_ANONYMOUS = "anonymous"
_CHILD_TYPES = frozenset({"i_answer", "s_answer", "followup"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Roles:
    """Who answers for the course: users.json roles, then the ``staff`` names."""

    def __init__(
        self, users: dict[str, tuple[str, ...]], staff_uids: set[str], staff: StaffNames
    ) -> None:
        self._users = users  # uid -> (name, email)
        self._staff_uids = staff_uids
        self._staff = staff

    def of(self, uid: str) -> Role:
        if uid in self._staff_uids or self._staff.any(uid, *self._users.get(uid, ())):
            return "staff"
        return "student"


def read_piazza(path: Path, staff: StaffNames, stats: ImportStats) -> Iterator[Thread]:
    if path.is_dir() or zipfile.is_zipfile(path):
        with open_tree(path, _CONTENT, "a Piazza export") as tree:
            if not tree.exists(_CONTENT):
                raise ExportError(f"{tree.where(_CONTENT)} is missing: not a Piazza class export")
            roles = _read_users(tree, staff, stats)
            stats.files += 1
            yield from _threads(lambda: tree.open(_CONTENT), tree.where(_CONTENT), roles, stats)
    else:
        stats.files += 1
        roles = _Roles({}, set(), staff)
        yield from _threads(lambda: _open(path), str(path), roles, stats)


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise ExportError(f"{path}: cannot be read ({exc.strerror})") from None


def _read_users(tree: ExportTree, staff: StaffNames, stats: ImportStats) -> _Roles:
    if not tree.exists("users.json"):
        return _Roles({}, set(), staff)
    records = loads(tree.read("users.json"), tree.where("users.json"))
    stats.files += 1
    if not isinstance(records, list):
        raise ExportError(f"{tree.where('users.json')}: expected a list of users")
    users: dict[str, tuple[str, ...]] = {}
    staff_uids = set()
    for record in records:
        if not isinstance(record, dict):
            continue
        uid = text_of(record.get("user_id") or record.get("id"))
        users[uid] = (text_of(record.get("name")), text_of(record.get("email")))
        if text_of(record.get("role")).casefold() in STAFF_ROLES:
            staff_uids.add(uid)
    return _Roles(users, staff_uids, staff)


def _threads(
    opener: Callable[[], IO[bytes]], where: str, roles: _Roles, stats: ImportStats
) -> Iterator[Thread]:
    checked = False
    for number, (nid, record) in enumerate(_records(opener, where), 1):
        # The first post tells a Piazza export from another format's JSON; later odd
        # records are skipped (and counted).
        if not checked and not (isinstance(record, dict) and "history" in record):
            raise ExportError(
                f"{where}: post {number} is not a Piazza post (no 'history'): "
                "is this a Piazza class export?"
            )
        checked = True
        thread = _thread(record, nid, roles, stats)
        if thread is not None:
            yield thread


def _records(opener: Callable[[], IO[bytes]], where: str) -> Iterator[tuple[str | None, Any]]:
    """(network id, post) for each post of the file, one at a time.

    In the object form the network id may come after the list: then the list is skipped
    on a first pass and read on a second, so memory stays at one post."""
    nid: str | None = None
    list_key: str | None = None
    streamed = False
    with opener() as raw:
        stream = JsonStream(raw, where)
        first = stream.peek()
        if first == "[":
            for record in stream.items():
                yield None, record
            stream.end()
            return
        if first != "{":
            what = "the file is empty" if not first else "expected a JSON list of posts"
            raise ExportError(f"{where}: not a Piazza export: {what}")
        for key in stream.members():
            if key in _NID_KEYS:
                nid = text_of(stream.value()) or None
            elif list_key is None and key in _LIST_KEYS and stream.peek() == "[":
                list_key = key
                streamed = nid is not None
                for record in stream.items():
                    if streamed:
                        yield nid, record
            else:
                stream.value()
        stream.end()
    if list_key is None:
        keys = ", ".join(repr(k) for k in _LIST_KEYS)
        raise ExportError(f"{where}: not a Piazza export: no list of posts (under {keys})")
    if not streamed:
        with opener() as raw:
            stream = JsonStream(raw, where)
            for key in stream.members():
                if key == list_key:
                    for record in stream.items():
                        yield nid, record
                    return
                stream.value()


def _thread(record: object, nid: str | None, roles: _Roles, stats: ImportStats) -> Thread | None:
    """The post and its answers and follow-ups; None for private, deleted, empty posts."""
    if not isinstance(record, dict):
        stats.skipped_rows += 1
        return None
    versions = _versions(record.get("history"))
    title = html_to_text(text_of(versions[0].get("subject"))) if versions else ""
    # A question asked in its subject line alone is still a question.
    body = (html_to_text(text_of(versions[0].get("content"))) if versions else "") or title
    if record.get("status") in ("private", "deleted") or record.get("deleted") or not body:
        stats.dropped_threads += 1
        return None
    cid = text_of(record.get("id")) or text_of(record.get("nr"))
    question = _post(cid, record, versions, body, None, _author_role(versions, record, roles.of))
    question.votes = len(_list(record.get("tag_good")))
    replies = list(_replies(cid, record, roles, stats))
    replies = [p for _, p in sorted(enumerate(replies), key=lambda r: time_key(r[1], r[0]))]
    nr = text_of(record.get("nr"))
    return Thread(
        forum="piazza",
        thread_id=cid,
        title=title,
        posts=[question, *replies],
        url=f"https://piazza.com/class/{nid}?cid={nr or cid}" if nid else None,
        tags=[f for f in _list(record.get("folders")) if isinstance(f, str) and f],
    )


def _replies(cid: str, record: dict[str, Any], roles: _Roles, stats: ImportStats) -> Iterator[Post]:
    """Answers, follow-ups and their feedback; what is empty or unknown is counted."""
    for number, child in enumerate(_list(record.get("children")), 1):
        kind = child.get("type") if isinstance(child, dict) else None
        if not isinstance(child, dict) or child.get("deleted") or kind not in _CHILD_TYPES:
            stats.dropped_messages += 1  # also "dupe" markers and the like
            continue
        child_id = text_of(child.get("id")) or f"{cid}/{number}"
        if kind == "followup":
            yield from _note(child_id, cid, child, roles, stats)
            for index, feedback in enumerate(_list(child.get("children")), 1):
                if isinstance(feedback, dict) and feedback.get("type") == "feedback":
                    feedback_id = text_of(feedback.get("id")) or f"{child_id}/{index}"
                    yield from _note(feedback_id, child_id, feedback, roles, stats)
                else:
                    stats.dropped_messages += 1
            continue
        versions = _versions(child.get("history"))
        body = html_to_text(text_of(versions[0].get("content"))) if versions else ""
        if not body:
            stats.dropped_messages += 1
            continue
        role = "staff" if kind == "i_answer" else _author_role(versions, child, roles.of)
        answer = _post(child_id, child, versions, body, cid, role)
        answer.votes = len(_list(child.get("tag_endorse")))
        answer.endorsed = kind == "s_answer" and answer.votes > 0
        yield answer


def _note(
    post_id: str, parent_id: str, note: dict[str, Any], roles: _Roles, stats: ImportStats
) -> Iterator[Post]:
    """A follow-up or feedback (its text is in "subject"), unless it is empty."""
    body = html_to_text(text_of(note.get("subject")))
    if body:
        yield _post(post_id, note, [note], body, parent_id, _author_role([note], note, roles.of))
    else:
        stats.dropped_messages += 1


def _author_role(
    versions: list[dict[str, Any]], record: dict[str, Any], role_of: Callable[[str], Role]
) -> Role:
    uid = _author(versions, record)
    return role_of(uid) if uid else "student"


def _author(versions: list[dict[str, Any]], record: dict[str, Any]) -> str:
    """The uid of the first version: who wrote it (anonymous posts may have none)."""
    return text_of((versions[-1].get("uid") if versions else None) or record.get("uid"))


def _post(
    post_id: str,
    record: dict[str, Any],
    versions: list[dict[str, Any]],
    body: str,
    parent_id: str | None,
    role: Role,
) -> Post:
    first = versions[-1] if versions else record
    return Post(
        post_id=post_id,
        author=_author(versions, record) or _ANONYMOUS,
        role=role,
        created_at=time_or_none(record.get("created") or first.get("created")),
        body=body,
        parent_id=parent_id,
    )


def _versions(history: object) -> list[dict[str, Any]]:
    """The history entries, newest first (as Piazza writes them; re-sorted when dated)."""
    versions = [v for v in _list(history) if isinstance(v, dict)]
    times = [time_or_none(v.get("created")) for v in versions]
    if all(t is not None for t in times):
        pairs = sorted(
            zip(times, versions, strict=True), key=lambda p: p[0] or _EPOCH, reverse=True
        )
        versions = [v for _, v in pairs]
    return versions


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
