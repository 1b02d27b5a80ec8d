"""``GET /api/v1/openapi.json`` and the docs page at ``/api/docs`` (Swagger UI, local assets).

The Swagger UI files come from the flask-swagger-ui wheel: nothing is loaded from a CDN.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from flask_swagger_ui import get_swaggerui_blueprint

from service.openapi_spec import build_spec

SPEC_URL = "/api/v1/openapi.json"
DOCS_URL = "/api/docs"
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)

bp = Blueprint("openapi", __name__)


def spec() -> dict[str, Any]:
    """The app's document (built once per app; it depends on REQUIRE_TOKEN_FOR_READ)."""
    cached = current_app.extensions.get("openapi_spec")
    if cached is None:
        cached = build_spec(
            require_token_for_read=bool(current_app.config.get("REQUIRE_TOKEN_FOR_READ"))
        )
        current_app.extensions["openapi_spec"] = cached
    return cached


@bp.get(SPEC_URL)
def openapi_json() -> Response:
    response = jsonify(spec())
    response.headers["Cache-Control"] = "no-cache"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    docs = get_swaggerui_blueprint(
        DOCS_URL,
        SPEC_URL,
        config={
            "app_name": "Runnable Answers API",
            "validatorUrl": None,  # the default would call validator.swagger.io
            "deepLinking": True,
            "persistAuthorization": False,
        },
        blueprint_name="api_docs",
    )
    docs.after_request(_docs_headers)
    app.register_blueprint(docs)


def _docs_headers(response: Response) -> Response:
    """Swagger UI needs its inline config script and styles; nothing may load from elsewhere."""
    response.headers.setdefault("Content-Security-Policy", DOCS_CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response
