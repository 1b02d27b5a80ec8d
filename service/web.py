"""Student pages: the chat at ``/``, a permalink page per entry, and the language switch."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from knowledge.entry_store import find_entry
from knowledge.schema import is_slug
from knowledge.text import passages
from service import auth, i18n, presenters
from service.auth import harden, local_path
from service.extensions import core
from service.i18n import LANGS, js_strings, remember_lang, translate, ui_lang

bp = Blueprint("web", __name__)
bp.after_request(harden)

# Shown on the empty chat page; clicking one asks it.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Why divide attention logits by √d?", "en"),
    ("バッチ正規化をVAEで使ってもいいですか？", "ja"),
    ("What is double descent?", "en"),
    ("埋め込みの次元はどう決めればいいですか？", "ja"),
)
PAGE_STRINGS = ("common", "chat", "run", "params", "lang")


@bp.get("/")
def chat() -> str:
    return render_template("chat.html", examples=EXAMPLES, js_strings=js_strings(*PAGE_STRINGS))


@bp.get("/entries/<slug>")
def entry_page(slug: str) -> str | Response:
    wanted = request.args.get("lang") or ui_lang()
    if wanted not in LANGS:
        wanted = ui_lang()
    if not is_slug(slug):
        return not_found()
    with core().sessions() as session:
        entry = find_entry(session, slug)
        if entry is None:
            return not_found()
        answer = presenters.answer_json(entry, wanted)
        available = [lang for lang in LANGS if lang in entry.answer]
    summary = next(iter(passages(answer["answer_markdown"])), answer["question"])[:240]
    return render_template(
        "entry.html",
        answer=answer,
        # answer_html is sanitised by knowledge.render (nh3) before it gets here.
        answer_html=Markup(answer["answer_html"]),
        available=available,
        summary=summary,
        js_strings=js_strings(*PAGE_STRINGS),
        lang_switch_next=url_for("web.entry_page", slug=slug),
    )


@bp.get("/lang/<code>")
def set_lang(code: str) -> BaseResponse:
    """Switch the interface language, remember it in a cookie, and go back."""
    if code not in LANGS:
        return not_found()
    response = redirect(local_path(request.args.get("next"), url_for("web.chat")))
    remember_lang(response, code)
    return response


def not_found() -> Response:
    return error_page(404, translate("error.not_found_title"), translate("error.not_found"))


def error_page(status: int, title: str, message: str, **extra: object) -> Response:
    return Response(
        render_template("error.html", title=title, message=message, **extra),
        status=status,
        mimetype="text/html",
    )


@bp.errorhandler(HTTPException)
def _page_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 404:
        return harden(not_found())
    page = error_page(status, f"{status} {exc.name}", exc.description or "")
    for name, value in exc.get_headers():  # e.g. Allow on a 405
        if name.lower() != "content-type":
            page.headers[name] = value
    return harden(page)


def init_app(app: Flask) -> None:
    app.extensions["error_page"] = _page_error  # any page URL, not only this blueprint's
    i18n.init_app(app)
    auth.init_app(app)
    app.register_blueprint(bp)
