"""Forum export importers on real generated files: Slack (folder and zip), Discourse,
Piazza, JSON Lines / CSV. Every format tells the story of ``forum_exports.SCENARIO``."""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from knowledge.forum.importers import ExportError, ImportStats, read_export
from knowledge.forum.importers.common import parse_time
from knowledge.forum.importers.jsonstream import JsonStream
from knowledge.forum.importers.markup import html_to_text, slack_to_text
from knowledge.forum.model import Thread
from tests import forum_exports as fx


def read(
    path: Path, fmt: str, staff: Iterable[str] = (), stats: ImportStats | None = None
) -> dict[str, Thread]:
    threads = list(read_export(path, fmt, staff=staff, stats=stats))
    by_id = {t.thread_id: t for t in threads}
    assert len(by_id) == len(threads), "thread ids are unique"
    return by_id


def thread_id(fmt: str, index: int) -> str:
    """The id each format gives the scenario's thread number ``index``."""
    scenario = fx.SCENARIO[index]
    if fmt == "slack":
        channel = fx.SLACK_CHANNELS.get(scenario.key, "general")
        return f"{channel}/{fx.slack_ts(scenario.posts[0].created_at)}"
    return {"discourse": str(101 + index), "piazza": f"p{index + 1:03d}", "jsonl": scenario.key}[
        fmt
    ]


def author(fmt: str, person: fx.Person) -> str:
    return person.uid if fmt in ("slack", "piazza") else person.username


def assert_scenario(threads: dict[str, Thread], fmt: str, staff: set[str]) -> None:
    """Each scenario thread is there with its posts in time order: bodies, authors, roles
    (``staff``: usernames that should count as staff), times, votes."""
    assert set(threads) == {thread_id(fmt, i) for i in range(len(fx.SCENARIO))}
    for index, scenario in enumerate(fx.SCENARIO):
        thread = threads[thread_id(fmt, index)]
        assert thread.forum == fmt
        assert [p.body for p in thread.posts] == [p.text for p in scenario.posts]
        assert [p.created_at for p in thread.posts] == [p.created_at for p in scenario.posts]
        assert [p.votes for p in thread.posts] == [p.votes for p in scenario.posts]
        assert [p.role for p in thread.posts] == [
            "staff" if p.author.username in staff else "student" for p in scenario.posts
        ]
        anonymous = fmt == "piazza" and scenario.key == "ja-overfit"
        assert [p.author for p in thread.posts] == [
            "anonymous" if anonymous else author(fmt, p.author) for p in scenario.posts
        ]
        assert thread.posts[0].parent_id is None
        assert all(p.created_at and p.created_at.tzinfo == UTC for p in thread.posts)


# --- Slack -----------------------------------------------------------------------------


def test_slack_folder_gives_the_scenario_threads(tmp_path: Path) -> None:
    stats = ImportStats()
    threads = read(fx.write_slack(tmp_path), "slack", staff=frozenset({"Dan Kim"}), stats=stats)
    assert_scenario(threads, "slack", staff={"carol", "dan"})
    bn = threads[thread_id("slack", 0)]
    # The last reply sits in the next day's file and still joins its thread.
    assert bn.posts[-1].created_at == fx.START + timedelta(hours=25)
    assert {p.parent_id for p in bn.posts[1:]} == {bn.posts[0].post_id} == {bn.thread_id}
    assert bn.title == "" and bn.tags == ["ml-qa"] and bn.url is None
    assert (stats.files, stats.threads, stats.posts) == (5, 5, 12)
    # channel_join, bot_message, a bot user, an empty message, a tombstone and the reply
    # under it (its thread has no opening post).
    assert (stats.dropped_messages, stats.dropped_threads) == (6, 1)


def test_slack_markup_is_reduced_to_text() -> None:
    names = {"U1": "dan"}.get
    text = (
        "<@U1> see <https://x.org/a?b=1&amp;c=2|the docs> and <https://y.org>, "
        "<mailto:a@b.edu|a@b.edu>, <#C1|general>, <!here>, <!subteam^S1|@tas>: "
        "1 &lt; 2 &amp;&amp; 3 &gt; 2; &amp;copy; <@U9>"
    )
    assert slack_to_text(text, lambda uid: names(uid) or uid) == (
        "@dan see the docs (https://x.org/a?b=1&c=2) and https://y.org, a@b.edu, #general, "
        "@here, @tas: 1 < 2 && 3 > 2; &copy; @U9"
    )


def test_slack_zip_reads_like_the_folder(tmp_path: Path) -> None:
    (tmp_path / "zip").mkdir()
    folder = read(fx.write_slack(tmp_path), "slack", staff={"dan"})
    archive = read(fx.write_slack(tmp_path / "zip", as_zip=True), "slack", staff={"dan"})
    assert archive == folder


def test_slack_zip_with_a_top_folder(tmp_path: Path) -> None:
    folder = fx.write_slack(tmp_path)
    archive = tmp_path / "nested.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(folder.rglob("*.json")):
            zf.write(file, "export/" + file.relative_to(folder).as_posix())
    assert read(archive, "slack") == read(folder, "slack")


@pytest.mark.parametrize(
    ("staff", "dan_is_staff"),
    [
        (frozenset(), False),  # only Slack admins count: Carol
        (frozenset({"dan"}), True),  # user name
        (frozenset({"DAN KIM"}), True),  # real name, any case
        (frozenset({"dan.kim@NYU.edu"}), True),  # email, any case
        (frozenset({"U02DAN"}), True),  # user id
        (frozenset({"bob"}), False),
    ],
)
def test_slack_roles_from_admins_and_staff_names(
    tmp_path: Path, staff: frozenset[str], dan_is_staff: bool
) -> None:
    posts = [
        p for t in read(fx.write_slack(tmp_path), "slack", staff=staff).values() for p in t.posts
    ]
    roles = {(p.author, p.role) for p in posts}
    assert ("U01CAROL", "staff") in roles
    assert ("U02DAN", "staff" if dan_is_staff else "student") in roles
    assert ("U04BOB", "staff" if "bob" in staff else "student") in roles


def test_slack_malformed_exports_name_the_file(tmp_path: Path) -> None:
    folder = fx.write_slack(tmp_path)
    day = folder / "ml-qa" / "2024-03-05.json"
    day.write_text('[{"type": "message", "ts": "1"', encoding="utf-8")
    with pytest.raises(ExportError, match=r"2024-03-05\.json: malformed JSON at line 1"):
        list(read_export(folder, "slack"))
    (folder / "channels.json").write_text('{"general": 1}', encoding="utf-8")
    with pytest.raises(ExportError, match=r"channels\.json: expected a JSON list"):
        list(read_export(folder, "slack"))
    (folder / "users.json").unlink()
    with pytest.raises(ExportError, match=r"users\.json is missing: not a Slack export"):
        list(read_export(folder, "slack"))


def test_slack_zip_without_users_and_a_plain_file(tmp_path: Path) -> None:
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("notes/readme.txt", "hello")
    with pytest.raises(ExportError, match=r"other\.zip:users\.json is missing"):
        list(read_export(archive, "slack"))
    with pytest.raises(ExportError, match="not a Slack export: expected a folder or a .zip"):
        list(read_export(fx.write_discourse(tmp_path, "file"), "slack"))


def test_big_slack_export(tmp_path: Path) -> None:
    stats = ImportStats()
    threads = read(fx.write_big_slack(tmp_path, threads=1000, replies=4), "slack", stats=stats)
    assert (len(threads), stats.posts, stats.files) == (1000, 5000, 2 + 11)
    for thread in threads.values():
        assert [p.body.rsplit(" ", 1)[-1] for p in thread.posts] == ["0", "1", "2", "3", "4"]


# --- Discourse -------------------------------------------------------------------------


def test_discourse_folder_gives_the_scenario_threads(tmp_path: Path) -> None:
    stats = ImportStats()
    threads = read(fx.write_discourse(tmp_path), "discourse", stats=stats)
    # Carol is an admin, Dan a moderator: the flags say so, no staff names needed.
    assert_scenario(threads, "discourse", staff={"carol", "dan"})
    bn, dropout = threads["101"], threads["105"]
    assert (bn.title, bn.url, bn.tags) == ("Batch norm at test time", "/t/bn/101", ["batchnorm"])
    assert dropout.tags == ["dropout", "regularization"]  # names from str and {name}
    assert [(p.post_id, p.parent_id) for p in dropout.posts] == [
        ("10501", None),
        ("10502", None),
        ("10503", "10502"),
        ("10504", "10503"),
    ]
    assert bn.posts[2].parent_id == "10102"
    assert [p.endorsed for p in bn.posts] == [False, True, False]  # the accepted answer
    # A small action, a post its author deleted, and topic 106 without its first post.
    assert (stats.files, stats.dropped_messages, stats.dropped_threads) == (6, 3, 1)


def test_discourse_list_and_single_topic_files(tmp_path: Path) -> None:
    folder = read(fx.write_discourse(tmp_path, "dir"), "discourse")
    assert read(fx.write_discourse(tmp_path, "list"), "discourse") == folder
    assert read(fx.write_discourse(tmp_path, "file"), "discourse") == {"101": folder["101"]}


def test_discourse_base_url_and_small_topic(tmp_path: Path) -> None:
    topic = {
        "id": 7,
        "fancy_title": "Why &ldquo;ReLU&rdquo;?",
        "base_url": "https://forum.example.edu/",
        "post_stream": {
            "posts": [
                {"id": 70, "post_number": 1, "username": "eve", "cooked": "<p>Why?</p>",
                 "created_at": "2024-03-04T18:00:00+09:00",
                 "actions_summary": [{"id": 2, "count": 5}]},
                {"id": 71, "post_number": 2, "username": "ta1", "cooked": "<p>Because.</p>",
                 "created_at": "2024-03-04T09:05:00Z", "reply_to_post_number": 1},
            ]
        },
    }  # fmt: skip
    path = tmp_path / "7.json"
    path.write_text(json.dumps(topic), encoding="utf-8")
    thread = read(path, "discourse", staff={"TA1"})["7"]
    assert (thread.title, thread.url) == ("Why \u201cReLU\u201d?", "https://forum.example.edu/t/7")
    assert [(p.role, p.votes, p.parent_id) for p in thread.posts] == [
        ("student", 5, None),
        ("staff", 0, "70"),
    ]
    assert thread.posts[0].created_at == datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One &amp; two</p><p>Three</p>", "One & two\n\nThree"),
        ('<p>See <a href="https://x.org">the docs</a>.</p>', "See the docs (https://x.org)."),
        ('<a href="https://x.org">https://x.org</a>', "https://x.org"),
        ('<a class="mention" href="/u/dan">@dan</a> hi', "@dan hi"),
        ("<p>Use <code>x  =  1</code></p>", "Use x = 1"),
        (
            "<pre><code>def f():\n    return 1\n</code></pre><p>then</p>",
            "def f():\n    return 1\n\nthen",
        ),
        ("<ul><li>a</li><li>b</li></ul>", "- a\n- b"),
        ("line<br>next", "line\nnext"),
        ("<script>alert(1)</script>shown", "shown"),
        ("<p>全角\u3000スペース</p>", "全角\u3000スペース"),
        ("plain text", "plain text"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_discourse_malformed_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": 1,\n "post_stream": {"posts": [}\n}', encoding="utf-8")
    with pytest.raises(ExportError, match=r"bad\.json: malformed JSON at line 2"):
        list(read_export(bad, "discourse"))
    bad.write_text("", encoding="utf-8")
    with pytest.raises(ExportError, match=r"bad\.json: not a Discourse topic: the file is empty"):
        list(read_export(bad, "discourse"))
    bad.write_text('{"topic_list": {"topics": []}}', encoding="utf-8")
    with pytest.raises(ExportError, match=r"bad\.json: not a Discourse topic.*post_stream"):
        list(read_export(bad, "discourse"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="no .json topic files"):
        list(read_export(tmp_path / "empty", "discourse"))


# --- Piazza ----------------------------------------------------------------------------


def test_piazza_folder_gives_the_scenario_threads(tmp_path: Path) -> None:
    stats = ImportStats()
    threads = read(fx.write_piazza(tmp_path), "piazza", stats=stats)
    # users.json says who is an instructor or a TA: Dan's feedback reply is staff too.
    assert_scenario(threads, "piazza", staff={"carol", "dan"})
    bn, bn_ja, warmup, overfit, dropout = (threads[f"p00{n}"] for n in range(1, 6))
    assert (bn.title, bn.tags, bn.url) == ("Batch norm at test time", ["batchnorm"], None)
    assert bn_ja.title == "バッチ正規化と学習の安定性"
    # The newest version is the text; the author is who wrote the first version.
    assert bn_ja.posts[0].author == fx.YAMADA.uid
    assert "何ですか" not in bn_ja.posts[0].body
    # Follow-ups answer the question, feedback answers its follow-up.
    assert [(p.post_id, p.parent_id) for p in dropout.posts] == [
        ("p005", None),
        ("p005c1", "p005"),
        ("p005c2", "p005"),
        ("p005c3", "p005c2"),
    ]
    assert [p.endorsed for p in warmup.posts] == [False, True]  # endorsed student answer
    assert overfit.posts[0].author == "anonymous"
    # The private post; an empty follow-up and a duplicate marker.
    assert (stats.dropped_threads, stats.dropped_messages, stats.files) == (1, 2, 2)
    assert "p099" not in threads


def test_piazza_zip_object_and_bare_list(tmp_path: Path) -> None:
    folder = read(fx.write_piazza(tmp_path, "dir"), "piazza")
    assert read(fx.write_piazza(tmp_path, "zip"), "piazza") == folder
    # The object form names the network (after the list, in this file): threads get URLs.
    with_urls = read(fx.write_piazza(tmp_path, "object"), "piazza", staff={"U02DAN"})
    assert with_urls["p002"].url == f"https://piazza.com/class/{fx.PIAZZA_NID}?cid=2"
    for thread in with_urls.values():
        thread.url = None
    assert with_urls == folder
    # A bare list has no users.json: i_answers are staff, Dan's feedback needs his name.
    bare = read(fx.write_piazza(tmp_path, "file"), "piazza")
    assert [p.role for p in bare["p005"].posts] == ["student", "staff", "student", "student"]
    assert [p.role for p in bare["p001"].posts] == ["student", "staff", "student"]
    named = read(fx.write_piazza(tmp_path, "file"), "piazza", staff={"u02dan"})
    assert named == folder


def test_piazza_many_posts_stream_through_the_object_form(tmp_path: Path) -> None:
    post = fx.piazza_posts()[0]
    posts = [{**post, "id": f"q{n}", "nr": n} for n in range(1500)]  # ~2.5 MB
    path = tmp_path / "class.json"
    path.write_text(json.dumps({"posts": posts, "nid": "abc"}), encoding="utf-8")
    threads = list(read_export(path, "piazza"))
    assert [t.thread_id for t in threads] == [f"q{n}" for n in range(1500)]
    assert threads[-1].url == "https://piazza.com/class/abc?cid=1499"


def test_piazza_malformed_exports(tmp_path: Path) -> None:
    bad = tmp_path / "class.json"
    bad.write_text('[{"id": "p1", "history": [}]', encoding="utf-8")
    with pytest.raises(ExportError, match=r"class\.json: malformed JSON at line 1"):
        list(read_export(bad, "piazza"))
    bad.write_text('{"name": "a course"}', encoding="utf-8")
    with pytest.raises(ExportError, match=r"class\.json: not a Piazza export: no list of posts"):
        list(read_export(bad, "piazza"))
    with pytest.raises(ExportError, match=r"class_content\.json is missing"):
        list(read_export(fx.write_slack(tmp_path), "piazza"))
    # Another format's JSON list.
    with pytest.raises(ExportError, match="is not a Piazza post"):
        list(read_export(fx.write_discourse(tmp_path, "list"), "piazza"))


# --- JSON Lines / CSV ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_jsonl_and_csv_rebuild_the_threads(tmp_path: Path, kind: str) -> None:
    stats = ImportStats()
    threads = read(fx.write_jsonl(tmp_path, kind), "jsonl", stats=stats)
    # author_role "instructor" and "TA" (any case) are staff.
    assert_scenario(threads, "jsonl", staff={"carol", "dan"})
    assert {k: t.title for k, t in threads.items()} == fx.JSONL_TITLES
    assert threads["bn"].url == fx.JSONL_URL and threads["warmup"].url is None
    assert [p.parent_id for p in threads["dropout"].posts] == [
        None,
        "dropout-0",
        "dropout-1",
        "dropout-2",
    ]
    assert stats.skipped_rows == fx.JSONL_SKIPPED
    assert (stats.dropped_messages, stats.dropped_threads) == (fx.JSONL_DROPPED, 1)
    assert len(stats.problems) == fx.JSONL_SKIPPED
    assert any("yesterday" in p for p in stats.problems)


def test_jsonl_staff_names_add_to_roles(tmp_path: Path) -> None:
    threads = read(fx.write_jsonl(tmp_path), "jsonl", staff={"BOB"})
    assert [p.role for p in threads["warmup"].posts] == ["staff", "student"]


def test_jsonl_json_list_and_timestamps(tmp_path: Path) -> None:
    rows = [
        {"thread_id": 1, "post_id": 2, "parent_id": 1, "author": "t", "author_role": "Teacher",
         "created_at": "1709542860", "body": "A"},
        {"thread_id": 1, "post_id": 1, "parent_id": None, "author": "s", "author_role": None,
         "created_at": "2024-03-04T18:00:00+09:00", "body": "Q", "votes": "2"},
        {"thread_id": 1, "post_id": 3, "parent_id": 1, "author": "s", "author_role": "student",
         "created_at": "2024-03-04T09:01:00", "body": "Thanks"},  # no offset: UTC
    ]  # fmt: skip
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    thread = read(path, "jsonl")["1"]
    assert [(p.post_id, p.role, p.votes) for p in thread.posts] == [
        ("1", "student", 2),
        ("2", "staff", 0),
        ("3", "student", 0),
    ]
    moment = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
    later = moment + timedelta(minutes=1)  # a tie: file order decides
    assert [p.created_at for p in thread.posts] == [moment, later, later]


def test_jsonl_errors(tmp_path: Path) -> None:
    csv_path = tmp_path / "posts.csv"
    csv_path.write_text("thread_id,post_id,author,created_at\nt,p,a,1\n", encoding="utf-8")
    with pytest.raises(ExportError, match=r"posts\.csv: the CSV header lacks the column\(s\) body"):
        list(read_export(csv_path, "jsonl"))
    csv_path.write_text("", encoding="utf-8")
    with pytest.raises(ExportError, match=r"posts\.csv: the file is empty"):
        list(read_export(csv_path, "jsonl"))
    lines = tmp_path / "posts.jsonl"
    lines.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ExportError, match=r"posts\.jsonl: the file has no rows"):
        list(read_export(lines, "jsonl"))
    lines.write_text('{"thread_id": "t"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ExportError, match=r"no usable row \(2 read.*missing post_id"):
        list(read_export(lines, "jsonl"))
    other = tmp_path / "posts.txt"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(ExportError, match=r"unknown file type '\.txt'"):
        list(read_export(other, "jsonl"))


def test_big_jsonl_export(tmp_path: Path) -> None:
    stats = ImportStats()
    threads = read(fx.write_big_jsonl(tmp_path, threads=1000, replies=4), "jsonl", stats=stats)
    assert (len(threads), stats.posts, stats.skipped_rows) == (1000, 5000, 0)
    for thread in threads.values():
        assert [p.post_id.rsplit("-", 1)[-1] for p in thread.posts] == ["0", "1", "2", "3", "4"]
        assert [p.role for p in thread.posts] == ["student"] + ["staff"] * 4


# --- every format ----------------------------------------------------------------------


def _write(tmp_path: Path, fmt: str) -> Path:
    """The export of ``fmt`` in its default layout."""
    if fmt == "slack":
        return fx.write_slack(tmp_path)
    if fmt == "discourse":
        return fx.write_discourse(tmp_path)
    if fmt == "piazza":
        return fx.write_piazza(tmp_path)
    return fx.write_jsonl(tmp_path)


@pytest.mark.parametrize("fmt", ["slack", "discourse", "piazza", "jsonl"])
def test_planted_personal_data_is_kept_for_the_scrubber(tmp_path: Path, fmt: str) -> None:
    bodies = "\n\n".join(p.body for t in read(_write(tmp_path, fmt), fmt).values() for p in t.posts)
    planted = (
        fx.PLANTED_EMAILS
        + fx.PLANTED_PHONES
        + fx.PLANTED_IDS
        + fx.PLANTED_NAMES
        + fx.PLANTED_MENTIONS
        + fx.PLANTED_SIGNATURES
    )
    assert [value for value in planted if value not in bodies] == []


@pytest.mark.parametrize(
    ("written", "fmt", "message"),
    [
        ("slack", "discourse", "not a Discourse topic"),
        ("slack", "piazza", "class_content.json is missing"),
        ("discourse", "slack", "users.json is missing"),
        ("piazza", "slack", "channels.json is missing: not a Slack export"),
        ("piazza", "jsonl", "expected a .jsonl, .ndjson, .json or .csv file, not a folder"),
        ("jsonl", "discourse", "not a Discourse topic"),
        ("jsonl", "piazza", "malformed JSON"),
    ],
)
def test_the_wrong_format_is_reported(tmp_path: Path, written: str, fmt: str, message: str) -> None:
    with pytest.raises(ExportError, match=message.replace(".", r"\.")):
        list(read_export(_write(tmp_path, written), fmt))


def test_unknown_format_and_missing_path_fail_at_once(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown export format 'moodle': expected one of slack"):
        read_export(tmp_path, "moodle")
    with pytest.raises(ExportError, match="no such file or folder"):
        read_export(tmp_path / "missing.zip", "slack")
    assert issubclass(ExportError, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-04T09:00:00Z", datetime(2024, 3, 4, 9, tzinfo=UTC)),
        ("2024-03-04T09:00:00.000Z", datetime(2024, 3, 4, 9, tzinfo=UTC)),
        ("2024-03-04T18:00:00+09:00", datetime(2024, 3, 4, 9, tzinfo=UTC)),
        ("2024-03-04 09:00:00", datetime(2024, 3, 4, 9, tzinfo=UTC)),
        (1709542800, datetime(2024, 3, 4, 9, tzinfo=UTC)),
        ("1709542800.5", datetime(2024, 3, 4, 9, 0, 0, 500000, tzinfo=UTC)),
        ("", None),
        (None, None),
    ],
)
def test_parse_time(value: object, expected: datetime | None) -> None:
    parsed = parse_time(value)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo == UTC


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", True, [1], 1e20])
def test_parse_time_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_time(value)


def test_json_stream_across_small_chunks() -> None:
    document = {"meta": {"a": [1, 2]}, "posts": [{"n": n, "s": "é" * n} for n in range(50)]}
    raw = json.dumps(document, ensure_ascii=False, indent=2).encode()
    stream = JsonStream(io.BytesIO(raw), "doc.json", chunk=5)
    seen = {}
    for key in stream.members():
        seen[key] = list(stream.items()) if key == "posts" else stream.value()
    stream.end()
    assert seen == document
    stream = JsonStream(io.BytesIO(b"[1, 23456, -7.5e3]  x"), "n.json", chunk=2)
    assert list(stream.items()) == [1, 23456, -7500.0]
    with pytest.raises(ExportError, match="unexpected text after the JSON value"):
        stream.end()


def _random_json(rnd: random.Random, depth: int = 0) -> object:
    pick = rnd.random()
    if depth > 3 or pick < 0.4:
        scalars = [rnd.randint(-(10**6), 10**6), rnd.random() * 1e5, -1.5e-7, True, None]
        return rnd.choice([*scalars, "x" * rnd.randint(0, 30), 'é"\\n', ""])
    if pick < 0.7:
        return [_random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 5))]
    return {f"k{i}": _random_json(rnd, depth + 1) for i in range(rnd.randint(0, 5))}


def test_json_stream_matches_json_loads_whatever_the_chunks() -> None:
    """Random lists, whole and with one character changed, in chunks of 1-9 characters:
    the stream gives what json.loads gives, or an ExportError where it fails."""
    rnd = random.Random(1)
    for _ in range(300):
        items = [_random_json(rnd) for _ in range(rnd.randint(0, 8))]
        text = json.dumps(items, indent=rnd.choice([None, 1]), ensure_ascii=rnd.random() < 0.5)
        at = rnd.randrange(len(text))
        for variant in (
            text,
            text[:at] + rnd.choice(["", "x", ",", "]", "{", '"']) + text[at + 1 :],
        ):
            expected: object = ExportError
            try:
                parsed = json.loads(variant)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                expected = parsed
            stream = JsonStream(io.BytesIO(variant.encode()), "r.json", chunk=rnd.randint(1, 9))
            got: object = ExportError
            try:
                got = list(stream.items())
                stream.end()
            except ExportError:
                got = ExportError
            assert got == expected, variant
