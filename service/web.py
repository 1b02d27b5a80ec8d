"""Pages: the chat at ``/`` and a permalink page per entry."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, render_template, request
from markupsafe import Markup

from knowledge.store import find_entry
from service import presenters
from service.extensions import core

bp = Blueprint("web", __name__)


@bp.get("/")
def chat() -> str:
    return render_template("chat.html")


@bp.get("/entries/<slug>")
def entry_page(slug: str) -> str:
    lang = request.args.get("lang", "en")
    with core().sessions() as session:
        entry = find_entry(session, slug)
        if entry is None:
            abort(404)
        answer = presenters.answer_json(entry, lang if lang in ("en", "ja") else "en")
    # answer_html is sanitised by knowledge.render (nh3) before it gets here.
    return render_template("entry.html", answer=answer, answer_html=Markup(answer["answer_html"]))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
