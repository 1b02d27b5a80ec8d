"""Helpers shared by the API tests: tokens, request bodies, row counts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from knowledge import api_tokens
from knowledge.db import transaction
from knowledge.tables import (
    ApiToken,
    AskLog,
    Citation,
    Course,
    Entry,
    EntryRevision,
    Feedback,
    IndexUnit,
    KbState,
    utcnow,
)

KROGH_URL = "https://papers.nips.cc/paper/563-a-simple-weight-decay-can-improve-generalization"
COUNTED = (Entry, EntryRevision, Citation, Course, IndexUnit, AskLog, Feedback, ApiToken)


def make_token(
    app: Flask,
    scopes: str = "ask,run,write",
    *,
    name: str = "test-bot",
    expires_in_days: int | None = None,
    expired: bool = False,
    revoked: bool = False,
) -> str:
    """A token's secret; ``expired`` backdates its creation so it expired an hour ago."""
    with transaction(app.extensions["core"].sessions) as session:
        now = utcnow() - timedelta(days=1, hours=1) if expired else None
        new = api_tokens.create_token(
            session,
            name,
            scopes,
            expires_in_days=1 if expired else expires_in_days,
            now=now,
        )
        if revoked:
            api_tokens.revoke_token(session, new.info.id)
    return new.secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def row_counts(app: Flask) -> dict[str, Any]:
    """Rows per table plus the knowledge-base version: equal before and after = nothing stored."""
    with app.extensions["core"].sessions() as session:
        counts: dict[str, Any] = {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in COUNTED
        }
        counts["kb_version"] = session.scalar(select(KbState.version).where(KbState.id == 1))
    return counts


def entry_body(slug: str = "api-made-entry", **overrides: Any) -> dict[str, Any]:
    """A valid create body with a citation and an experiment."""
    body: dict[str, Any] = {
        "slug": slug,
        "course": "nyu-dl-f20",
        "question": {"en": "Why does weight decay help generalisation in small nets?"},
        "aliases": {"en": ["Does L2 regularisation help small networks generalise?"]},
        "answer": {
            "en": "Weight decay shrinks weights toward zero, which limits the effective "
            "capacity of the network [@krogh1992]."
        },
        "tags": ["regularization"],
        "citations": [
            {
                "key": "krogh1992",
                "title": "A Simple Weight Decay Can Improve Generalization",
                "authors": ["Anders Krogh", "John A. Hertz"],
                "year": 1992,
                "venue": "NIPS 4",
                "url": KROGH_URL,
            }
        ],
        "runner": {"name": "double_descent", "params": {"ridge": 0.01}},
    }
    body.update(overrides)
    return body
