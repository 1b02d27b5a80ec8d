"""The unanswered queue (grouping, answer this, dismiss, link) and the feedback pages."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from knowledge import queue_groups
from knowledge.db import transaction
from knowledge.entry_store import find_entry
from knowledge.tables import AskLog, Embedding
from tests.ta_support import entry_form, post, ta_client

EXAM = ["When is the final exam?", "期末試験はいつですか？", "What date is the final exam?"]
TOOLS = "Can I use TensorFlow instead of PyTorch for the homework?"


@pytest.fixture
def ta(app: Flask) -> FlaskClient:
    return ta_client(app)


def ask(client: FlaskClient, question: str) -> dict:
    body = client.post("/api/v1/ask", json={"question": question}).json
    return body


@pytest.fixture
def declined(client: FlaskClient) -> dict[str, int]:
    """Four declined questions: one about tools, then three phrasings of one exam question."""
    ids = {}
    for question in [TOOLS, *EXAM]:
        body = ask(client, question)
        assert body["abstained"], question
        ids[question] = body["question_id"]
    return ids


def test_grouping_is_greedy_by_centroid() -> None:
    a = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    a2 = np.array([0.95, 0.31, 0.0], dtype=np.float32)
    b = np.array([0.0, 0.0, 1.0], dtype=np.float32)
    vectors = np.stack([a, b, a2 / np.linalg.norm(a2), a])
    assert queue_groups.group_vectors(vectors, threshold=0.9) == [[0, 2, 3], [1]]
    assert queue_groups.group_vectors(vectors, threshold=0.999) == [[0, 3], [1], [2]]
    assert queue_groups.group_vectors(np.zeros((0, 3), dtype=np.float32)) == []


def test_declined_questions_are_grouped_across_languages_newest_first(
    app: Flask, declined: dict[str, int]
) -> None:
    with transaction(app.extensions["core"].sessions) as session:
        groups = queue_groups.unanswered_groups(session)
        stored = session.scalar(select(func.count()).select_from(Embedding))
    assert [g.count for g in groups] == [3, 1]
    exam, tools = groups
    assert exam.newest.question == EXAM[-1]
    assert set(exam.phrasings()) == set(EXAM) and exam.langs == ["en", "ja"]
    assert tools.newest.question == TOOLS
    # Vectors are stored once: a second look embeds nothing new.
    with transaction(app.extensions["core"].sessions) as session:
        queue_groups.unanswered_groups(session)
        assert session.scalar(select(func.count()).select_from(Embedding)) == stored


def test_answer_this_prefills_and_answered_questions_leave_the_queue(
    app: Flask, ta: FlaskClient, client: FlaskClient, declined: dict[str, int]
) -> None:
    page = ta.get("/ta/queue").get_data(as_text=True)
    assert page.count("data-group") == 2
    assert "asked 3×" in page and "asked 1×" in page
    assert page.index(EXAM[-1]) < page.index(TOOLS)  # newest group first
    link = re.search(r'href="(/ta/entries/new\?resolves=[0-9%C,]+)"', page)
    assert link, page
    editor = ta.get(link.group(1).replace("%2C", ",")).get_data(as_text=True)
    assert f">{EXAM[-1]}</textarea>" in editor  # newest English phrasing is the question
    assert f">{EXAM[1]}</textarea>" in editor  # the Japanese one is the Japanese question
    assert "When is the final exam?</textarea>" in editor  # the other becomes an alias
    exam_ids = sorted(declined[q] for q in EXAM)
    assert f'name="resolves" value="{",".join(map(str, exam_ids))}"' in editor

    form = entry_form(
        slug="final-exam-date",
        question_en=EXAM[-1],
        aliases_en=EXAM[0],
        answer_en="The final exam is in week 15; see the course calendar.",
        question_ja=EXAM[1],
        answer_ja="期末試験は第15週です。授業カレンダーを見てください。",
        resolves=",".join(map(str, exam_ids)),
    )
    form.update({k: "" for k in form if k.startswith("cite-")})
    res = post(ta, "/ta/entries/new", {**form, "not_duplicate": "1"})
    assert res.status_code == 302, res.get_data(as_text=True)
    assert "3 question(s) left the unanswered queue" in ta.get(res.headers["Location"]).get_data(
        as_text=True
    )
    with app.extensions["core"].sessions() as session:
        resolved = session.scalars(select(AskLog.resolved_slug).where(AskLog.id.in_(exam_ids)))
        assert set(resolved) == {"final-exam-date"}
    page = ta.get("/ta/queue").get_data(as_text=True)
    assert page.count("data-group") == 1 and TOOLS in page
    app.extensions["core"].retriever.refresh()
    assert ask(client, "期末試験はいつ？")["answer"]["slug"] == "final-exam-date"


def test_dismiss_and_reopen(app: Flask, ta: FlaskClient, declined: dict[str, int]) -> None:
    tools_id = declined[TOOLS]
    res = post(ta, "/ta/queue/resolve", {"ids": str(tools_id), "action": "dismiss"})
    assert res.status_code == 302 and f"undo={tools_id}" in res.headers["Location"]
    page = ta.get(res.headers["Location"]).get_data(as_text=True)
    assert TOOLS not in page and "Dismissed 1 question(s)" in page
    res = post(ta, "/ta/queue/reopen", {"ids": str(tools_id)})
    assert res.status_code == 302
    assert TOOLS in ta.get("/ta/queue").get_data(as_text=True)


def test_link_a_group_to_an_existing_entry_with_aliases(
    app: Flask, ta: FlaskClient, client: FlaskClient
) -> None:
    question = "how long should my vectors be"
    with transaction(app.extensions["core"].sessions) as session:
        row = AskLog(question=question, lang="en", confidence=0.4, abstained=True)
        session.add(row)
        session.flush()
        ask_id = row.id
    res = post(
        ta,
        "/ta/queue/resolve",
        {"ids": str(ask_id), "action": "link", "slug": "embedding-dimension", "add_aliases": "1"},
    )
    assert res.status_code == 302
    with app.extensions["core"].sessions() as session:
        entry = find_entry(session, "embedding-dimension")
        assert question in entry.aliases["en"]
        assert session.get(AskLog, ask_id).resolved_slug == "embedding-dimension"
    app.extensions["core"].retriever.refresh()
    answer = ask(client, question)
    assert not answer["abstained"] and answer["answer"]["slug"] == "embedding-dimension"


@pytest.mark.parametrize(
    "form",
    [
        {"ids": "", "action": "dismiss"},
        {"ids": "1", "action": "explode"},
        {"ids": "1", "action": "link", "slug": "no-such-entry"},
        {"ids": "not,numbers", "action": "dismiss"},
    ],
)
def test_bad_queue_actions_are_400(ta: FlaskClient, form: dict[str, str]) -> None:
    assert post(ta, "/ta/queue/resolve", form).status_code == 400


def test_empty_queue(ta: FlaskClient) -> None:
    page = ta.get("/ta/queue").get_data(as_text=True)
    assert 'id="queue-empty"' in page


def test_feedback_per_entry(ta: FlaskClient, client: FlaskClient) -> None:
    votes = [
        ("What is double descent?", False, "I wanted the math"),
        ("Explain double descent", True, None),
        ("double descent in neural nets?", True, None),
        ("Can humanity build AGI?", True, None),
    ]
    for question, helpful, comment in votes:
        body = ask(client, question)
        assert not body["abstained"], question
        payload = {"question_id": body["question_id"], "helpful": helpful}
        if comment:
            payload["comment"] = comment
        assert client.post("/api/v1/feedback", json=payload).status_code == 201
    overview = ta.get("/ta/feedback").get_data(as_text=True)
    row = re.search(r'<tr data-slug="double-descent">.*?</tr>', overview, re.S).group(0)
    assert ">3</td>" in row and ">2</td>" in row and ">1</td>" in row and "67%" in row
    # The least helpful entry comes first.
    assert overview.index('data-slug="double-descent"') < overview.index('data-slug="agi"')
    detail = ta.get("/ta/feedback/double-descent").get_data(as_text=True)
    assert "Answered 3 question(s); 2 of 3 ratings helpful (67%)." in detail  # not agi's vote
    assert "What is double descent?" in detail and "I wanted the math" in detail
    assert "Explain double descent" not in detail
    assert ta.get("/ta/feedback/nope").status_code == 404
    listing = ta.get("/ta/entries/").get_data(as_text=True)
    assert "67%" in re.search(r'<tr data-slug="double-descent">.*?</tr>', listing, re.S).group(0)


def test_a_group_an_entry_now_answers_can_be_closed_in_one_click(
    app: Flask, client: FlaskClient, ta: FlaskClient
) -> None:
    from knowledge import editing
    from knowledge.schema import EntryData
    from tests.api_fixtures import entry_body

    question = "What is gradient checkpointing and what does it cost?"
    asked = ask(client, question)
    assert asked["abstained"]
    page = ta.get("/ta/queue").get_data(as_text=True)
    assert question in page and "data-answered-now" not in page
    body = entry_body(
        slug="gradient-checkpointing",
        question={"en": question},
        answer={"en": "It stores fewer activations and recomputes them [@krogh1992]."},
    )
    editing.create(app.extensions["core"].sessions, EntryData.model_validate(body), author="ta")
    deadline = time.monotonic() + 5  # each process picks up an edit within a second
    while True:
        page = ta.get("/ta/queue").get_data(as_text=True)
        form = re.search(r"<form[^>]*data-answered-now.*?</form>", page, re.S)
        if form or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert form and "gradient-checkpointing" in form.group(0), page
    ids = re.search(r'name="ids" value="([0-9,]+)"', form.group(0)).group(1)  # type: ignore[union-attr]
    res = post(
        ta, "/ta/queue/resolve", {"ids": ids, "action": "link", "slug": "gradient-checkpointing"}
    )
    assert res.status_code == 302
    assert question not in ta.get("/ta/queue").get_data(as_text=True)


def test_every_group_is_reachable_page_by_page(app: Flask, ta: FlaskClient) -> None:
    import random

    from service.ta import QUEUE_PAGE

    words = "".join(chr(c) for c in range(ord("a"), ord("z") + 1))
    rng = random.Random(7)
    with transaction(app.extensions["core"].sessions) as session:
        for _ in range(2 * QUEUE_PAGE):  # nonsense words: no two alike
            text = " ".join("".join(rng.choice(words) for _ in range(7)) for _ in range(5))
            session.add(AskLog(question=text + "?", lang="en", confidence=0.0, abstained=True))
    first = ta.get("/ta/queue").get_data(as_text=True)
    groups = len(re.findall(r"data-group>", first))
    assert groups == QUEUE_PAGE and "Page 1 of" in first and 'rel="next"' in first
    second = ta.get("/ta/queue?page=2").get_data(as_text=True)
    assert "Page 2 of" in second and 'rel="prev"' in second
    assert re.findall(r"data-group>", second)
    assert ta.get("/ta/queue?page=999").status_code == 200  # clamped to the last page


def test_the_same_question_in_the_other_language_joins_its_group() -> None:
    # Two unit vectors with cosine 0.65: a paraphrase across languages scores like that.
    a = np.array([1.0, 0.0], dtype=np.float32)
    b = np.array([0.65, np.sqrt(1 - 0.65**2)], dtype=np.float32)
    vectors = np.stack([a, b])
    assert queue_groups.group_vectors(vectors, langs=["en", "ja"]) == [[0, 1]]
    assert queue_groups.group_vectors(vectors, langs=["en", "en"]) == [[0], [1]]
    assert queue_groups.group_vectors(vectors) == [[0], [1]]  # no languages: one threshold


def test_one_client_flooding_asks_cannot_bury_the_queue(app: Flask, client: FlaskClient) -> None:
    import random

    rng = random.Random(3)
    letters = "abcdefghijklmnopqrstuvwxyz"

    def nonsense() -> str:
        return " ".join("".join(rng.choice(letters) for _ in range(6)) for _ in range(4)) + "?"

    for _ in range(queue_groups.MAX_PER_CLIENT + 15):
        res = client.post(
            "/api/v1/ask", json={"question": nonsense()}, environ_base={"REMOTE_ADDR": "10.0.0.9"}
        )
        assert res.json["abstained"]
    other = nonsense()
    client.post("/api/v1/ask", json={"question": other}, environ_base={"REMOTE_ADDR": "10.0.0.7"})
    with app.extensions["core"].sessions() as session:
        questions = queue_groups.open_questions(session)
        clients = session.execute(select(AskLog.client).distinct()).scalars().all()
    assert other in [q.question for q in questions]
    assert len(questions) == queue_groups.MAX_PER_CLIENT + 1
    assert all(c is None or (len(c) == 32 and "10.0.0" not in c) for c in clients)
