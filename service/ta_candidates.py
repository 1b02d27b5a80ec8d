"""The TAs' Candidates view at ``/ta/candidates``: entries mined from a forum export,
waiting for review. Accept opens the editor prefilled (``ta_entries.new``); merge adds a
candidate's phrasings to an entry as aliases; reject is remembered."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from knowledge import editing, entry_queries
from knowledge.forum import review
from service import auth
from service.extensions import core
from service.i18n import translate

bp = Blueprint("ta_candidates", __name__, url_prefix="/ta/candidates")
auth.guard_staff_blueprint(bp)

PAGE_SIZE = 20
VIEWS: dict[str, tuple[review.Status | tuple[review.Status, ...], review.Kind | None]] = {
    "answered": ("open", "answered"),  # tab -> (status, kind)
    "unanswered": ("open", "unanswered"),  # asked often, no staff answer: listed apart
    "rejected": ("rejected", None),
    "done": (("accepted", "merged"), None),
}


def _number(text: str) -> int:
    return max(1, int(text)) if text.isdigit() and 0 < len(text) < 6 else 1


@bp.get("")
def index() -> str:
    view = request.args.get("view", "answered")
    if view not in VIEWS:
        view = "answered"
    status, kind = VIEWS[view]
    page = _number(request.args.get("page", "1"))
    with core().sessions() as session:
        found = review.list_candidates(
            session, status=status, kind=kind, page=page, per_page=PAGE_SIZE
        )
        counts = {
            name: review.count_candidates(session, status=s, kind=k)
            for name, (s, k) in VIEWS.items()
        }
        entries = entry_queries.live_questions(session)
    return render_template(
        "ta/candidates.html",
        view=view,
        candidates=found.candidates,
        total=found.total,
        counts=counts,
        page=page,
        pages=max(1, -(-found.total // PAGE_SIZE)),
        entries=entries,
    )


@bp.post("/<int(max=2147483647):candidate_id>/reject")
def reject(candidate_id: int) -> BaseResponse | tuple[str, int]:
    return _decide(candidate_id, "rejected")


@bp.post("/<int(max=2147483647):candidate_id>/reopen")
def reopen(candidate_id: int) -> BaseResponse | tuple[str, int]:
    return _decide(candidate_id, "open")


def _decide(
    candidate_id: int, status: Literal["open", "rejected"]
) -> BaseResponse | tuple[str, int]:
    user = auth.current_user()
    assert user is not None
    try:
        review.decide(core().sessions, candidate_id, status, author=user.username)
    except review.CandidateNotFound:
        return _not_found()
    except review.Decided as exc:
        return _bad_request(translate("ta.candidate_decided", status=exc.status))
    flash(translate("ta.candidate_" + ("rejected" if status == "rejected" else "reopened")), "info")
    return redirect(url_for("ta_candidates.index", view=request.form.get("view", "answered")))


@bp.post("/<int(max=2147483647):candidate_id>/merge")
def merge(candidate_id: int) -> BaseResponse | tuple[str, int]:
    user = auth.current_user()
    assert user is not None
    slug = request.form.get("slug", "")
    try:
        added = editing.merge_candidate(core().sessions, candidate_id, slug, author=user.username)
    except review.CandidateNotFound:
        return _not_found()
    except editing.NotFound:
        return _bad_request(translate("ta.queue_pick_entry"))
    except review.Decided as exc:
        return _bad_request(translate("ta.candidate_decided", status=exc.status))
    flash(translate("ta.candidate_merged", slug=slug, count=added), "success")
    return redirect(url_for("ta_candidates.index", view=request.form.get("view", "answered")))


def _bad_request(message: str) -> tuple[str, int]:
    return render_template("error.html", title=translate("ta.bad_request"), message=message), 400


def _not_found() -> tuple[str, int]:
    return (
        render_template(
            "error.html", title=translate("ta.bad_request"), message=translate("ta.candidate_gone")
        ),
        404,
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
