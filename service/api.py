"""JSON API for the chat page and course-forum bots (``/api/v1``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from sqlalchemy.orm import Session

from knowledge import entry_queries
from knowledge.ask import QuestionError
from knowledge.entry_store import find_entry, get_course, kb_version
from knowledge.feedback import UnknownEntry, UnknownQuestion
from knowledge.feedback import record as record_feedback
from knowledge.tables import Course, Entry
from knowledge.text import normalize
from runners.jobs import get_queue
from runners.sandbox import sandbox_info
from service import api_models as m
from service import presenters
from service.auth_tokens import require_read, require_scope
from service.errors import ApiError
from service.extensions import core
from service.limits import client_pseudonym
from service.openapi import api, responses
from service.write_api import etag

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.post("/ask")
@require_scope("ask", anonymous=True)
@api.validate(
    resp=responses(
        {200: m.AskResponse}, 401, 403, 413, 429, HTTP_404="No such course (unknown_course)."
    ),
    tags=["ask"],
    operation_id="ask",
)
def ask(json: m.AskRequest) -> Response:
    """Ask a question; get the closest curated answer or an abstention"""
    course = json.course.replace("\x00", "") if json.course is not None else None
    if course is not None:
        with core().sessions() as session:
            if get_course(session, course) is None:
                raise ApiError(404, "unknown_course", f"No course {course!r}.", field="course")
    try:
        result = core().retriever.ask(
            json.question.replace("\x00", ""),  # PostgreSQL cannot store NUL in text
            course=course,
            lang=json.lang,
            top_k=json.top_k,
            client=client_pseudonym(),
        )
    except QuestionError as exc:
        raise ApiError(400, exc.code, str(exc), field="question") from None

    matches = result.matches
    course_help = None
    if result.abstained:
        matches = result.related
        if not matches:  # nothing close: say where such questions belong, if the course does
            with core().sessions() as session:
                help_course = entry_queries.course_help(session, course)
                if help_course is not None:
                    texts = help_course.help_text or {}
                    course_help = {
                        "text": texts[presenters.pick_lang(texts, result.lang)] if texts else None,
                        "url": help_course.help_url,
                    }
    answer = None
    if result.best is not None:
        answer = presenters.cached_answer_json(result.best.entry, result.lang, _entry_by_id)
    payload: dict[str, Any] = {
        "abstained": result.abstained,
        "confidence": round(result.confidence, 4),
        "answer": answer,
        "matches": [presenters.match_json(m.entry, m.confidence, result.lang) for m in matches],
        "question_id": result.ask_id,
        "lang": result.lang,
        "did_you_mean": (
            [presenters.match_json(m.entry, m.confidence, result.lang) for m in result.matches[:2]]
            if result.ambiguous
            else []
        ),
        "off_topic": result.abstained and not matches,
        "course_help": course_help,
    }
    return jsonify(payload)


def _entry_by_id(entry_id: int) -> Entry:
    with core().sessions() as session:
        return entry_queries.entry_with_details(session, entry_id)


@bp.get("/entries")
@require_read
@api.validate(
    query=m.EntryListQuery,
    resp=responses({200: m.EntryList}, 401),
    tags=["entries"],
    operation_id="listEntries",
)
def list_entries(query: m.EntryListQuery) -> Response:
    """List entries (search, paging)"""
    entries = entry_queries.live_entries(normalize(query.q)[:200], course=query.course)
    with core().sessions() as session:
        rows, total = entry_queries.page_of(
            session, entries, Course.code, Entry.slug, page=query.page, per_page=query.per_page
        )
        items = [presenters.entry_summary(e) for e in rows]
    return jsonify({"items": items, "page": query.page, "per_page": query.per_page, "total": total})


@bp.get("/entries/<slug>")
@require_read
@api.validate(
    query=m.CourseQuery,
    resp=responses({200: m.EntryDetail}, 401, 404),
    tags=["entries"],
    operation_id="getEntry",
)
def get_entry(slug: str, query: m.CourseQuery) -> Response:
    """One entry, with its ETag"""
    with core().sessions() as session:
        entry = _entry_or_404(session, slug, query.course)
        response = jsonify(presenters.entry_detail(entry))
        response.headers["ETag"] = etag(entry.version)
        return response


@bp.get("/entries/<slug>/answer")
@require_read
@api.validate(
    query=m.AnswerQuery,
    resp=responses({200: m.Answer}, 401, 404),
    tags=["entries"],
    operation_id="getAnswer",
)
def get_answer(slug: str, query: m.AnswerQuery) -> Response:
    """One entry's answer as /ask shows it, in a language"""
    with core().sessions() as session:
        entry = _entry_or_404(session, slug, query.course)
        return jsonify(presenters.answer_json(entry, query.lang or "en"))


def _entry_or_404(session: Session, slug: str, course: str | None) -> Entry:
    entry = find_entry(session, slug, course)
    if entry is None:
        raise ApiError(404, "unknown_slug", f"No entry with slug {slug!r}.")
    return entry


@bp.post("/feedback")
@require_scope("ask", anonymous=True)
@api.validate(
    resp=responses(
        {201: m.FeedbackResponse, 200: (m.FeedbackResponse, "An earlier vote was changed.")},
        401,
        403,
        404,
        413,
    ),
    tags=["ask"],
    operation_id="feedback",
)
def feedback(json: m.FeedbackRequest) -> tuple[Response, int]:
    """Rate an answer (or change the rating)"""
    comment = json.comment.replace("\x00", "") if json.comment else json.comment
    try:
        vote = record_feedback(
            core().sessions, json.question_id, json.helpful, comment, json.suggested_slug
        )
    except UnknownQuestion:
        raise ApiError(404, "unknown_question", "No asked question with that id.") from None
    except UnknownEntry as exc:
        raise ApiError(
            404, "unknown_slug", f"No entry with slug {exc.slug!r}.", field="suggested_slug"
        ) from None
    body = {
        "id": vote.id,
        "question_id": vote.ask_id,
        "helpful": vote.helpful,
        "suggested_slug": vote.suggested_slug,
    }
    return jsonify(body), 201 if vote.created else 200


@api.validate(resp=responses({200: m.Health}), tags=["service"], operation_id="healthz")
def healthz() -> Response:
    """Liveness, database, knowledge version and index status"""
    app_core = core()
    with app_core.sessions() as session:
        version, updated = kb_version(session)
        entries = entry_queries.live_count(session)
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
                "source": index.base.source if index else None,
                "base_version": index.base.version if index else None,
                "changed_entries": len(index.delta) if index else None,
                "graph": index.uses_ann if index else None,
            },
            "queue": get_queue(current_app.config["QUEUE_URL"]).ping(),
            "sandbox": sandbox_info(),
        }
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_url_rule("/healthz", "healthz", healthz)
