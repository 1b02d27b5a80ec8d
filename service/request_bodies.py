"""Strict parsing of JSON request bodies into plain values, with field-level 4xx errors."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from service.errors import ApiError


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "invalid_body", "The request body must be a JSON object.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "The request body must be a JSON object.")
    try:  # a lone surrogate (e.g. "\ud800") parses, but no database or encoder takes it
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        raise ApiError(400, "invalid_unicode", "The body holds invalid Unicode.") from None
    return body


def reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            400,
            "unknown_field",
            f"Unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}.",
            field=unknown[0],
        )


def string_field(
    body: dict[str, Any], name: str, *, required: bool = False, max_len: int = 200
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, "missing_field", f"The field {name!r} is required.", field=name)
        return None
    if not isinstance(value, str):
        raise ApiError(400, "wrong_type", f"The field {name!r} must be a string.", field=name)
    if len(value) > max_len:
        raise ApiError(
            400, "too_long", f"The field {name!r} is longer than {max_len} characters.", field=name
        )
    return value.replace("\x00", "")  # PostgreSQL cannot store NUL in text


def int_field(body: dict[str, Any], name: str, *, low: int, high: int, default: int) -> int:
    value = body.get(name, default)
    # JSON (and JSON Schema's "integer") does not tell 3 from 3.0.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    # bool is an int subclass in Python; JSON true is not a number.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, "wrong_type", f"The field {name!r} must be an integer.", field=name)
    if not low <= value <= high:
        raise ApiError(
            400, "out_of_range", f"The field {name!r} must be between {low} and {high}.", field=name
        )
    return value


def query_int(name: str, *, low: int, high: int, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "wrong_type", f"{name} must be an integer.", field=name) from None
    if not low <= value <= high:
        raise ApiError(400, "out_of_range", f"{name} must be between {low} and {high}.", field=name)
    return value
