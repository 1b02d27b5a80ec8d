"""Forum mining end to end on real exports in every format: candidates, idempotence,
newer exports, personal data, the review (accept, merge, reject) and the API."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from knowledge.entry_store import find_entry
from knowledge.forum import mining, review
from knowledge.tables import AskLog, Candidate, MinedThread
from tests.api_fixtures import bearer, make_token
from tests.forum_exports import (
    PLANTED_EMAILS,
    PLANTED_IDS,
    PLANTED_NAMES,
    PLANTED_PHONES,
    write_discourse,
    write_jsonl,
    write_piazza,
    write_slack,
)
from tests.ta_support import csrf_token, post, ta_client

COURSE = "nyu-dl-f20"
STAFF = ("dan", "carol", "Dan Kim", "Carol Chen", "U01CAROL", "U02DAN")
WRITERS = {
    "slack": lambda d: write_slack(d),
    "discourse": lambda d: write_discourse(d),
    "piazza": lambda d: write_piazza(d),
    "jsonl": lambda d: write_jsonl(d),
}


def mine(app: Flask, path: Path, fmt: str) -> mining.Summary:
    core = app.extensions["core"]
    return mining.mine(core.sessions, path, fmt, COURSE, staff=STAFF, asker=core.retriever)


def candidates(app: Flask) -> list[dict[str, Any]]:
    with app.extensions["core"].sessions() as session:
        rows = session.scalars(select(Candidate).order_by(Candidate.id))
        return [review.candidate_json(c, COURSE) for c in rows]


def counts(app: Flask) -> tuple[int, int]:
    with app.extensions["core"].sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Candidate)) or 0,
            session.scalar(select(func.count()).select_from(MinedThread)) or 0,
        )


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_every_format_mines_into_candidates_without_personal_data(
    app: Flask, tmp_path: Path, fmt: str
) -> None:
    summary = mine(app, WRITERS[fmt](tmp_path), fmt)
    assert summary.threads >= 5 and summary.questions >= 4
    found = candidates(app)
    assert found and summary.new_candidates == len(found)
    assert sum(c["asked_count"] for c in found) == summary.questions
    # Each thread's question is somewhere, with its source; staff answers are drafts.
    texts = json.dumps(found, ensure_ascii=False)
    assert "running averages at test time" in texts and "バッチ正規化" in texts
    assert any(c["staff_answered"] and c["answer"] for c in found)
    assert all(s["forum"] == fmt for c in found for s in c["sources"])
    # Personal data never reaches a candidate.
    for planted in (*PLANTED_EMAILS, *PLANTED_PHONES, *PLANTED_IDS, *PLANTED_NAMES):
        assert planted not in texts, planted
    assert "@dan" not in texts
    removed = summary.removed.as_dict()
    assert removed["emails"] >= 1 and removed["phones"] >= 1 and removed["student_ids"] >= 1
    # Mining the same export again adds nothing.
    before = counts(app)
    (tmp_path / "again").mkdir()
    again = mine(app, WRITERS[fmt](tmp_path / "again"), fmt)
    assert again.new_candidates == 0 and again.questions == 0 and counts(app) == before
    assert again.already_mined == summary.threads


def test_a_newer_export_adds_only_what_is_new(app: Flask, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path)
    first = mine(app, path, "jsonl")
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # the fixture plants a malformed line
            continue
    newer = tmp_path / "newer.jsonl"
    extra = {
        "thread_id": "new-1",
        "post_id": "new-1-0",
        "parent_id": "",
        "author": "erin",
        "author_role": "student",
        "created_at": "2024-04-01T10:00:00Z",
        "body": "How should I pick the number of attention heads in a transformer?",
    }
    newer.write_text("\n".join(json.dumps(r) for r in [*rows, extra]) + "\n")
    second = mine(app, newer, "jsonl")
    assert second.questions == 1 and second.already_mined == first.threads
    assert sum(c["asked_count"] for c in candidates(app)) == first.questions + 1


def test_a_staff_answer_that_came_later_reaches_its_candidate(app: Flask, tmp_path: Path) -> None:
    base = {"parent_id": "", "author": "erin", "author_role": "student"}
    question = {**base, "thread_id": "q", "post_id": "q-0", "created_at": "2024-04-01T10:00:00Z",
                "body": "Why does my GAN generator collapse to a single image?"}  # fmt: skip
    answer = {"thread_id": "q", "post_id": "q-1", "parent_id": "q-0", "author": "dan",
              "author_role": "ta", "created_at": "2024-04-02T10:00:00Z",
              "body": "That is mode collapse: the generator found one output that fools the "
                      "discriminator. Try a lower learning rate."}  # fmt: skip
    early = tmp_path / "early.jsonl"
    early.write_text(json.dumps(question) + "\n")
    mine(app, early, "jsonl")
    (found,) = candidates(app)
    assert not found["staff_answered"] and found["answer"] == {}
    later = tmp_path / "later.jsonl"
    later.write_text(json.dumps(question) + "\n" + json.dumps(answer) + "\n")
    summary = mine(app, later, "jsonl")
    (found,) = candidates(app)
    assert summary.updated_candidates == 1 and found["asked_count"] == 1
    assert found["staff_answered"] and "mode collapse" in found["answer"]["en"]


CLIPPING = "How does gradient clipping stop exploding gradients in RNNs?"


def test_a_rejected_candidate_is_not_proposed_again(app: Flask, tmp_path: Path) -> None:
    def export(name: str, thread: str, body: str) -> Path:
        path = tmp_path / f"{name}.jsonl"
        rows = [
            {"thread_id": thread, "post_id": f"{thread}-0", "parent_id": "", "author": "erin",
             "author_role": "student", "created_at": "2024-04-01T10:00:00Z", "body": body},
            {"thread_id": thread, "post_id": f"{thread}-1", "parent_id": f"{thread}-0",
             "author": "dan", "author_role": "ta", "created_at": "2024-04-01T11:00:00Z",
             "body": "Use gradient clipping: it bounds each update."},
        ]  # fmt: skip
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    mine(
        app,
        export("a", "t1", "How does gradient clipping stop exploding gradients in RNNs?"),
        "jsonl",
    )
    (found,) = candidates(app)
    review.decide(app.extensions["core"].sessions, found["id"], "rejected", author="tanaka")
    again = mine(app, export("b", "t2", CLIPPING), "jsonl")
    assert again.joined_rejected == 1 and again.new_candidates == 0
    (found,) = candidates(app)
    assert found["status"] == "rejected" and found["asked_count"] == 2
    with app.extensions["core"].sessions() as session:
        assert review.list_candidates(session, status="open").total == 0


def test_the_api_lists_candidates_for_write_tokens_only(app: Flask, tmp_path: Path) -> None:
    mine(app, write_slack(tmp_path), "slack")
    client = app.test_client()
    assert client.get("/api/v1/candidates").status_code == 401
    reader = make_token(app, "ask,run", name="reader")
    assert client.get("/api/v1/candidates", headers=bearer(reader)).status_code == 403
    writer = make_token(app, "ask,run,write", name="writer")
    res = client.get("/api/v1/candidates?per_page=2", headers=bearer(writer))
    assert res.status_code == 200, res.json
    body = res.json
    assert body["page"] == 1 and body["per_page"] == 2 and body["total"] >= 1
    assert len(body["candidates"]) <= 2
    first = body["candidates"][0]
    for key in ("id", "status", "existing_entry", "asked_count", "sources", "question", "answer",
                "phrasings"):  # fmt: skip
        assert key in first
    one = client.get(f"/api/v1/candidates/{first['id']}", headers=bearer(writer))
    assert one.status_code == 200 and one.json == first
    assert client.get("/api/v1/candidates/999999", headers=bearer(writer)).status_code == 404
    bad = client.get("/api/v1/candidates?status=bogus", headers=bearer(writer))
    assert bad.status_code == 400 and bad.json["error"]["code"]


def _answered_candidate(app: Flask) -> dict[str, Any]:
    return next(c for c in candidates(app) if c["staff_answered"] and c["answer"])


def test_accepting_opens_the_editor_prefilled_and_saving_creates_the_entry(
    app: Flask, tmp_path: Path
) -> None:
    mine(app, write_piazza(tmp_path), "piazza")
    chosen = _answered_candidate(app)
    ta = ta_client(app)
    page = ta.get("/ta/candidates").get_data(as_text=True)
    assert f'data-candidate="{chosen["id"]}"' in page
    editor = ta.get(f"/ta/entries/new?candidate={chosen['id']}").get_data(as_text=True)
    lang, answer = next(iter(chosen["answer"].items()))
    assert answer.split("\n")[0][:40] in editor
    assert f'name="candidate" value="{chosen["id"]}"' in editor
    form = {
        "slug": "mined-entry",
        "course": COURSE,
        "tags": "",
        f"question_{lang}": chosen["question"].get(lang) or "How does this mined question read?",
        f"answer_{lang}": "Our own words on it [@src].",
        "cite-0-key": "src",
        "cite-0-title": "Course forum thread",
        "cite-0-authors": "Course staff",
        "cite-0-year": "2024",
        "cite-0-venue": "Piazza",
        "cite-0-url": "https://piazza.com/class/x?cid=1",
        "candidate": str(chosen["id"]),
        "not_duplicate": "1",
    }
    for other in ("en", "ja"):
        form.setdefault(f"question_{other}", "")
        form.setdefault(f"answer_{other}", "")
        form.setdefault(f"aliases_{other}", "")
    saved = post(ta, "/ta/entries/new", form)
    assert saved.status_code == 302, saved.get_data(as_text=True)
    with app.extensions["core"].sessions() as session:
        assert find_entry(session, "mined-entry", COURSE) is not None
        row = session.get(Candidate, chosen["id"])
        assert row is not None and row.status == "accepted" and row.entry_slug == "mined-entry"
    # Gone from the open list, shown under Accepted or merged.
    assert f'data-candidate="{chosen["id"]}"' not in ta.get("/ta/candidates").get_data(as_text=True)
    done = ta.get("/ta/candidates?view=done").get_data(as_text=True)
    assert f'data-candidate="{chosen["id"]}"' in done


def test_merging_adds_the_phrasings_as_aliases(app: Flask, tmp_path: Path) -> None:
    mine(app, write_discourse(tmp_path), "discourse")
    chosen = next(c for c in candidates(app) if "en" in c["phrasings"])
    ta = ta_client(app)
    res = post(ta, f"/ta/candidates/{chosen['id']}/merge", {"slug": "double-descent"})
    assert res.status_code == 302
    with app.extensions["core"].sessions() as session:
        entry = find_entry(session, "double-descent", COURSE)
        assert entry is not None
        aliases = [a for values in entry.aliases.values() for a in values]
        assert all(p in aliases for p in chosen["phrasings"]["en"])
    again = post(ta, f"/ta/candidates/{chosen['id']}/merge", {"slug": "double-descent"})
    assert again.status_code == 400  # already merged
    assert post(ta, "/ta/candidates/999999/reject").status_code == 404


def test_reject_and_reopen_from_the_page(app: Flask, tmp_path: Path) -> None:
    mine(app, write_slack(tmp_path), "slack")
    chosen = candidates(app)[0]
    ta = ta_client(app)
    assert post(ta, f"/ta/candidates/{chosen['id']}/reject").status_code == 302
    rejected = ta.get("/ta/candidates?view=rejected").get_data(as_text=True)
    assert f'data-candidate="{chosen["id"]}"' in rejected
    assert post(ta, f"/ta/candidates/{chosen['id']}/reopen").status_code == 302
    assert candidates(app)[0]["status"] == "open"
    # Odd paging and views fall back to the first page of the default view.
    for query in ("?page=0", "?page=-1", "?page=99999", "?view=bogus", "?page=1e9"):
        assert ta.get("/ta/candidates" + query).status_code == 200, query
    # Without the CSRF token nothing changes.
    ta.post(f"/ta/candidates/{chosen['id']}/reject")
    assert candidates(app)[0]["status"] == "open"
    assert csrf_token(ta)


def test_the_cli_mines_and_summarises(app: Flask, tmp_path: Path) -> None:
    path = write_slack(tmp_path)
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "kb",
            "mine",
            str(path),
            "--format",
            "slack",
            "--course",
            COURSE,
            "--staff",
            ",".join(STAFF),
        ]
    )
    assert result.exit_code == 0, result.output
    assert "threads 5" in result.output and "personal data removed:" in result.output
    assert "emails" in result.output
    mine_args = ["kb", "mine", "--format", "slack", "--course"]
    missing = runner.invoke(args=[*mine_args, COURSE, str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "Error" in missing.output
    unknown = runner.invoke(args=[*mine_args, "nope", str(path)])
    assert unknown.exit_code != 0 and "unknown course" in unknown.output


def test_a_broken_export_stores_nothing(app: Flask, tmp_path: Path) -> None:
    """An export the importer refuses (a CSV without the needed columns) changes nothing."""
    path = write_jsonl(tmp_path)
    broken = tmp_path / "broken.csv"
    broken.write_text("thread_id,post_id\n1,2\n")
    with pytest.raises(ValueError):
        mine(app, broken, "jsonl")
    assert counts(app) == (0, 0)
    assert mine(app, path, "jsonl").questions >= 4


def test_a_draft_naming_a_missing_or_decided_candidate_saves_nothing(
    app: Flask, tmp_path: Path
) -> None:
    mine(app, write_slack(tmp_path), "slack")
    chosen = candidates(app)[0]
    ta = ta_client(app)
    post(ta, f"/ta/candidates/{chosen['id']}/merge", {"slug": "double-descent"})
    form = {
        "slug": "from-a-stale-draft",
        "course": COURSE,
        "tags": "",
        "question_en": "What does a stale candidate draft do when it is saved?",
        "answer_en": "Nothing is saved [@src].",
        "aliases_en": "",
        "question_ja": "",
        "answer_ja": "",
        "aliases_ja": "",
        "cite-0-key": "src",
        "cite-0-title": "Course forum thread",
        "cite-0-authors": "Course staff",
        "cite-0-year": "2024",
        "cite-0-venue": "Slack",
        "cite-0-url": "https://example.edu/t/1",
        "not_duplicate": "1",
    }
    for candidate, status in ((chosen["id"], 409), (999999, 400)):
        res = post(ta, "/ta/entries/new", {**form, "candidate": str(candidate)})
        assert res.status_code == status, res.get_data(as_text=True)[:500]
        with app.extensions["core"].sessions() as session:
            assert find_entry(session, "from-a-stale-draft", COURSE) is None


def test_a_group_near_an_entry_gets_that_entry_or_its_experiment(
    app: Flask, tmp_path: Path
) -> None:
    rows = [
        {"thread_id": "dd", "post_id": "dd-0", "parent_id": "", "author": "erin",
         "author_role": "student", "created_at": "2024-04-01T10:00:00Z",
         "body": "In random-features regression my test error spikes when the number of "
                 "features equals the number of training points. Does ridge regularization "
                 "make that bump go away?"},
        {"thread_id": "dd", "post_id": "dd-1", "parent_id": "dd-0", "author": "dan",
         "author_role": "ta", "created_at": "2024-04-01T11:00:00Z",
         "body": "Yes, a ridge penalty damps the peak at the interpolation threshold."},
    ]  # fmt: skip
    path = tmp_path / "dd.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mine(app, path, "jsonl")
    (found,) = candidates(app)
    assert (found["existing_entry"], found["suggested_experiment"]) in (
        ("double-descent", None),
        (None, "double_descent"),
    ), found


def test_the_api_lists_the_unanswered_queue_grouped_across_languages(app: Flask) -> None:
    client = app.test_client()
    asked = [
        "When is the final exam held?",
        "期末試験はいつ行われますか？",
        "Can I bring a cheat sheet to the final exam?",
    ]
    for question in asked:
        res = client.post("/api/v1/ask", json={"question": question})
        assert res.status_code == 200 and res.json["abstained"], res.json
    assert client.get("/api/v1/unanswered").status_code == 401
    writer = make_token(app, "ask,run,write", name="queue-reader")
    res = client.get("/api/v1/unanswered?per_page=50", headers=bearer(writer))
    assert res.status_code == 200, res.json
    body = res.json
    assert body["open_questions"] == 3 and body["total"] == len(body["groups"]) >= 1
    listed = [q["question"] for g in body["groups"] for q in g["questions"]]
    assert sorted(listed) == sorted(asked)
    fields = {"id", "lang", "asked_at", "confidence"}
    assert all(set(q) >= fields for g in body["groups"] for q in g["questions"])
    page_two = client.get("/api/v1/unanswered?per_page=1&page=2", headers=bearer(writer)).json
    assert page_two["page"] == 2 and len(page_two["groups"]) == min(1, body["total"] - 1)


def test_threads_without_a_readable_time_group_with_dated_ones(app: Flask, tmp_path: Path) -> None:
    """A post whose time cannot be read sorts last; it never breaks the ranking."""
    question = "Why does my validation loss go up while the training loss keeps going down?"
    rows = []
    for n, when in enumerate(("2024-04-01T10:00:00Z", "")):
        rows += [
            {"thread_id": f"t{n}", "post_id": f"t{n}-0", "parent_id": "", "author": f"s{n}",
             "author_role": "student", "created_at": when or "2024-04-02T10:00:00Z",
             "body": question},
            {"thread_id": f"t{n}", "post_id": f"t{n}-1", "parent_id": f"t{n}-0", "author": "dan",
             "author_role": "ta", "created_at": when or "2024-04-02T11:00:00Z",
             "body": "That is overfitting: stop early or regularise."},
        ]  # fmt: skip
    path = tmp_path / "undated.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    threads = list(mining.read_export(path, "jsonl"))
    threads[1].posts[0].created_at = None  # as an importer leaves an unreadable time
    questions = [mining.extract(t)[0] for t in threads]
    assert all(q is not None for q in questions)
    best = mining._answer({}, [q for q in questions if q is not None])
    assert best == {"en": "That is overfitting: stop early or regularise."}
    assert mine(app, path, "jsonl").questions == 2


def test_matching_runs_while_the_database_takes_writes(app: Flask, tmp_path: Path) -> None:
    """Mining asks the retriever after its write transaction: students' asks (each writes
    a log row) go on meanwhile, on SQLite too, whose write lock covers the database."""
    core = app.extensions["core"]

    class AskerThatWrites:
        writes = 0

        def ask(self, question: str, **kw: Any) -> Any:
            with core.sessions() as session, session.begin():  # as a student's ask logs
                session.add(AskLog(question="probe", lang="en", confidence=0.0, abstained=True))
            self.writes += 1
            return core.retriever.ask(question, **kw)

    mining.mine(core.sessions, write_slack(tmp_path), "slack", COURSE, STAFF, core.retriever)
    # The same questions from another forum join those candidates (updates, then asks).
    asker = AskerThatWrites()
    started = time.monotonic()
    mining.mine(core.sessions, write_jsonl(tmp_path), "jsonl", COURSE, STAFF, asker)
    assert asker.writes >= 2 and time.monotonic() - started < 30
    assert any(c["existing_entry"] for c in candidates(app))  # the matches were stored


def test_source_links_from_an_export_are_only_web_links(app: Flask, tmp_path: Path) -> None:
    """A thread's link comes from the export (untrusted): only http(s) and site paths."""
    rows = []
    links = ("javascript:alert(1)", "//evil.example/x", "https://ok.example/t/1", "/t/q/9")
    for n, url in enumerate(links):
        rows.append(
            {"thread_id": f"u{n}", "post_id": f"u{n}-0", "parent_id": "", "author": "erin",
             "author_role": "student", "created_at": f"2024-04-0{n + 1}T10:00:00Z", "url": url,
             "body": f"Question {n}: why would my gradient norm {n * 7} explode after warmup?"}
        )  # fmt: skip
        rows.append(
            {"thread_id": f"u{n}", "post_id": f"u{n}-1", "parent_id": f"u{n}-0", "author": "dan",
             "author_role": "ta", "created_at": f"2024-04-0{n + 1}T11:00:00Z",
             "body": "Lower the peak learning rate."}
        )  # fmt: skip
    path = tmp_path / "links.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    core = app.extensions["core"]
    mining.mine(core.sessions, path, "jsonl", COURSE, base_url="https://forum.example.edu")
    page = ta_client(app).get("/ta/candidates").get_data(as_text=True)
    assert 'href="https://ok.example/t/1"' in page
    assert 'href="https://forum.example.edu/t/q/9"' in page  # a path, made whole
    assert 'href="javascript' not in page and 'href="//evil' not in page
    urls = [s["url"] for c in candidates(app) for s in c["sources"]]
    assert sorted(u for u in urls if u) == [
        "https://forum.example.edu/t/q/9",
        "https://ok.example/t/1",
    ]
