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

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, jsonify, request, url_for
from pydantic import ValidationError

from knowledge import editing
from knowledge.schema import EntryData
from knowledge.tables import Entry
from service import api_models as m
from service import presenters
from service.auth_tokens import current_principal, require_scope
from service.errors import ApiError
from service.extensions import core
from service.openapi import api, field_errors, refusal, responses

bp = Blueprint("write", __name__, url_prefix="/api/v1")
T = TypeVar("T")


def etag(version: int) -> str:
    return f'"{version}"'


@bp.post("/entries")
@require_scope("write")
@api.validate(
    resp=responses(
        {201: m.EntryDetail}, 401, 403, 413, 415, HTTP_409="The slug is taken (slug_taken)."
    ),
    tags=["entries"],
    operation_id="createEntry",
)
def create_entry(json: m.EntryCreate) -> tuple[Response, int, dict[str, str]]:
    """Create an entry (write scope)"""
    try:
        result, _ = editing.create(core().sessions, json, author=_author())
    except editing.SlugTaken:
        raise _slug_taken(json.slug) from None
    except editing.Invalid as exc:
        raise _invalid(exc) from None
    entry = result.entry
    headers = {
        "ETag": etag(entry.version),
        "Location": url_for("api.get_entry", slug=entry.slug, course=entry.course.code),
    }
    return jsonify(presenters.entry_detail(entry)), 201, headers


@bp.put("/entries/<slug>")
@require_scope("write")
@api.validate(
    query=m.CourseQuery,
    headers=m.IfMatch,
    resp=responses(
        {200: m.EntryDetail},
        401,
        403,
        404,
        412,
        413,
        415,
        428,
        HTTP_409="The version in the body is stale (version_conflict).",
    ),
    tags=["entries"],
    operation_id="updateEntry",
)
def update_entry(
    slug: str, json: m.EntryUpdate, query: m.CourseQuery, headers: m.IfMatch
) -> tuple[Response, int, dict[str, str]]:
    """Replace an entry (write scope; If-Match or version required)"""
    body = json.model_dump(exclude_unset=True, exclude={"version"})
    expected = precondition(headers.if_match, json.version, "body")

    def changes(entry: Entry) -> EntryData:
        if body.get("slug", slug) != slug:
            raise ApiError(
                400, "slug_mismatch", "The slug in the body differs from the URL.", field="slug"
            )
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
            course=query.course,
        ),
    )
    entry = result.entry
    return jsonify(presenters.entry_detail(entry)), 200, {"ETag": etag(entry.version)}


@bp.delete("/entries/<slug>")
@require_scope("write")
@api.validate(
    query=m.DeleteQuery,
    headers=m.IfMatch,
    resp=responses(
        {204: None}, 401, 403, 404, 412, 428, HTTP_409="The version is stale (version_conflict)."
    ),
    tags=["entries"],
    operation_id="deleteEntry",
)
def remove_entry(slug: str, query: m.DeleteQuery, headers: m.IfMatch) -> tuple[str, int]:
    """Delete an entry (write scope; If-Match or version required)"""
    expected = precondition(headers.if_match, query.version, "query")
    _edit(
        slug,
        expected,
        lambda: editing.delete(
            core().sessions,
            slug,
            author=_author(),
            expected=[v for v, _ in expected],
            course=query.course,
        ),
    )
    return "", 204


def _edit(slug: str, expected: list[tuple[int, str]], write: Callable[[], T]) -> T:
    """Run an edit of an existing entry; its refusals as API errors."""
    try:
        return write()
    except editing.NotFound:
        raise ApiError(404, "unknown_slug", f"No entry with slug {slug!r}.") from None
    except editing.Invalid as exc:
        raise _invalid(exc) from None
    except editing.Stale as exc:
        # 412 if the If-Match version is the stale one, else 409 (body or query version).
        stale = [source for version, source in expected if version != exc.current]
        source = stale[0] if exc.current is not None and stale else expected[0][1]
        raise _stale(source, exc.current) from None


# -- validation ------------------------------------------------------------------


def validate_entry(body: dict[str, Any]) -> EntryData:
    """EntryData from the body; 400 per field."""
    try:
        return EntryData.model_validate(body)
    except ValidationError as exc:
        raise refusal(field_errors(exc), EntryData) from None


# -- preconditions -----------------------------------------------------------------


def precondition(if_match: str | None, version: int | None, source: str) -> list[tuple[int, str]]:
    """The versions the client says it edited, with where each came from ("if-match",
    "body" or "query"); If-Match first (m.IfMatch has checked its form). None at all: 428."""
    expected: list[tuple[int, str]] = []
    if if_match is not None:
        if if_match.strip() == "*":
            raise ApiError(
                428,
                "precondition_required",
                "If-Match: * does not protect against lost updates; send the entry's ETag.",
            )
        expected.append((int(if_match.strip().removeprefix("W/").strip('"')), "if-match"))
    if version is not None:
        expected.append((version, source))
    if not expected:
        raise ApiError(
            428,
            "precondition_required",
            "Send If-Match with the entry's ETag (or the version you edited) "
            "so that a concurrent edit is not overwritten.",
        )
    return expected


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


def _invalid(exc: editing.Invalid) -> ApiError:
    return refusal([asdict(error) for error in exc.errors], EntryData)


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
