"""Small generated forum exports, one writer per format, all telling the same story.

``SCENARIO`` is the story: five threads (English and Japanese) with staff answers, a
student answer, a thread no staff answered, a reply a day later (in Slack, in the next
day file) and a thread nobody answered. Each writer adds what its format has besides:
system, bot, deleted and private messages, markup, votes, roles.

The bodies carry planted personal data (``PLANTED_*``) so a later test can check that
the scrubber removes them; the importers keep them."""

from __future__ import annotations

import csv
import html
import json
import random
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

PLANTED_EMAILS = ("student@nyu.edu", "yamada.taro@example.ac.jp")
PLANTED_PHONES = ("+1 212-555-0147", "(212) 555-0199", "090-1234-5678")
PLANTED_IDS = ("N12345678",)
PLANTED_NAMES = ("Alice Smith", "Bob", "山田")
PLANTED_MENTIONS = ("@dan",)
PLANTED_SIGNATURES = ("Thanks,\nAlice Smith", "--\nBob", "よろしくお願いします。\n山田")

START = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
PIAZZA_NID = "lx0course2024"


@dataclass(frozen=True)
class Person:
    uid: str
    username: str
    real_name: str
    email: str
    role: str  # instructor, ta, student

    @property
    def is_staff(self) -> bool:
        return self.role != "student"


CAROL = Person("U01CAROL", "carol", "Carol Chen", "carol.chen@nyu.edu", "instructor")
DAN = Person("U02DAN", "dan", "Dan Kim", "Dan.Kim@nyu.edu", "ta")
ALICE = Person("U03ALICE", "alice", "Alice Smith", "alice.smith@nyu.edu", "student")
BOB = Person("U04BOB", "bob", "Bob Jones", "bob.jones@nyu.edu", "student")
YAMADA = Person("U05YAMADA", "yamada", "山田太郎", "yamada.taro@example.ac.jp", "student")
PEOPLE = (CAROL, DAN, ALICE, BOB, YAMADA)

_DROPOUT_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html"


@dataclass(frozen=True)
class ScenarioPost:
    author: Person
    text: str  # the body every importer should give (markup reduced)
    minutes: int  # after START
    votes: int = 0
    reply_to: int | None = None  # index of the post it answers (default: the opening)
    html: str | None = None  # the HTML a forum would hold, when not just paragraphs
    slack: str | None = None  # the Slack markup, when not just the text escaped

    @property
    def created_at(self) -> datetime:
        return START + timedelta(minutes=self.minutes)


@dataclass(frozen=True)
class ScenarioThread:
    key: str
    title: str
    posts: tuple[ScenarioPost, ...]
    tags: tuple[str, ...] = field(default=())


SCENARIO = (
    ScenarioThread(
        "bn",
        "Batch norm at test time",
        (
            ScenarioPost(
                ALICE,
                "Why does batch normalization use running averages at test time instead of "
                "the batch statistics? model.eval() changed my accuracy a lot. You can reach "
                "me at student@nyu.edu.\n\nThanks,\nAlice Smith",
                0,
                votes=3,
            ),
            ScenarioPost(
                DAN,
                "At test time a batch can hold a single example, so its statistics are "
                "noisy. The running mean and variance estimated during training are used "
                "instead.",
                30,
                votes=2,
            ),
            ScenarioPost(ALICE, "That makes sense, thank you!", 25 * 60, reply_to=1),
        ),
        tags=("batchnorm",),
    ),
    ScenarioThread(
        "bn-ja",
        "バッチ正規化と学習の安定性",
        (
            ScenarioPost(
                YAMADA,
                "バッチ正規化はなぜ学習を安定させるのですか？\n"
                "学習率を大きくしても発散しない理由が知りたいです。電話: 090-1234-5678\n\n"
                "よろしくお願いします。\n山田",
                120,
                votes=1,
            ),
            ScenarioPost(
                CAROL,
                "各層の入力の分布を正規化するので勾配の大きさが揃い、"
                "大きな学習率でも更新が安定します。",
                180,
                votes=1,
            ),
        ),
    ),
    ScenarioThread(
        "warmup",
        "Learning-rate warmup with Adam",
        (
            ScenarioPost(
                BOB,
                "Is learning-rate warmup needed with Adam, or only with SGD? My student id is "
                "N12345678 and you can call me at (212) 555-0199.\n--\nBob",
                24 * 60 + 60,
            ),
            ScenarioPost(
                ALICE,
                "I think warmup helps Adam too: its second-moment estimate is unreliable in "
                "the first steps.",
                24 * 60 + 90,
                votes=1,
            ),
        ),
    ),
    ScenarioThread(
        "ja-overfit",
        "過学習の対策",
        (
            ScenarioPost(
                YAMADA,
                "過学習を防ぐにはドロップアウトと重み減衰のどちらが効果的ですか？"
                "資料は yamada.taro@example.ac.jp に送ってください。",
                24 * 60 + 120,
            ),
        ),
    ),
    ScenarioThread(
        "dropout",
        "Dropout at inference",
        (
            ScenarioPost(
                ALICE,
                "@dan is dropout turned off at inference? I am at +1 212-555-0147 during "
                "office hours.",
                48 * 60,
                html='<p><a class="mention" href="/u/dan">@dan</a> is dropout turned off at '
                "inference? I am at +1 212-555-0147 during office hours.</p>",
                slack="<@U02DAN> is dropout turned off at inference? I am at +1 212-555-0147 "
                "during office hours.",
            ),
            ScenarioPost(
                CAROL,
                "Yes: model.eval() turns dropout off & nothing is rescaled at test time.\n\n"
                f"See the Dropout docs ({_DROPOUT_DOCS}) and https://d2l.ai.",
                48 * 60 + 10,
                votes=4,
                html="<p>Yes: <code>model.eval()</code> turns dropout off &amp; nothing is "
                "rescaled at test time.</p>\n<p>See "
                f'<a href="{_DROPOUT_DOCS}">the Dropout docs</a> and '
                '<a href="https://d2l.ai">https://d2l.ai</a>.</p>',
                slack="Yes: model.eval() turns dropout off &amp; nothing is rescaled at test "
                f"time.\n\nSee <{_DROPOUT_DOCS}|the Dropout docs> and <https://d2l.ai>.",
            ),
            ScenarioPost(BOB, "Does the same hold for Keras?", 48 * 60 + 20, reply_to=1),
            ScenarioPost(
                DAN, "Yes, Keras uses the training flag the same way.", 48 * 60 + 30, reply_to=2
            ),
        ),
        tags=("dropout", "regularization"),
    ),
)


def scenario_thread(key: str) -> ScenarioThread:
    return next(t for t in SCENARIO if t.key == key)


def _html(post: ScenarioPost) -> str:
    if post.html is not None:
        return post.html
    paragraphs = post.text.split("\n\n")
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(folder).as_posix())
    return archive


# --- Slack -----------------------------------------------------------------------------

SLACK_CHANNELS = {"bn": "ml-qa", "bn-ja": "ml-qa", "warmup": "ml-qa", "ja-overfit": "ml-qa"}
SLACK_BOT = "U09BOT"


def slack_ts(moment: datetime, seq: int = 0) -> str:
    return f"{int(moment.timestamp())}.{seq:06d}"


def _slack_text(post: ScenarioPost) -> str:
    if post.slack is not None:
        return post.slack
    return post.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _reactions(votes: int) -> list[dict[str, Any]]:
    if not votes:
        return []
    first = (votes + 1) // 2
    out = [{"name": "+1", "count": first, "users": [p.uid for p in PEOPLE[:first]]}]
    if votes - first:
        out.append({"name": "eyes", "count": votes - first, "users": [BOB.uid]})
    return out


def _slack_messages(thread: ScenarioThread) -> list[dict[str, Any]]:
    """The thread's messages; the unanswered one is a plain message (no thread_ts)."""
    parent_ts = slack_ts(thread.posts[0].created_at)
    messages = []
    for index, post in enumerate(thread.posts):
        message: dict[str, Any] = {
            "type": "message",
            "user": post.author.uid,
            "text": _slack_text(post),
            "ts": slack_ts(post.created_at),
        }
        if len(thread.posts) > 1:
            message["thread_ts"] = parent_ts
        if index == 0 and len(thread.posts) > 1:
            message["reply_count"] = len(thread.posts) - 1
        if index == 2 and thread.key == "dropout":
            message["subtype"] = "thread_broadcast"  # "also send to #general"
        if post.votes:
            message["reactions"] = _reactions(post.votes)
        messages.append(message)
    return messages


def _slack_noise(day: datetime) -> list[dict[str, Any]]:
    """What a real channel has besides questions: joins, bots, a deleted thread, empties."""
    ts = lambda minutes, seq=0: slack_ts(day + timedelta(minutes=minutes), seq)  # noqa: E731
    return [
        {"type": "message", "subtype": "channel_join", "user": BOB.uid, "ts": ts(1, 1),
         "text": "<@U04BOB> has joined the channel"},
        {"type": "message", "subtype": "bot_message", "bot_id": "B1", "ts": ts(2, 1),
         "text": "Reminder: homework 2 is due on Friday."},
        {"type": "message", "user": SLACK_BOT, "ts": ts(3, 1), "text": "I am a bot user."},
        {"type": "message", "user": ALICE.uid, "ts": ts(4, 1), "text": "",
         "files": [{"name": "plot.png"}]},
        # A deleted parent whose reply survives: the thread has no opening post.
        {"type": "message", "subtype": "tombstone", "user": "USLACKBOT", "ts": ts(5, 1),
         "thread_ts": ts(5, 1), "reply_count": 1, "text": "This message was deleted."},
        {"type": "message", "user": DAN.uid, "ts": ts(6, 1), "thread_ts": ts(5, 1),
         "text": "Answered in office hours."},
    ]  # fmt: skip


def write_slack(directory: Path, as_zip: bool = False) -> Path:
    """A Slack export folder (or .zip of it) under ``directory``; returns its path."""
    root = directory / "slack-export"
    users = [
        {
            "id": p.uid,
            "name": p.username,
            "real_name": p.real_name,
            "is_admin": p.role == "instructor",
            "is_bot": False,
            "profile": {"real_name": p.real_name, "display_name": p.username, "email": p.email},
        }
        for p in PEOPLE
    ]
    users.append({"id": SLACK_BOT, "name": "helper-bot", "is_bot": True, "profile": {}})
    _write_json(root / "users.json", users)
    channels = [
        {"id": "C01", "name": "ml-qa"},
        {"id": "C02", "name": "general"},
        {"id": "C03", "name": "random"},  # a channel without any day file
    ]
    _write_json(root / "channels.json", channels)

    days: dict[Path, list[dict[str, Any]]] = {}
    for thread in SCENARIO:
        channel = SLACK_CHANNELS.get(thread.key, "general")
        for message in _slack_messages(thread):
            day = datetime.fromtimestamp(float(message["ts"]), UTC).date().isoformat()
            days.setdefault(root / channel / f"{day}.json", []).append(message)
    days[root / "ml-qa" / "2024-03-05.json"].extend(_slack_noise(START + timedelta(days=1)))
    for path, messages in days.items():
        _write_json(path, sorted(messages, key=lambda m: float(m["ts"])))
    (root / "ml-qa" / "notes.txt").write_text("not a day file", encoding="utf-8")
    if as_zip:
        return zip_folder(root, directory / "slack-export.zip")
    return root


def write_big_slack(directory: Path, threads: int = 1000, replies: int = 4) -> Path:
    """A one-channel Slack export of threads × (1 + replies) posts over ten days, the last
    reply of every thread in the next day's file."""
    root = directory / "big-slack"
    _write_json(root / "users.json", [{"id": "U1", "name": "student"}, {"id": "U2", "name": "ta"}])
    _write_json(root / "channels.json", [{"id": "C1", "name": "qa"}])
    days: dict[str, list[dict[str, Any]]] = {}
    per_day = max(1, threads // 10)
    for n in range(threads):
        start = START + timedelta(days=n // per_day, minutes=n % per_day)
        parent = slack_ts(start, n)
        for r in range(replies + 1):
            moment = start + timedelta(days=1) if r == replies else start + timedelta(seconds=r)
            message: dict[str, Any] = {
                "type": "message",
                "user": "U2" if r else "U1",
                "ts": slack_ts(moment, n),
                "thread_ts": parent,
                "text": f"Question {n} message {r}",
            }
            if r == 0:
                message["reply_count"] = replies
            days.setdefault(moment.date().isoformat(), []).append(message)
    for day, messages in days.items():
        _write_json(root / "qa" / f"{day}.json", messages)
    return root


# --- Discourse -------------------------------------------------------------------------

_DISCOURSE_USERS = {p.uid: n for n, p in enumerate(PEOPLE, 1)}


def _discourse_post(
    topic_id: int, number: int, post: ScenarioPost, reply_to: int | None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": topic_id * 100 + number,
        "post_number": number,
        "post_type": 1,
        "username": post.author.username,
        "name": post.author.real_name,
        "user_id": _DISCOURSE_USERS[post.author.uid],
        "created_at": post.created_at.isoformat().replace("+00:00", ".000Z"),
        "cooked": _html(post),
        "reply_to_post_number": reply_to,
        "staff": post.author.is_staff,
        "moderator": post.author.role == "ta",
        "admin": post.author.role == "instructor",
        "like_count": post.votes,
        "user_deleted": False,
        "deleted_at": None,
    }
    return record


def discourse_topics() -> list[dict[str, Any]]:
    topics = []
    for offset, thread in enumerate(SCENARIO):
        topic_id = 101 + offset
        posts = []
        for number, post in enumerate(thread.posts, 1):
            reply_to = None if post.reply_to is None else post.reply_to + 1
            posts.append(_discourse_post(topic_id, number, post, reply_to))
        topics.append(
            {
                "id": topic_id,
                "title": thread.title,
                "fancy_title": html.escape(thread.title),
                "slug": thread.key,
                "created_at": posts[0]["created_at"],
                "tags": [thread.tags[0], *({"name": t} for t in thread.tags[1:])]
                if thread.tags
                else [],
                "post_stream": {"posts": posts, "stream": [p["id"] for p in posts]},
            }
        )
    bn = topics[0]["post_stream"]["posts"]
    # Likes from actions_summary when like_count is absent; raw wins over cooked.
    answer = bn[1]
    answer["actions_summary"] = [{"id": 2, "count": answer.pop("like_count")}, {"id": 3}]
    answer["raw"] = scenario_thread("bn").posts[1].text
    answer["cooked"] = "<p>(this cooked text is not used: raw wins)</p>"
    answer["accepted_answer"] = True
    bn.insert(
        2,
        {
            **bn[1],
            "id": 10150,
            "post_number": 50,
            "post_type": 3,
            "raw": "",
            "cooked": "<p>closed this topic</p>",
            "accepted_answer": False,
        },
    )
    bn.append(
        {
            **bn[0],
            "id": 10160,
            "post_number": 60,
            "user_deleted": True,
            "cooked": "<p>(post deleted by author)</p>",
            "like_count": 0,
        }
    )
    # A topic whose first post is gone: nothing opens it.
    orphan = _discourse_post(106, 2, scenario_thread("warmup").posts[1], 1)
    topics.append({"id": 106, "title": "Gone", "slug": "gone", "post_stream": {"posts": [orphan]}})
    return topics


def write_discourse(directory: Path, layout: str = "dir") -> Path:
    """``layout``: "dir" (a file per topic), "list" (one file, a list), "file" (one topic)."""
    topics = discourse_topics()
    if layout == "dir":
        for topic in topics:
            _write_json(directory / "discourse" / f"{topic['id']}.json", topic)
        return directory / "discourse"
    path = directory / ("discourse-topics.json" if layout == "list" else "discourse-topic.json")
    _write_json(path, topics if layout == "list" else topics[0])
    return path


# --- Piazza ----------------------------------------------------------------------------


def _piazza_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _piazza_answer(kind: str, cid: str, post: ScenarioPost) -> dict[str, Any]:
    return {
        "id": cid,
        "type": kind,
        "created": _piazza_time(post.created_at),
        "history": [
            {
                "content": _html(post),
                "uid": post.author.uid,
                "created": _piazza_time(post.created_at),
            }
        ],
        "tag_endorse": [{"id": p.uid} for p in PEOPLE[: post.votes]],
        "children": [],
    }


def _piazza_note(kind: str, cid: str, post: ScenarioPost) -> dict[str, Any]:
    return {
        "id": cid,
        "type": kind,
        "uid": post.author.uid,
        "subject": _html(post),
        "created": _piazza_time(post.created_at),
        "children": [],
    }


def piazza_posts() -> list[dict[str, Any]]:
    posts = []
    for nr, thread in enumerate(SCENARIO, 1):
        question, *replies = thread.posts
        cid = f"p{nr:03d}"
        record: dict[str, Any] = {
            "id": cid,
            "nr": nr,
            "type": "question",
            "status": "active",
            "created": _piazza_time(question.created_at),
            "folders": list(thread.tags),
            "anon": "no",
            "tag_good": [{"id": p.uid} for p in PEOPLE[: question.votes]],
            "history": [
                {
                    "subject": html.escape(thread.title),
                    "content": _html(question),
                    "uid": question.author.uid,
                    "created": _piazza_time(question.created_at),
                }
            ],
            "children": [],
        }
        followups: dict[int, dict[str, Any]] = {}
        for index, post in enumerate(replies, 1):
            child_id = f"{cid}c{index}"
            if post.reply_to is None:  # an answer to the question
                kind = "i_answer" if post.author.is_staff else "s_answer"
                record["children"].append(_piazza_answer(kind, child_id, post))
            elif post.reply_to in followups:  # an answer to a follow-up: feedback
                followups[post.reply_to]["children"].append(
                    _piazza_note("feedback", child_id, post)
                )
            else:  # a follow-up discussion
                followups[index] = _piazza_note("followup", child_id, post)
                record["children"].append(followups[index])
        posts.append(record)
    _piazza_extras(posts)
    return posts


def _piazza_extras(posts: list[dict[str, Any]]) -> None:
    bn, bn_ja, warmup, overfit, _dropout = posts
    # An edited question: the newest version (first) is the text, the oldest the author.
    first = dict(bn_ja["history"][0])
    bn_ja["history"].append(
        {**first, "content": "<p>バッチ正規化は何ですか</p>", "created": "2024-03-04T11:00:00Z"}
    )
    bn_ja["history"][0] = {**first, "uid": CAROL.uid, "created": "2024-03-04T11:05:00Z"}
    bn_ja["created"] = "2024-03-04T11:00:00Z"
    # An endorsed student answer; an empty follow-up; a duplicate marker.
    warmup["children"][0]["tag_endorse"] = [{"id": CAROL.uid}]
    bn["children"].append(
        {
            "id": "p001c9",
            "type": "followup",
            "uid": BOB.uid,
            "subject": "",
            "created": "2024-03-04T12:00:00Z",
            "children": [],
        }
    )
    bn["children"].append({"id": "p001c8", "type": "dupe", "created": "2024-03-04T12:00:00Z"})
    # Fully anonymous: no uid anywhere.
    overfit["anon"] = "full"
    for version in overfit["history"]:
        del version["uid"]
    # A private post: never read.
    private = _piazza_answer("question", "p099", scenario_thread("warmup").posts[0])
    private["history"][0].update(subject="Private", content="<p>My grade, N12345678?</p>")
    private.update(nr=99, status="private")
    posts.append(private)


def piazza_users() -> list[dict[str, Any]]:
    return [
        {"user_id": p.uid, "name": p.real_name, "email": p.email, "role": p.role} for p in PEOPLE
    ]


def write_piazza(directory: Path, layout: str = "dir") -> Path:
    """``layout``: "dir" / "zip" (class_content.json + users.json), "file" (a bare list),
    "object" (one file: {"posts": [...], "nid": ...}, the network id after the list)."""
    posts = piazza_posts()
    if layout == "file":
        _write_json(directory / "piazza.json", posts)
        return directory / "piazza.json"
    if layout == "object":
        _write_json(directory / "piazza-object.json", {"posts": posts, "nid": PIAZZA_NID})
        return directory / "piazza-object.json"
    root = directory / "piazza"
    _write_json(root / "class_content.json", posts)
    _write_json(root / "users.json", piazza_users())
    if layout == "zip":
        return zip_folder(root, directory / "piazza.zip")
    return root


# --- jsonl / csv -----------------------------------------------------------------------

JSONL_TITLES = {t.key: t.title for t in SCENARIO}
JSONL_URL = "https://forum.example.edu/t/bn"
_ROLE_NAMES = {"instructor": "instructor", "ta": "TA", "student": ""}  # any case counts
_JST = timezone(timedelta(hours=9))


def _jsonl_time(post: ScenarioPost, n: int) -> str | int:
    """Three spellings of a time: ISO with Z, ISO with +09:00, unix seconds."""
    if n % 3 == 0:
        return post.created_at.isoformat().replace("+00:00", "Z")
    if n % 3 == 1:
        return post.created_at.astimezone(_JST).isoformat()
    return int(post.created_at.timestamp())


def jsonl_rows() -> list[dict[str, Any]]:
    """The scenario as rows, in shuffled order, with the opening's title and votes."""
    rows = []
    n = 0
    for thread in SCENARIO:
        for index, post in enumerate(thread.posts):
            parent = None if index == 0 else (post.reply_to or 0)
            rows.append(
                {
                    "thread_id": thread.key,
                    "post_id": f"{thread.key}-{index}",
                    "parent_id": "" if parent is None else f"{thread.key}-{parent}",
                    "author": post.author.username,
                    "author_role": _ROLE_NAMES[post.author.role],
                    "created_at": _jsonl_time(post, n),
                    "body": post.text,
                    "title": thread.title if index == 0 else "",
                    "votes": post.votes,
                    "url": JSONL_URL if thread.key == "bn" and index == 0 else "",
                }
            )
            n += 1
    random.Random(7).shuffle(rows)
    return rows


def _jsonl_bad_rows() -> list[dict[str, Any]]:
    base = {"parent_id": "", "author": "bob", "author_role": "", "title": "", "votes": 0, "url": ""}
    return [
        {**base, "thread_id": "", "post_id": "x1", "created_at": 1709542800, "body": "no thread"},
        {**base, "thread_id": "x", "post_id": "x2", "created_at": "yesterday", "body": "bad time"},
        {**base, "thread_id": "x", "post_id": "x3", "created_at": 1709542800, "body": "   "},
        # Only a reply, its opening gone: the thread is dropped.
        {**base, "thread_id": "orphan", "post_id": "o2", "parent_id": "o1",
         "created_at": 1709542800, "body": "A reply to nothing"},
    ]  # fmt: skip


JSONL_SKIPPED = 3  # the malformed line + no thread id + bad time (CSV: short row for the first)
JSONL_DROPPED = 2  # the blank body + the orphan reply


def write_jsonl(directory: Path, kind: str = "jsonl") -> Path:
    """The scenario as JSON Lines (``kind`` "jsonl") or CSV ("csv"), with bad rows."""
    rows = jsonl_rows()
    bad = _jsonl_bad_rows()
    rows[3:3] = bad[:2]
    rows.extend(bad[2:])
    if kind == "csv":
        path = directory / "posts.csv"
        with path.open("w", encoding="utf-8", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
            file.write("broken,row\r\n")  # fewer fields than the header
        return path
    path = directory / "posts.jsonl"
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    lines.insert(5, '{"thread_id": "bn", "post_id": ')  # a malformed line
    lines.insert(6, "")  # blank lines are not rows
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_big_jsonl(directory: Path, threads: int = 1000, replies: int = 4) -> Path:
    """threads × (1 + replies) rows, each thread's rows spread over the file."""
    path = directory / "big.jsonl"
    with path.open("w", encoding="utf-8") as file:
        for r in range(replies, -1, -1):  # replies first: order must come from the times
            for n in range(threads):
                row = {
                    "thread_id": f"t{n}",
                    "post_id": f"t{n}-{r}",
                    "parent_id": f"t{n}-0" if r else "",
                    "author": "ta" if r else f"student{n}",
                    "author_role": "ta" if r else "student",
                    "created_at": int(START.timestamp()) + n * 60 + r,
                    "body": f"Question {n} message {r}",
                }
                file.write(json.dumps(row) + "\n")
    return path
