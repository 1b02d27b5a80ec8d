"""What every importer yields: threads of posts, with roles, in one shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Role = Literal["staff", "student"]
FORMATS = ("slack", "discourse", "piazza", "jsonl")


@dataclass
class Post:
    """One message. ``author`` is the export's own user id or name (personal data: the
    pipeline replaces it by the role before anything is stored)."""

    post_id: str
    author: str
    role: Role
    created_at: datetime | None  # timezone-aware (UTC) when the export says
    body: str  # plain text (markup of the export reduced to text)
    parent_id: str | None = None  # the post it answers, when the export says
    votes: int = 0  # likes, reactions, "good question" marks, upvotes
    endorsed: bool = False  # accepted / instructor-endorsed answer


@dataclass
class Thread:
    """A question thread: the first post opens it, the rest reply (in time order)."""

    forum: str  # the export's format name: slack, discourse, piazza, jsonl
    thread_id: str  # stable within the export (Slack: "<channel>/<thread_ts>")
    title: str  # the subject line when the format has one, else ""
    posts: list[Post]
    url: str | None = None  # a link to the thread, when the export allows one
    tags: list[str] = field(default_factory=list)

    @property
    def opening(self) -> Post:
        return self.posts[0]

    @property
    def created_at(self) -> datetime | None:
        return self.posts[0].created_at if self.posts else None
