"""JSON errors under /api: ``{"error": {"code", "message", "field"?}}`` with the right 4xx."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

log = logging.getLogger(__name__)

# Stable codes for the HTTP errors Werkzeug raises itself.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.extra = extra


def error_response(
    status: int, code: str, message: str, field: str | None = None, **extra: object
) -> Response:
    body: dict[str, object] = {"code": code, "message": message}
    if field:
        body["field"] = field
    body.update(extra)
    response = jsonify({"error": body})
    response.status_code = status
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/")


MAX_HEADER_CHARS = 8192  # gunicorn reads up to 32 KiB (gunicorn_conf); longer is refused here
DRAIN_LIMIT = 8 * 1024 * 1024  # bytes of a too-large body read (and dropped) before a 413
DRAIN_WAIT_S = 1.0


def _refuse_long_headers() -> Response | None:
    """A header longer than MAX_HEADER_CHARS: a JSON 431 under /api (not gunicorn's page)."""
    for name, value in request.headers.items():
        if len(value) > MAX_HEADER_CHARS:
            response = error_response(
                431,
                "header_too_large",
                f"The {name} header is longer than {MAX_HEADER_CHARS} characters.",
            )
            response.headers["Connection"] = "close"
            return response if _wants_json() else Response("Header too large", 431)
    return None


def _too_large(exc: RequestEntityTooLarge) -> Response:
    """413 for a body over MAX_CONTENT_LENGTH, said so that the client can read it.

    What has arrived of the body (up to DRAIN_LIMIT bytes, waiting at most DRAIN_WAIT_S
    for more) is read and dropped first: closing a socket with unread data can reset the
    connection before the client reads the answer. The connection is then closed, as
    the answer says (under gunicorn, ``pre_request`` in gunicorn_conf marks it), since
    the rest of the body would otherwise be read as the next request.
    """
    _drain(request.environ, min(request.content_length or 0, DRAIN_LIMIT))
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    message = f"The request body is larger than {limit} bytes." if limit else "Body too large."
    if _wants_json():
        response = error_response(413, "body_too_large", message)
    else:
        response = Response(message, 413, mimetype="text/plain")
    response.headers["Connection"] = "close"
    return response


def _drain(wsgi: dict[str, Any], budget: int) -> None:
    sock, stream = wsgi.get("gunicorn.socket"), wsgi.get("wsgi.input")
    if sock is None or stream is None:
        return  # another server: it handles the unread body itself
    previous = sock.gettimeout()
    sock.settimeout(DRAIN_WAIT_S)
    try:
        while budget > 0 and (chunk := stream.read(min(budget, 65536))):
            budget -= len(chunk)
    except OSError:  # nothing more arrived in time (or the client went away)
        pass
    finally:
        sock.settimeout(previous)


def init_app(app: Flask) -> None:
    app.before_request(_refuse_long_headers)
    app.register_error_handler(RequestEntityTooLarge, _too_large)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = error_response(exc.status, exc.code, exc.message, exc.field, **exc.extra)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException:
        if not _wants_json():  # a page: the styled one when the pages are installed
            page = current_app.extensions.get("error_page")
            return page(exc) if page is not None else exc
        status = exc.code or 500
        response = error_response(
            status, HTTP_CODES.get(status, "http_error"), exc.description or ""
        )
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response | tuple[str, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return error_response(500, "internal_error", "Something went wrong on our side.")
        return "Internal server error", 500
