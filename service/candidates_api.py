"""The TAs' review queues over HTTP, for review tools (write scope): the candidates mined
from forum exports and the declined questions waiting for an answer."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify

from knowledge import queue_groups
from knowledge.forum import review
from service import api_models as m
from service.auth_tokens import require_scope
from service.errors import ApiError
from service.extensions import core
from service.openapi import api, responses

bp = Blueprint("candidates", __name__, url_prefix="/api/v1")


@bp.get("/candidates")
@require_scope("write")
@api.validate(
    query=m.CandidateListQuery,
    resp=responses({200: m.CandidateList}, 401, 403),
    tags=["candidates"],
    operation_id="listCandidates",
)
def list_candidates(query: m.CandidateListQuery) -> Response:
    """Draft entries mined from forum exports, best first (write scope)"""
    with core().sessions() as session:
        found = review.list_candidates(
            session,
            course=query.course,
            status=query.status,
            kind=query.kind,
            page=query.page,
            per_page=query.per_page,
        )
        items = [
            review.candidate_json(c, found.course_codes[c.course_id]) for c in found.candidates
        ]
    return jsonify(
        {"candidates": items, "page": query.page, "per_page": query.per_page, "total": found.total}
    )


@bp.get("/candidates/<int(max=2147483647):candidate_id>")
@require_scope("write")
@api.validate(
    resp=responses({200: m.Candidate}, 401, 403, 404),
    tags=["candidates"],
    operation_id="getCandidate",
)
def get_candidate(candidate_id: int) -> Response:
    """One mined candidate (write scope)"""
    with core().sessions() as session:
        try:
            candidate = review.get_candidate(session, candidate_id)
        except review.CandidateNotFound:
            raise ApiError(404, "not_found", f"No candidate {candidate_id}.") from None
        code = review.course_code(session, candidate.course_id)
        return jsonify(review.candidate_json(candidate, code))


@bp.get("/unanswered")
@require_scope("write")
@api.validate(
    query=m.UnansweredQuery,
    resp=responses({200: m.UnansweredList}, 401, 403),
    tags=["candidates"],
    operation_id="listUnanswered",
)
def list_unanswered(query: m.UnansweredQuery) -> Response:
    """Declined questions, grouped across wording and language, newest first (write scope)"""
    groups = queue_groups.current_groups(core().sessions, query.course)
    with core().sessions() as session:
        open_count = queue_groups.count_open(session)
    start = (query.page - 1) * query.per_page
    shown = groups[start : start + query.per_page]
    return jsonify(
        {
            "groups": [
                {
                    "count": g.count,
                    "langs": g.langs,
                    "questions": [
                        {
                            "id": q.id,
                            "question": q.question,
                            "lang": q.lang,
                            "asked_at": q.created_at.isoformat(),
                            "nearest_entry": q.best_slug,
                            "confidence": round(q.confidence, 4),
                        }
                        for q in g.questions
                    ],
                }
                for g in shown
            ],
            "page": query.page,
            "per_page": query.per_page,
            "total": len(groups),
            "open_questions": open_count,
        }
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
