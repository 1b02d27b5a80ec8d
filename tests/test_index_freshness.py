"""A TA edit is answerable by every process within a second, without re-embedding old text."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from knowledge.ask import Retriever
from knowledge.db import make_sessionmaker, transaction
from knowledge.entry_store import DEFAULT_MODELS, entry_data, find_entry, upsert_entry
from knowledge.schema import EntryData
from knowledge.tables import Embedding
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent

NEW_ENTRY = {
    "slug": "gradient-clipping",
    "course": "nyu-dl-f20",
    "question": {
        "en": "Why do people clip gradients when training recurrent networks?",
        "ja": "RNNの学習で勾配クリッピングをするのはなぜですか？",
    },
    "aliases": {"en": ["what does gradient clipping do"], "ja": ["勾配クリッピングとは"]},
    "answer": {
        "en": "Clipping caps the gradient norm so that one exploding step cannot wreck training.",
        "ja": "勾配のノルムに上限を設け、発散した一歩で学習が壊れないようにします。",
    },
}


@pytest.fixture
def other_process(app: Flask) -> str:
    """A second web process on the same database."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": app.config["DATABASE_URL"]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "service", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            # The first ask loads the models and the index.
            requests.post(f"{url}/api/v1/ask", json={"question": "warm up"}, timeout=60)
            break
        except requests.ConnectionError:
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def _embedding_count(app: Flask) -> int:
    with app.extensions["core"].sessions() as session:
        return session.scalar(select(func.count()).select_from(Embedding)) or 0


def test_new_entry_is_answerable_everywhere_without_restart(app: Flask, other_process: str) -> None:
    local = Retriever(make_sessionmaker(app.extensions["core"].engine))
    local.warm_up()
    question = "why clip gradients in an RNN?"
    assert local.ask(question, log=False).best is None or (
        local.ask(question, log=False).best.entry.slug != "gradient-clipping"
    )
    with transaction(app.extensions["core"].sessions) as session:
        upsert_entry(session, EntryData.model_validate(NEW_ENTRY), author="ta")
    saved = time.monotonic()

    seen_local = seen_remote = None
    while time.monotonic() - saved < 10 and (seen_local is None or seen_remote is None):
        if seen_local is None:
            best = local.ask(question, log=False).best
            if best and best.entry.slug == "gradient-clipping":
                seen_local = time.monotonic() - saved
        if seen_remote is None:
            body = requests.post(f"{other_process}/api/v1/ask", json={"question": question}).json()
            if body["answer"] and body["answer"]["slug"] == "gradient-clipping":
                seen_remote = time.monotonic() - saved
        time.sleep(0.05)
    # Processes poll the knowledge version every 0.5 s (RetrievalSettings.refresh_interval_s)
    # and reload at once: about half a second on a quiet machine. The bound here is loose
    # because this shared 2-core machine is noisy; timing targets belong to benchmarks.
    assert seen_local is not None and seen_local <= 3.0, seen_local
    assert seen_remote is not None and seen_remote <= 3.0, seen_remote


def test_edit_embeds_only_changed_text(app: Flask) -> None:
    sessions = app.extensions["core"].sessions
    before = _embedding_count(app)
    with transaction(sessions) as session:
        entry = find_entry(session, "double-descent")
        data = entry_data(entry)
        answer = dict(data.answer)
        answer["en"] += "\n\nA brand-new closing paragraph about interpolation thresholds."
        upsert_entry(session, data.model_copy(update={"answer": answer}), author="ta")
    # One new paragraph, and the whole answer it changes, embedded once per stored model;
    # the questions and every other paragraph were cached.
    assert _embedding_count(app) - before == 2 * len(DEFAULT_MODELS)
