"""API tokens on the TA pages: list, create (the secret is shown once), revoke."""

from __future__ import annotations

from flask import Blueprint, Flask, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from knowledge import api_tokens
from knowledge.db import transaction
from service import auth
from service.extensions import core
from service.i18n import translate

bp = Blueprint("ta_tokens", __name__, url_prefix="/ta/tokens")
auth.guard_staff_blueprint(bp)


def _page(status: int = 200, **extra: object) -> tuple[str, int]:
    with core().sessions() as session:
        rows = api_tokens.list_tokens(session)
    return render_template("ta/tokens.html", tokens=rows, scopes=api_tokens.SCOPES, **extra), status


@bp.get("/")
def index() -> tuple[str, int]:
    return _page()


@bp.post("/")
def create() -> tuple[str, int] | BaseResponse:
    name = request.form.get("name", "")
    scopes = request.form.getlist("scopes")
    days_raw = request.form.get("expires_days", "").strip()
    try:
        days = int(days_raw) if days_raw else None
    except ValueError:
        return _page(400, error=translate("tokens.bad_days"), name=name)
    user = auth.current_user()
    try:
        with transaction(core().sessions) as session:
            new = api_tokens.create_token(
                session, name, scopes, expires_in_days=days, user_id=user.id if user else None
            )
    except ValueError as exc:  # bad name, scope or expiry: nothing was stored
        return _page(400, error=str(exc), name=name)
    return _page(201, created=new)


@bp.post("/<int:token_id>/revoke")
def revoke(token_id: int) -> tuple[str, int]:
    try:
        with transaction(core().sessions) as session:
            api_tokens.revoke_token(session, token_id)
    except (LookupError, ValueError) as exc:
        return _page(404, error=str(exc))
    return _page()


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
