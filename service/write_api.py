"""Write API: create, update and delete entries with per-field errors and no lost updates.

- ``POST /api/v1/entries`` creates an entry (201, ``ETag`` and ``Location``).
- ``PUT /api/v1/entries/<slug>`` replaces it; ``DELETE`` soft-deletes it (204).
- PUT and DELETE need a precondition: ``If-Match: "<version>"`` (a stale one gets 412) or
  the version the client edited, as ``version`` in the PUT body or ``?version=`` on DELETE
  (a stale one gets 409). Without one: 428. The version check, the entry's
  ``version_id_col`` and a write lock taken first make a lost update impossible.
- The writes themselves, with the lock, the version check and the revision, are
  ``knowledge.editing``'s; this module parses, validates and translates its refusals.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, jsonify, request, url_for
from pydantic import ValidationError
from sqlalchemy import ColumnElement

from knowledge import editing
from knowledge.schema import EntryData
from knowledge.tables import Citation as CitationRow
from knowledge.tables import Course, Entry
from runners import registry
from service import presenters
from service.auth_tokens import current_principal, require_scope
from service.errors import ApiError
from service.extensions import core
from service.request_bodies import json_object, reject_unknown

bp = Blueprint("write", __name__, url_prefix="/api/v1")

ENTRY_FIELDS = frozenset(EntryData.model_fields)


def _length(column: ColumnElement[Any]) -> int:
    length = getattr(column.type, "length", None)
    assert isinstance(length, int), column
    return length


COLUMN_LIMITS: dict[str, int] = {
    "course": _length(Course.__table__.c.code),
    "venue": _length(CitationRow.__table__.c.venue),
}
MAX_DEPTH = 16
MAX_VERSION = 2**31 - 1
# One entity tag as GET returned it ("3"); W/"3" and a bare 3 are taken for the same version.
IF_MATCH_RE = re.compile(r'^\s*(?:W/)?(?:"[0-9]{1,18}"|[0-9]{1,18})\s*$')
# Control characters other than tab, newline and carriage return (NUL included).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
T = TypeVar("T")


def etag(version: int) -> str:
    return f'"{version}"'


@bp.post("/entries")
@require_scope("write")
def create_entry() -> tuple[Response, int, dict[str, str]]:
    body = json_object()
    reject_unknown(body, set(ENTRY_FIELDS))
    check_values(body)
    data = validate_entry(body)
    try:
        result, _ = editing.create(core().sessions, data, author=_author())
    except editing.SlugTaken:
        raise _slug_taken(data.slug) from None
    entry = result.entry
    headers = {
        "ETag": etag(entry.version),
        "Location": url_for("api.get_entry", slug=entry.slug, course=entry.course.code),
    }
    return jsonify(presenters.entry_detail(entry)), 201, headers


@bp.put("/entries/<slug>")
@require_scope("write")
def update_entry(slug: str) -> tuple[Response, int, dict[str, str]]:
    body = json_object()
    reject_unknown(body, set(ENTRY_FIELDS) | {"version"})
    check_values(body)
    expected = precondition(body.pop("version", None), "body")
    if body.get("slug", slug) != slug:
        raise ApiError(
            400, "slug_mismatch", "The slug in the body differs from the URL.", field="slug"
        )

    def changes(entry: Entry) -> EntryData:
        course = entry.course.code
        if body.get("course", course) != course:
            raise ApiError(
                400,
                "course_mismatch",
                f"The entry belongs to {course!r}; moving entries is not supported.",
                field="course",
            )
        return validate_entry({**body, "slug": slug, "course": course})

    result = _edit(
        slug,
        expected,
        lambda: editing.update(
            core().sessions,
            slug,
            changes,
            author=_author(),
            expected=[v for v, _ in expected],
            course=request.args.get("course"),
        ),
    )
    entry = result.entry
    return jsonify(presenters.entry_detail(entry)), 200, {"ETag": etag(entry.version)}


@bp.delete("/entries/<slug>")
@require_scope("write")
def remove_entry(slug: str) -> tuple[str, int]:
    expected = precondition(_query_version(), "query")
    _edit(
        slug,
        expected,
        lambda: editing.delete(
            core().sessions,
            slug,
            author=_author(),
            expected=[v for v, _ in expected],
            course=request.args.get("course"),
        ),
    )
    return "", 204


def _edit(slug: str, expected: list[tuple[int, str]], write: Callable[[], T]) -> T:
    """Run an edit of an existing entry; its refusals as API errors."""
    try:
        return write()
    except editing.NotFound:
        raise ApiError(404, "unknown_slug", f"No entry with slug {slug!r}.") from None
    except editing.Stale as exc:
        # 412 if the If-Match version is the stale one, else 409 (body or query version).
        stale = [source for version, source in expected if version != exc.current]
        source = stale[0] if exc.current is not None and stale else expected[0][1]
        raise _stale(source, exc.current) from None


# -- validation ------------------------------------------------------------------


def check_values(value: Any, path: str = "", depth: int = 0) -> None:
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
            check_values(key, child, depth + 1)
            check_values(item, child, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_values(item, f"{path}.{i}" if path else str(i), depth + 1)


def validate_entry(body: dict[str, Any]) -> EntryData:
    """EntryData from the body, the runner checked against the registry; 400 per field."""
    try:
        data = EntryData.model_validate(body)
    except ValidationError as exc:
        raise _invalid(_errors(exc)) from None
    too_long = column_errors(data)
    if too_long:
        raise _invalid(too_long)
    if data.runner is not None:
        if data.runner.name not in registry.EXPERIMENTS:
            raise _invalid(
                [
                    {
                        "field": "runner.name",
                        "code": "unknown_experiment",
                        "message": f"Unknown experiment {data.runner.name!r}; "
                        f"known: {', '.join(registry.names())}.",
                    }
                ]
            )
        try:
            registry.spec(data.runner.name).Params.model_validate(data.runner.params)
        except ValidationError as exc:
            raise _invalid(_errors(exc, prefix="runner.params")) from None
    return data


def column_errors(data: EntryData) -> list[dict[str, str]]:
    """Fields EntryData allows longer than their database column (PostgreSQL would refuse)."""
    values = [("course", data.course, COLUMN_LIMITS["course"])]
    values += [
        (f"citations.{i}.venue", c.venue, COLUMN_LIMITS["venue"])
        for i, c in enumerate(data.citations)
    ]
    return [
        {
            "field": field,
            "code": "string_too_long",
            "message": f"String should have at most {limit} characters",
        }
        for field, value, limit in values
        if len(value) > limit
    ]


def _errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        parts = [str(p) for p in err["loc"] if p != "[key]"]
        # A cross-field rule names its field in the context (knowledge.schema.rule_error).
        parts = parts or str(err.get("ctx", {}).get("field", "body")).split(".")
        field = ".".join(([prefix] if prefix else []) + parts)
        message = str(err["msg"]).removeprefix("Value error, ")
        out.append({"field": field, "code": str(err["type"]), "message": message})
    return out


def _invalid(errors: list[dict[str, str]]) -> ApiError:
    first = errors[0]
    return ApiError(
        400,
        "validation_failed",
        f"{first['field']}: {first['message']}",
        field=first["field"],
        errors=errors,
    )


# -- preconditions -----------------------------------------------------------------


def precondition(value: Any, source: str) -> list[tuple[int, str]]:
    """The versions the client says it edited, with where each came from ("if-match",
    "body" or "query"); If-Match first. None at all: 428."""
    expected: list[tuple[int, str]] = []
    header = request.headers.get("If-Match")
    if header is not None:
        expected.append((_if_match_version(header), "if-match"))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
            raise ApiError(
                400, "wrong_type", "version must be a positive integer.", field="version"
            )
        expected.append((value, source))
    if not expected:
        raise ApiError(
            428,
            "precondition_required",
            "Send If-Match with the entry's ETag (or the version you edited) "
            "so that a concurrent edit is not overwritten.",
        )
    return expected


def _if_match_version(header: str) -> int:
    if header.strip() == "*":
        raise ApiError(
            428,
            "precondition_required",
            "If-Match: * does not protect against lost updates; send the entry's ETag.",
        )
    if not IF_MATCH_RE.match(header):
        raise ApiError(
            400,
            "invalid_if_match",
            'If-Match must be the one ETag GET returned, such as "3".',
            field="If-Match",
        )
    return int(header.strip().removeprefix("W/").strip('"'))


def _query_version() -> int | None:
    raw = request.args.get("version")
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        raise ApiError(400, "wrong_type", "version must be a positive integer.", field="version")
    return int(raw)


def _stale(source: str, current: int | None) -> ApiError:
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if current is not None:
        extra["current_version"] = current
        headers["ETag"] = etag(current)
    message = "The entry was changed by someone else; fetch it again and reapply your edit."
    if source == "if-match":
        return ApiError(412, "precondition_failed", message, headers=headers, **extra)
    return ApiError(409, "version_conflict", message, field="version", headers=headers, **extra)


def _slug_taken(slug: str) -> ApiError:
    return ApiError(409, "slug_taken", f"An entry with slug {slug!r} exists.", field="slug")


# -- helpers ------------------------------------------------------------------------


def _author() -> str:
    principal = current_principal()
    return principal.author if principal is not None else "api"


def reject_nul_in_url() -> None:
    """NUL in an /api path or query string: refused before it reaches a query (PostgreSQL
    rejects NUL in text; SQLite would store it)."""
    if not request.path.startswith("/api/"):
        return
    if "\x00" in request.path:
        raise ApiError(404, "not_found", "No such resource.")
    for key, value in request.args.items(multi=True):
        if "\x00" in key or "\x00" in value:
            raise ApiError(
                400, "invalid_characters", "NUL is not allowed in the query string.", field=key
            )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(reject_nul_in_url)
