"""The TA workspace at ``/ta``: login, the unanswered queue, feedback, and editor helpers.

The entry pages themselves (list, editor, history, delete/undo) are in ``ta_entries``.
Every page needs a logged-in TA; every unsafe request needs the session's CSRF token.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from knowledge import editing, entry_queries, queue_groups
from knowledge.ask import MAX_QUESTION_CHARS
from knowledge.feedback_stats import feedback_by_entry, recent_unhelpful
from knowledge.render import to_html
from knowledge.schema import LANGS, cited_keys
from knowledge.text import normalize
from service import auth, ta_entries
from service.entry_form import parse_ids
from service.extensions import core
from service.i18n import js_strings, translate
from service.ta_entries import entry_by_slug

bp = Blueprint("ta", __name__, url_prefix="/ta")
auth.guard_staff_blueprint(bp, public_endpoints=frozenset({"ta.login"}))

QUEUE_PAGE = 50  # groups shown at once
MAX_PREVIEW_CHARS = 50_000


# -- login ------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login() -> str | BaseResponse | tuple[str, int]:
    target = auth.local_path(request.values.get("next"), url_for("ta_entries.index"))
    if request.method == "GET":
        if auth.current_user() is not None:
            return redirect(target)
        return render_template("ta/login.html", next=target, username="")
    username = request.form.get("username", "").replace("\x00", "").strip()[:200]
    password = request.form.get("password", "").replace("\x00", "")
    address = request.remote_addr or "?"
    throttle = auth.throttle()
    if throttle.blocked(address, username):
        message = translate("ta.login_throttled")
        return render_template("ta/login.html", next=target, username=username, error=message), 429
    user = auth.check_login(username, password) if username and password else None
    if user is None:
        throttle.failed(address, username)
        message = translate("ta.login_failed")
        return render_template("ta/login.html", next=target, username=username, error=message), 401
    throttle.succeeded(address, username)
    auth.log_in(user)
    return redirect(target)


@bp.post("/logout")
def logout() -> BaseResponse:
    auth.log_out()
    flash(translate("ta.logged_out"), "info")
    return redirect(url_for("ta.login"))


@bp.get("/")
def home() -> BaseResponse:
    return redirect(url_for("ta_entries.index"))


# -- the unanswered queue ---------------------------------------------------
@bp.get("/queue")
def queue() -> str:
    groups = queue_groups.current_groups(core().sessions)
    with core().sessions() as session:
        entries = entry_queries.live_questions(session)
        open_count = queue_groups.count_open(session)
    pages = max(1, -(-len(groups) // QUEUE_PAGE))
    page = request.args.get("page", "1")
    number = min(max(int(page), 1), pages) if page.isdigit() and 0 < len(page) < 6 else 1
    shown = groups[(number - 1) * QUEUE_PAGE : number * QUEUE_PAGE]
    return render_template(
        "ta/queue.html",
        groups=shown,
        answered_now=[_answered_now(g) for g in shown],
        total_groups=len(groups),
        total_questions=sum(g.count for g in groups),
        open_count=open_count,
        page=number,
        pages=pages,
        entries=entries,
    )


def _answered_now(group: queue_groups.QuestionGroup) -> tuple[str, float] | None:
    """The entry that would answer the group's newest question today, if one would (an
    entry or aliases added since it was asked): it can be closed in one click."""
    retriever = core().retriever
    question = group.newest.question
    matches = retriever.rank(normalize(question)[:MAX_QUESTION_CHARS], top_k=2)
    if not matches:
        return None
    second = matches[1].confidence if len(matches) > 1 else None
    decision = retriever.model.decision(matches[0].confidence, second)
    return (matches[0].entry.slug, matches[0].confidence) if decision.answer else None


@bp.post("/queue/resolve")
def resolve_group() -> BaseResponse | tuple[str, int]:
    """Dismiss a group, or mark it answered by an existing entry (optionally adding aliases)."""
    ids = parse_ids(request.form.get("ids", ""))
    action = request.form.get("action", "")
    if not ids or action not in ("dismiss", "link"):
        return _bad_request(translate("ta.queue_bad_action"))
    user = auth.current_user()
    assert user is not None
    if action == "dismiss":
        count = editing.dismiss_queued(core().sessions, ids)
        flash(translate("ta.queue_dismissed", count=count), "info")
        return redirect(url_for("ta.queue", undo=",".join(map(str, ids))))
    slug = request.form.get("slug", "")
    try:
        count = editing.answer_queued(
            core().sessions,
            ids,
            slug,
            author=user.username,
            add_aliases=bool(request.form.get("add_aliases")),
        )
    except editing.NotFound:
        return _bad_request(translate("ta.queue_pick_entry"))
    flash(translate("ta.queue_linked", count=count, slug=slug), "info")
    return redirect(url_for("ta.queue"))


@bp.post("/queue/reopen")
def reopen_group() -> BaseResponse | tuple[str, int]:
    """Undo a dismissal: the questions return to the queue."""
    ids = parse_ids(request.form.get("ids", ""))
    if not ids:
        return _bad_request(translate("ta.queue_bad_action"))
    editing.reopen_queued(core().sessions, ids)
    flash(translate("ta.queue_reopened"), "info")
    return redirect(url_for("ta.queue"))


def _bad_request(message: str) -> tuple[str, int]:
    return render_template("error.html", title=translate("ta.bad_request"), message=message), 400


# -- feedback ---------------------------------------------------------------
@bp.get("/feedback")
def feedback() -> str:
    with core().sessions() as session:
        stats = feedback_by_entry(session)
        entries = entry_queries.live_questions(session)
    rows = [(slug, question, stats.get(slug)) for slug, question in entries]
    # Entries with the lowest helpful ratio first; unrated ones last.
    rows.sort(
        key=lambda r: (
            r[2] is None or r[2].helpful_ratio is None,
            r[2].helpful_ratio if r[2] and r[2].rated else 0,
            r[0],
        )
    )
    return render_template("ta/feedback.html", rows=rows)


@bp.get("/feedback/<slug>")
def entry_feedback(slug: str) -> str | tuple[str, int]:
    with core().sessions() as session:
        entry = entry_by_slug(session, slug)
        if entry is None:
            return render_template(
                "error.html",
                title=translate("error.not_found_title"),
                message=translate("error.not_found"),
            ), 404
        question = entry.question
        stats = feedback_by_entry(session, slug).get(slug)
        unhelpful = recent_unhelpful(session, slug)
    return render_template(
        "ta/entry_feedback.html",
        slug=slug,
        question=question,
        stats=stats,
        unhelpful=unhelpful,
    )


# -- editor helpers (JSON, used by ta.js) -------------------------------------
@bp.post("/preview")
def preview() -> Response | tuple[Response, int]:
    """Markdown -> the sanitised HTML students would see, with unknown citation keys."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _json_error("invalid_body", "Send a JSON object.")
    markdown, keys = body.get("markdown", ""), body.get("keys", [])
    if not isinstance(markdown, str) or len(markdown) > MAX_PREVIEW_CHARS:
        return _json_error("invalid_markdown", "markdown must be a string of at most 50000 chars.")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or len(keys) > 50:
        return _json_error("invalid_keys", "keys must be a list of at most 50 strings.")
    unknown = [k for k in cited_keys(markdown) if k not in keys]
    return jsonify({"html": to_html(markdown, keys), "unknown_keys": unknown})


@bp.post("/similar")
def similar() -> Response | tuple[Response, int]:
    """Existing entries closest to a draft's questions (to avoid duplicates)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("questions"), dict):
        return _json_error("invalid_body", "Send {questions: {en?, ja?}, exclude?}.")
    questions = {
        lang: text
        for lang, text in body["questions"].items()
        if lang in LANGS and isinstance(text, str)
    }
    exclude = body.get("exclude") if isinstance(body.get("exclude"), str) else None
    matches = ta_entries.similar_entries(questions, exclude)
    return jsonify(
        {
            "matches": [
                {
                    "slug": m.slug,
                    "question": m.question,
                    "confidence": round(m.confidence, 3),
                    "likely_duplicate": m.likely_duplicate,
                    "edit_url": url_for("ta_entries.edit", slug=m.slug),
                }
                for m in matches
            ]
        }
    )


def _json_error(code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message}}), 400


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(ta_entries.bp)

    @app.context_processor
    def _ta_context() -> dict[str, Any]:
        """What every TA page uses: the queue badge and the scripts' strings."""
        if request.blueprint not in ("ta", "ta_entries", "ta_tokens") or not auth.current_user():
            return {}
        with core().sessions() as session:
            count = queue_groups.count_open(session)
        return {"queue_count": count, "ta_js_strings": js_strings("ta_js", "params", "common")}
