"""Request validation and the OpenAPI document, both from the models declared at the routes.

spectree (``@api.validate(json=..., query=..., headers=..., resp=...)``) validates each
request against its pydantic models and generates the OpenAPI 3.1 document from the same
models. Here it parses bodies strictly and turns validation errors into the API's error
envelope; the document gets what spectree cannot declare (security from the views' own
scope markers, response headers, an optional body). ``GET /api/v1/openapi.json`` serves
it and ``/api/docs`` shows it (Swagger UI from the flask-swagger-ui wheel, no CDN).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask_swagger_ui import get_swaggerui_blueprint
from pydantic import BaseModel, ValidationError
from spectree import Response as Responses
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.utils import get_multidict_items

from knowledge.api_tokens import SCOPES
from knowledge.schema import EntryData
from service import api_models as m
from service.errors import ApiError

SPEC_URL = "/api/v1/openapi.json"
DOCS_URL = "/api/docs"
# The page's one inline script (Swagger UI's configuration) is allowed by its hash; no
# other script runs. Swagger UI adds <style> elements as it renders, so styles (not
# scripts) may be inline: the page shows no user content to inject them.
DOCS_CSP = (
    "default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)
MAX_DEPTH = 16
_CONTROL = re.compile(f"[{m.CONTROL_CHARS}]")

ERRORS: dict[int, str] = {
    400: "Invalid request; error.field names the culprit.",
    401: "Missing, malformed, unknown, revoked or expired token "
    "(token_required, invalid_token, token_revoked, token_expired).",
    403: "The token lacks the scope (insufficient_scope), or a logged-in session sent no "
    "CSRF token (csrf_failed).",
    404: "Not found.",
    409: "Conflict.",
    412: "If-Match names an old version (precondition_failed); fetch the entry again.",
    413: "The body is larger than the limit (body_too_large).",
    415: "Session-authenticated writes must send application/json.",
    428: "PUT and DELETE need If-Match or a version (precondition_required).",
    429: "Too many requests (rate_limited); see Retry-After.",
    503: "The run queue is full or unavailable; see Retry-After.",
}
# Codes of the checks a simple request's fields fail, as the API has always named them.
_SIMPLE_CODES = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "string_too_long": "too_long",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
}


def responses(ok: dict[int, Any], *errors: int, **described: Any) -> Responses:
    """spectree's response declaration: ``ok`` by status, then error statuses (the Error
    model with the description above, or one given as ``HTTP_409="..."``)."""
    codes: dict[str, Any] = {f"HTTP_{status}": model for status, model in ok.items()}
    for status in (400, *errors):  # 400 is dropped again where no input is validated
        codes[f"HTTP_{status}"] = (m.Error, ERRORS[status])
    for name, description in described.items():
        codes[name] = (m.Error, description)
    return Responses(**codes)


# -- validation --------------------------------------------------------------------------


class RequestParser(FlaskPlugin):
    """spectree's Flask plugin with the API's own body parsing and error envelope."""

    def request_validation(
        self, request: Any, query: Any, json: Any, form: Any, headers: Any, cookies: Any
    ) -> None:
        body = _json_body(json) if json is not None else None
        request.context = Context(
            _validated(query, get_multidict_items(request.args, query)) if query else None,
            _validated(json, body) if json is not None else None,
            None,
            _validated(headers, dict(request.headers)) if headers else None,
            None,
        )

    def validate_response(
        self, resp: Any, resp_model: Any, skip_validation: bool, force_resp_serialize: bool
    ) -> tuple[Response, None]:
        # Responses are checked against the document by the schemathesis suite, not per
        # request: a view's own response is returned as it is.
        return current_app.make_response(resp), None


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The request body as a JSON object, or a 400. A null for a required field counts as
    that field missing (nulls elsewhere are values the model takes or refuses)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if getattr(model, "optional_body", False):
            return {}
        raise ApiError(400, "invalid_body", "The request body must be a JSON object.")
    try:
        body = json.loads(raw, parse_float=_number)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "The request body must be a JSON object.")
    try:  # a lone surrogate (e.g. "\ud800") parses, but no database or encoder takes it
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        raise ApiError(400, "invalid_unicode", "The body holds invalid Unicode.") from None
    if issubclass(model, EntryData):
        _check_values(body)
    # null for a required field is a missing field
    fields = model.model_fields
    return {
        k: v
        for k, v in body.items()
        if v is not None or k not in fields or not fields[k].is_required()
    }


def _number(text: str) -> float | int:
    """A JSON number with a fraction or exponent. One whose value is whole is the integer
    (JSON Schema's "integer" includes 3.0, and so does the document): 20.0 is 20."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _check_values(value: Any, path: str = "", depth: int = 0) -> None:
    """Refuse nesting deeper than MAX_DEPTH and control characters in any string."""
    if depth > MAX_DEPTH:
        raise ApiError(400, "too_deep", f"The body nests deeper than {MAX_DEPTH} levels.")
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise ApiError(
                400,
                "invalid_characters",
                f"{path or 'body'}: control characters (such as NUL) are not allowed.",
                field=path or None,
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            _check_values(key, child, depth + 1)
            _check_values(item, child, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_values(item, f"{path}.{i}" if path else str(i), depth + 1)


def _validated(model: type[BaseModel], value: Any) -> BaseModel:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise refusal(field_errors(exc), model) from None


def field_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Pydantic's errors as ``{"field", "code", "message"}``, fields as dotted paths."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        parts = [str(p) for p in err["loc"] if p != "[key]"]
        # A cross-field rule names its field in the context (knowledge.schema.rule_error).
        parts = parts or str(err.get("ctx", {}).get("field", "body")).split(".")
        field = ".".join(([prefix] if prefix else []) + parts)
        message = str(err["msg"]).removeprefix("Value error, ")
        out.append({"field": field, "code": str(err["type"]), "message": message})
    return out


def refusal(errors: list[dict[str, str]], model: type[BaseModel]) -> ApiError:
    """The 400 for invalid fields. An entry's content: ``validation_failed`` listing every
    field. Anything else (and an entry write's ``version``): the first field's own code."""
    first = next((e for e in errors if e["field"] == "version"), errors[0])
    field, message = first["field"], first["message"]
    if issubclass(model, EntryData) and field != "version":
        return ApiError(400, "validation_failed", f"{field}: {message}", field=field, errors=errors)
    code = first["code"]
    if code in _SIMPLE_CODES:
        code = _SIMPLE_CODES[code]
    elif code.endswith(("_type", "_parsing")):
        code = "wrong_type"
    elif code in ("literal_error", "enum", "string_pattern_mismatch"):
        code = "invalid_" + field.lower().replace("-", "_")
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    if code == "unknown_field":
        message = f"unknown field; allowed: {', '.join(sorted(fields))}"
    elif first["code"] == "string_pattern_mismatch" and field in fields:
        examples = fields[field].examples
        message = f"not in the expected form, such as {examples[0]}" if examples else message
    return ApiError(400, code, f"{field}: {message}", field=field)


api = SpecTree(
    backend=RequestParser,
    mode="strict",  # only the routes declared with @api.validate
    annotations=True,  # a view's ``json``/``query``/``headers`` arguments get the models
    validation_error_status=400,
    validation_error_model=m.Error,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    title="Runnable Answers API",
    version="1.0.0",
    description=(
        "Ask questions, read and curate entries, and run the experiments behind answers. "
        "Tokens are created by TAs (`flask --app service tokens create`) and sent as "
        f"`Authorization: Bearer <token>`; scopes are {', '.join(SCOPES)}. Errors are always "
        '`{"error": {"code", "message", "field"?}}`. Ask and run are rate limited per '
        "token, or per client address without a token."
    ),
    security_schemes=[
        SecurityScheme(
            name="bearerAuth",
            data=SecuritySchemeData(
                type=SecureType.HTTP,
                scheme="bearer",
                description=f"An API token (ra_…) with scopes from: {', '.join(SCOPES)}.",
            ),
        )
    ],
)


# -- the document ---------------------------------------------------------------------------

TAGS = [
    {"name": "ask", "description": "Questions and feedback."},
    {"name": "entries", "description": "Curated entries (write needs the write scope)."},
    {"name": "runs", "description": "Experiments and their runs."},
    {"name": "service", "description": "Health and this document."},
]
RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
ETAG = {
    "description": 'The entry\'s version as a strong ETag, e.g. "3"; send it as If-Match.',
    "required": True,
    "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
}
LOCATION = {
    "description": "URL of the new resource.",
    "required": True,
    "schema": {"type": "string"},
}
RATE_HEADERS = {
    f"X-RateLimit-{name}": {"description": text, "schema": {"type": "string"}}
    for name, text in (
        ("Limit", "Requests allowed in the window."),
        ("Remaining", "Requests left in the window."),
        ("Reset", "When the window resets (Unix time)."),
    )
}
# Response headers the views set, by operation and status (spectree declares bodies only).
RESPONSE_HEADERS: dict[tuple[str, str], dict[str, Any]] = {
    ("ask", "200"): RATE_HEADERS,
    ("createEntry", "201"): {"ETag": ETAG, "Location": LOCATION},
    ("getEntry", "200"): {"ETag": ETAG},
    ("updateEntry", "200"): {"ETag": ETAG},
    ("startRun", "200"): RATE_HEADERS,
    ("startRun", "202"): {"Location": LOCATION, **RATE_HEADERS},
}
ERROR_HEADERS: dict[str, dict[str, Any]] = {
    "401": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "412": {"ETag": {**ETAG, "required": False}},
    "429": {"Retry-After": RETRY_AFTER},
    "503": {"Retry-After": RETRY_AFTER},
}


def document() -> dict[str, Any]:
    """This app's document (built once per app: security depends on REQUIRE_TOKEN_FOR_READ)."""
    cached = current_app.extensions.get("openapi_document")
    if cached is None:
        cached = _complete(copy.deepcopy(api.spec), current_app)
        current_app.extensions["openapi_document"] = cached
    return cached


def _complete(doc: dict[str, Any], app: Flask) -> dict[str, Any]:
    """What spectree does not declare: security (from each view's auth marker), response
    headers, an optional body, and no 400 where nothing is validated."""
    doc["info"]["summary"] = "Course Q&A with curated answers and experiments you can run."
    doc["tags"] = TAGS
    adapter = app.url_map.bind("localhost")
    for path, method, op in _operations(doc):
        endpoint, _ = adapter.match(re.sub(r"\{[a-z_]+\}", "1", path), method=method.upper())
        op["security"] = _security(app.view_functions[endpoint], app)
        for status, response in op["responses"].items():
            headers = RESPONSE_HEADERS.get((op["operationId"], status)) or ERROR_HEADERS.get(status)
            if headers:
                response["headers"] = headers
        body = op.get("requestBody")
        if body:
            model = getattr(m, body["content"]["application/json"]["schema"]["$ref"].split("/")[-1])
            body["required"] = not getattr(model, "optional_body", False)
        elif not any(p["in"] != "path" for p in op["parameters"]):
            del op["responses"]["400"]
        for key in ("parameters", "description"):
            if not op[key]:
                del op[key]
    doc.pop("security", None)
    return doc


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def _security(view: Any, app: Flask) -> list[dict[str, list[str]]]:
    """What the view's auth decorator requires (service.auth_tokens marks it)."""
    if not hasattr(view, "required_scope"):
        return []  # open: health and this document
    scope = view.required_scope
    need = {"bearerAuth": [scope] if scope else []}
    optional = view.anonymous and not app.config.get("REQUIRE_TOKEN_FOR_READ")
    return [{}, need] if optional else [need]


bp = Blueprint("api_document", __name__)


@bp.get(SPEC_URL)
@api.validate(resp=Responses(HTTP_200=m.Document), tags=["service"], operation_id="openapi")
def openapi_json() -> Response:
    """This document"""
    response = jsonify(document())
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
    """Nothing loads from elsewhere, no other inline script runs, no site may frame it."""
    scripts = ["'self'"]
    if response.mimetype == "text/html" and not response.direct_passthrough:
        scripts += [
            "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
            for script in _INLINE_SCRIPT.findall(response.get_data())
        ]
    response.headers["Content-Security-Policy"] = DOCS_CSP.format(scripts=" ".join(scripts))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
