"""examples/forum_bot.py against a live server on 127.0.0.1: stdin posts and webhook posts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from knowledge.tables import ApiToken, AskLog
from service import create_app
from tests.api_fixtures import make_token

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "examples" / "forum_bot.py"
ANSWERABLE = {
    "id": 101,
    "title": "Attention scaling",
    "body": "Why are the attention logits divided by the square root of the dimension d?",
}
OFF_TOPIC = {"id": 102, "title": "Exam logistics", "body": "When is the final exam and where?"}


@pytest.fixture
def live(db_url: str, queue_url: str) -> Iterator[tuple[Flask, str]]:
    """The app served over real HTTP on 127.0.0.1 (a free port), in a thread."""
    app = create_app({"TESTING": True, "DATABASE_URL": db_url, "QUEUE_URL": queue_url})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["core"].engine.dispose()


def run_bot(url: str, token: str, posts: Any) -> tuple[int, list[dict[str, Any]]]:
    proc = subprocess.run(
        [sys.executable, str(BOT), "--api", url],
        input=json.dumps(posts),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RA_API_TOKEN": token},
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def test_bot_answers_with_citations_and_a_run_link_or_forwards(live: tuple[Flask, str]) -> None:
    app, url = live
    token = make_token(app, "ask", name="forum-bot")
    code, replies = run_bot(url, token, [ANSWERABLE, OFF_TOPIC])
    assert code == 0, replies
    answered, declined = replies
    assert answered["post_id"] == 101 and answered["answered"] is True
    assert answered["slug"] == "attention-sqrt-d-scaling"
    reply = answered["reply"]
    assert "**Sources**" in reply and "[1]" in reply and "[@" not in reply
    assert all(c and c.startswith("https://") for c in answered["citations"])
    assert answered["citations"][0] in reply
    assert answered["run_url"].startswith(f"{url}/entries/attention-sqrt-d-scaling")
    assert answered["run_url"] in reply
    with urllib.request.urlopen(answered["run_url"], timeout=30) as page:  # the link works
        assert b"data-experiment" in page.read()
    assert declined["post_id"] == 102 and declined["answered"] is False
    assert declined["forwarded_to_tas"] is True
    assert "forwarded your question to the TAs" in declined["reply"]
    with app.extensions["core"].sessions() as session:
        logged = session.get(AskLog, declined["question_id"])
        assert logged is not None and logged.abstained and "final exam" in logged.question
        used = session.scalars(select(ApiToken.last_used_at)).one()
        assert used is not None  # the bot called the API with its token


def test_bot_answers_in_japanese(live: tuple[Flask, str]) -> None:
    app, url = live
    post = {"id": 5, "body": "バッチ正規化をVAEで使ってもいいですか？"}
    code, (reply,) = run_bot(url, make_token(app, "ask"), post)
    assert code == 0 and reply["answered"] is True
    assert reply["slug"] == "batchnorm-in-vae"
    assert "**出典**" in reply["reply"] and "?lang=ja" in reply["run_url"]


def test_bot_reports_a_refused_token(live: tuple[Flask, str]) -> None:
    app, url = live
    code, (reply,) = run_bot(url, make_token(app, "ask", revoked=True), ANSWERABLE)
    assert code == 1
    assert reply == {"post_id": 101, "error": "token_revoked", "status": 401, "reply": None}


@pytest.fixture
def webhook_bot(live: tuple[Flask, str]) -> Iterator[tuple[Flask, str]]:
    app, url = live
    token = make_token(app, "ask")
    proc = subprocess.Popen(
        [sys.executable, str(BOT), "--api", url, "--serve", "--port", "0", "--secret", "s3cret"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RA_API_TOKEN": token},
    )
    try:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        assert "listening on" in line, line
        yield app, line.split("listening on ")[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()  # type: ignore[union-attr]


def post_json(url: str, body: Any, secret: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Webhook-Secret": secret},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_webhook_posts_get_replies(webhook_bot: tuple[Flask, str]) -> None:
    _, hook = webhook_bot
    discourse = {
        "post": {
            "id": 7,
            "topic_title": "Double descent",
            "raw": "How should I think about double descent alongside the bias-variance trade-off?",
        }
    }
    status, reply = post_json(hook, discourse, "s3cret")
    assert status == 200 and reply["post_id"] == 7
    assert reply["answered"] is True and reply["slug"] == "double-descent"
    assert "Run the experiment" in reply["reply"]
    status, reply = post_json(hook, OFF_TOPIC, "s3cret")
    assert status == 200 and reply["forwarded_to_tas"] is True
    assert post_json(hook, ANSWERABLE, "wrong")[0] == 401
    assert post_json(hook.replace("/webhook", "/other"), ANSWERABLE, "s3cret")[0] == 404
