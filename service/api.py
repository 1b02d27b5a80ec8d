"""JSON API for the chat page and course-forum bots (``/api/v1``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy import Select, String, cast, func, or_, select
from sqlalchemy.orm import selectinload

from knowledge.ask import QuestionError
from knowledge.entry_store import find_entry, kb_version
from knowledge.tables import AskLog, Course, Entry, Feedback
from knowledge.text import normalize
from runners.jobs import get_queue
from runners.sandbox import sandbox_info
from service import presenters
from service.auth_tokens import require_read, require_scope
from service.errors import ApiError
from service.extensions import core
from service.request_bodies import (
    int_field,
    json_object,
    query_int,
    reject_unknown,
    string_field,
)
from service.write_api import etag

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.post("/ask")
@require_scope("ask", anonymous=True)
def ask() -> Response:
    body = json_object()
    reject_unknown(body, {"question", "course", "lang", "top_k"})
    question = string_field(body, "question", required=True, max_len=100_000) or ""
    course = string_field(body, "course", max_len=64)
    lang = string_field(body, "lang", max_len=8)
    if lang is not None and lang not in ("en", "ja"):
        raise ApiError(400, "invalid_lang", "lang must be 'en' or 'ja'.", field="lang")
    top_k = int_field(body, "top_k", low=1, high=10, default=3)
    try:
        result = core().retriever.ask(question, course=course, lang=lang, top_k=top_k)
    except QuestionError as exc:
        raise ApiError(400, exc.code, str(exc), field="question") from None

    answer = None
    if result.best is not None:
        answer = presenters.cached_answer_json(result.best.entry, result.lang, _entry_by_id)
    payload: dict[str, Any] = {
        "abstained": result.abstained,
        "confidence": round(result.confidence, 4),
        "answer": answer,
        "matches": [
            presenters.match_json(m.entry, m.confidence, result.lang) for m in result.matches
        ],
        "question_id": result.ask_id,
        "lang": result.lang,
        "did_you_mean": (
            [presenters.match_json(m.entry, m.confidence, result.lang) for m in result.matches[:2]]
            if result.ambiguous
            else []
        ),
    }
    return jsonify(payload)


def _entry_by_id(entry_id: int) -> Entry:
    with core().sessions() as session:
        return session.scalars(
            select(Entry)
            .where(Entry.id == entry_id)
            .options(selectinload(Entry.citations), selectinload(Entry.course))
        ).one()


@bp.get("/entries")
@require_read
def list_entries() -> Response:
    page = query_int("page", low=1, high=100_000, default=1)
    per_page = query_int("per_page", low=1, high=100, default=20)
    course = request.args.get("course")
    query = live_entries(normalize(request.args.get("q", ""))[:200])
    if course:
        query = query.where(Course.code == course)
    with core().sessions() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(
            query.order_by(Course.code, Entry.slug).limit(per_page).offset((page - 1) * per_page)
        ).all()
        items = [presenters.entry_summary(e) for e in rows]
    return jsonify({"items": items, "page": page, "per_page": per_page, "total": total})


def live_entries(text: str = "", *, answers: bool = False) -> Select[Entry]:
    """Entries not deleted, course loaded; with ``text``, those whose slug, question, aliases
    or tags (and answer, if ``answers``) contain it, ignoring case and LIKE wildcards."""
    query = (
        select(Entry)
        .join(Course)
        .where(Entry.deleted_at.is_(None))
        .options(selectinload(Entry.course))
    )
    if not text:
        return query
    like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    columns = [
        Entry.slug,
        cast(Entry.question, String),
        cast(Entry.aliases, String),
        cast(Entry.tags, String),
    ]
    if answers:
        columns.append(cast(Entry.answer, String))
    return query.where(or_(*(column.ilike(like, escape="\\") for column in columns)))


@bp.get("/entries/<slug>")
@require_read
def get_entry(slug: str) -> Response:
    course = request.args.get("course")
    with core().sessions() as session:
        entry = find_entry(session, slug, course)
        if entry is None:
            raise ApiError(404, "unknown_slug", f"No entry with slug {slug!r}.")
        response = jsonify(presenters.entry_detail(entry))
        response.headers["ETag"] = etag(entry.version)
        return response


@bp.post("/feedback")
@require_scope("ask", anonymous=True)
def feedback() -> tuple[Response, int]:
    body = json_object()
    reject_unknown(body, {"question_id", "helpful", "comment"})
    # ask_log.id is a 32-bit integer column; PostgreSQL refuses larger ids with an error.
    question_id = int_field(body, "question_id", low=1, high=2**31 - 1, default=0)
    helpful = body.get("helpful")
    if not isinstance(helpful, bool):
        raise ApiError(400, "wrong_type", "helpful must be true or false.", field="helpful")
    comment = string_field(body, "comment", max_len=2000)
    with core().sessions() as session, session.begin():
        if session.get(AskLog, question_id) is None:
            raise ApiError(404, "unknown_question", "No asked question with that id.")
        row = Feedback(ask_id=question_id, helpful=helpful, comment=comment)
        session.add(row)
        session.flush()
        return jsonify({"id": row.id, "question_id": question_id, "helpful": helpful}), 201


def healthz() -> Response:
    app_core = core()
    with app_core.sessions() as session:
        version, updated = kb_version(session)
        entries = session.scalar(select(func.count()).where(Entry.deleted_at.is_(None)))
    index = app_core.retriever.loaded_index
    # Always 200 while the web process can serve: a queue outage only degrades runs.
    return jsonify(
        {
            "status": "ok",
            "database": app_core.engine.dialect.name,
            "entries": entries,
            "knowledge_version": version,
            "index": {
                "loaded": index is not None,
                "version": index.version if index else None,
                "models": list(app_core.retriever.models),
            },
            "queue": get_queue(current_app.config["QUEUE_URL"]).ping(),
            "sandbox": sandbox_info(),
        }
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_url_rule("/healthz", "healthz", healthz)
