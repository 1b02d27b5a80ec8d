"""The OpenAPI 3.1 document of the HTTP API, built from the same limits the code enforces.

Request schemas mirror the parsing in service/api.py, runs_api.py and write_api.py (and
the pydantic EntryData model); response schemas mirror service/presenters.py and
runs_api.run_json. tests/test_openapi*.py check the document against the app.
"""

from __future__ import annotations

import copy
from typing import Any

from knowledge.api_tokens import SCOPES
from knowledge.ask import MAX_QUESTION_CHARS
from knowledge.schema import SLUG_RE, EntryData
from runners import registry
from service.write_api import COLUMN_LIMITS, IF_MATCH_RE, MAX_VERSION

JSON = "application/json"
Schema = dict[str, Any]

LANG_TEXT: Schema = {
    "type": "object",
    "propertyNames": {"enum": ["en", "ja"]},
    "additionalProperties": {"type": "string"},
    "description": "Text per language (en, ja).",
}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
# Characters that the API drops (NUL) or knowledge.text.normalize() turns into nothing
# (whitespace after NFKC): a question made only of these is blank. Checked by a test.
BLANK_CHARS = r"\x00\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = f"[^{BLANK_CHARS}]"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _as_props(props: dict[str, Schema]) -> dict[str, Any]:
    """``props`` to spread into ``obj`` (whose keyword ``extra`` no property is named)."""
    assert "extra" not in props
    return props


def obj(required: list[str] | None = None, *, extra: bool = True, **props: Schema) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    if not extra:
        out["additionalProperties"] = False
    return out


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


# -- schemas -----------------------------------------------------------------------


def _entry_write_schemas() -> dict[str, Schema]:
    """EntryData's own JSON schema (pydantic), its nested models hoisted to components."""
    raw = EntryData.model_json_schema(ref_template="#/components/schemas/{model}In")
    defs = {f"{name}In": schema for name, schema in raw.pop("$defs", {}).items()}
    defs["RunnerRefIn"]["properties"]["name"] = {
        "type": "string",
        "enum": registry.names(),
        "description": "A registered experiment (GET /api/v1/experiments).",
    }
    defs["RunnerRefIn"]["properties"]["params"]["description"] = (
        "Parameters for the experiment, validated by its params_schema; defaults fill the rest."
    )
    for name in ("question", "answer"):
        raw["properties"][name]["minProperties"] = 1
    # Database columns shorter than EntryData's own limits (write_api checks them too).
    raw["properties"]["course"]["maxLength"] = COLUMN_LIMITS["course"]
    defs["CitationIn"]["properties"]["venue"]["maxLength"] = COLUMN_LIMITS["venue"]
    create = copy.deepcopy(raw)
    create["title"] = "EntryCreate"
    create["description"] = (
        "A new entry. Cross-field rules are checked too: question and answer in the same "
        "languages, unique citation keys, every [@key] in an answer cited, a citation "
        "with a url or a doi, runner.name a registered experiment and runner.params "
        "valid for it (see GET /api/v1/experiments)."
    )
    update = copy.deepcopy(raw)
    update["title"] = "EntryUpdate"
    update["description"] = (
        "The whole entry as it should be after the update. slug and course may be left "
        "out (they cannot change). version, if given, is the version you edited: a "
        "stale one gets 409."
    )
    update["required"] = [r for r in raw.get("required", []) if r not in ("slug", "course")]
    update["properties"]["version"] = {"type": "integer", "minimum": 1, "maximum": MAX_VERSION}
    return {**defs, "EntryCreate": create, "EntryUpdate": update}


def _schemas() -> dict[str, Schema]:
    citation = obj(
        ["number", "key", "title", "authors", "year", "venue", "url"],
        number={"type": "integer", "minimum": 1},
        key={"type": "string"},
        title={"type": "string"},
        authors={"type": "array", "items": {"type": "string"}},
        year={"type": "integer"},
        venue={"type": "string"},
        url=nullable({"type": "string", "format": "uri"}),
        doi={"type": "string"},
    )
    runner = obj(["name", "params"], name={"type": "string"}, params={"type": "object"})
    match = obj(
        ["slug", "course", "question", "score"],
        slug={"type": "string"},
        course={"type": "string"},
        question={"type": "string"},
        score={"type": "number"},
    )
    summary_props: dict[str, Schema] = {
        "slug": {"type": "string", "pattern": SLUG_RE},
        "course": {"type": "string"},
        "question": LANG_TEXT,
        "tags": {"type": "array", "items": {"type": "string"}},
        "runner": nullable(ref("Runner")),
        "version": {"type": "integer", "minimum": 1},
        "updated_at": {"type": "string", "description": "ISO 8601 time of the last write."},
        "url": {"type": "string", "format": "uri", "description": "The entry's web page."},
    }
    detail_props = {
        **summary_props,
        "aliases": {
            "type": "object",
            "propertyNames": {"enum": ["en", "ja"]},
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "answer": {
            "type": "object",
            "propertyNames": {"enum": ["en", "ja"]},
            "additionalProperties": obj(
                ["markdown", "html"],
                markdown={"type": "string"},
                html={"type": "string", "description": "Sanitised HTML."},
            ),
        },
        "citations": {"type": "array", "items": ref("Citation")},
    }
    run_status = {
        "type": "string",
        "enum": ["queued", "running", "succeeded", "failed", "timed_out"],
    }
    run_props: dict[str, Schema] = {
        "id": {"type": "string"},
        "status": run_status,
        "experiment": {"type": "string"},
        "entry_slug": NULLABLE_STRING,
        "params": {"type": "object"},
        "seed": {"type": "integer"},
        "elapsed_s": {"type": ["number", "null"]},
        "metrics": nullable(
            {"type": "object", "additionalProperties": {"type": ["number", "boolean"]}}
        ),
        "series": nullable(
            {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "number"}},
            }
        ),
        "finding": nullable(LANG_TEXT),
        "supports_claim": {"type": ["boolean", "null"]},
        "figures": {
            "type": "array",
            "items": {"type": "string"},
            "description": "URLs of the run's PNG figures.",
        },
        "error": nullable(obj(["code", "message"], code=NULLABLE_STRING, message=NULLABLE_STRING)),
        "provenance": obj(
            ["experiment", "params", "seed", "code_hash", "torch_version"],
            experiment={"type": "string"},
            params={"type": "object"},
            seed={"type": "integer"},
            code_hash={"type": "string"},
            torch_version={"type": "string"},
            isolation=NULLABLE_STRING,
            attempts={"type": ["integer", "null"]},
            duration_s={"type": ["number", "null"]},
            cpu_s={"type": ["number", "null"]},
            peak_rss_mb={"type": ["number", "null"]},
            created_at=NULLABLE_STRING,
            finished_at=NULLABLE_STRING,
        ),
        "url": {"type": "string"},
    }
    error_body = obj(
        ["code", "message"],
        code={"type": "string", "description": "Stable, machine-readable."},
        message={"type": "string"},
        field={"type": "string", "description": "The request field at fault."},
        errors={
            "type": "array",
            "description": "Every invalid field (validation_failed).",
            "items": obj(
                ["field", "code", "message"],
                field={"type": "string"},
                code={"type": "string"},
                message={"type": "string"},
            ),
        },
        retry_after={"type": "integer", "description": "Seconds (rate_limited)."},
        current_version={"type": "integer", "description": "The stored version (412, 409)."},
        required_scope={"type": "string", "enum": list(SCOPES)},
    )
    return {
        "Error": {
            **obj(["error"], error=error_body),
            "description": 'Every error under /api: {"error": {"code", "message", "field"?}}.',
        },
        "AskRequest": obj(
            ["question"],
            extra=False,
            question={
                "type": "string",
                "maxLength": MAX_QUESTION_CHARS,
                "pattern": NOT_BLANK,
                "description": f"Not blank; at most {MAX_QUESTION_CHARS} characters after "
                "Unicode (NFKC) and whitespace normalisation.",
            },
            course=nullable({"type": "string", "maxLength": 64}),
            lang=nullable({"type": "string", "enum": ["en", "ja"]}),
            top_k={"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        ),
        "Citation": citation,
        "Runner": runner,
        "Match": match,
        "Answer": obj(
            [
                "slug",
                "course",
                "question",
                "answer_markdown",
                "answer_html",
                "lang",
                "citations",
                "runner",
                "url",
            ],
            slug={"type": "string"},
            course={"type": "string"},
            question={"type": "string"},
            answer_markdown={"type": "string"},
            answer_html={"type": "string", "description": "Sanitised HTML."},
            lang={"type": "string", "enum": ["en", "ja"]},
            citations={"type": "array", "items": ref("Citation")},
            runner=nullable(ref("Runner")),
            url={"type": "string", "format": "uri"},
        ),  # fmt: skip
        "AskResponse": obj(
            ["abstained", "confidence", "answer", "matches", "question_id", "lang", "did_you_mean"],
            abstained={"type": "boolean"},
            confidence={"type": "number", "minimum": 0, "maximum": 1},
            answer=nullable(ref("Answer")),
            matches={"type": "array", "items": ref("Match")},
            question_id={"type": ["integer", "null"]},
            lang={"type": "string", "enum": ["en", "ja"]},
            did_you_mean={"type": "array", "items": ref("Match")},
        ),
        "EntrySummary": obj(list(summary_props), **_as_props(summary_props)),
        "EntryDetail": obj(list(detail_props), **_as_props(detail_props)),
        "EntryList": obj(
            ["items", "page", "per_page", "total"],
            items={"type": "array", "items": ref("EntrySummary")},
            page={"type": "integer"},
            per_page={"type": "integer"},
            total={"type": "integer"},
        ),
        **_entry_write_schemas(),
        "FeedbackRequest": obj(
            ["question_id", "helpful"],
            extra=False,
            question_id={"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
            helpful={"type": "boolean"},
            comment=nullable({"type": "string", "maxLength": 2000}),
        ),
        "FeedbackResponse": obj(
            ["id", "question_id", "helpful"],
            id={"type": "integer"},
            question_id={"type": "integer"},
            helpful={"type": "boolean"},
        ),
        "Experiment": obj(
            ["name", "title", "claim", "time_budget_s", "params_schema"],
            name={"type": "string"},
            title=LANG_TEXT,
            claim=LANG_TEXT,
            time_budget_s={"type": "number"},
            params_schema={"type": "object", "description": "JSON Schema of the params."},
        ),
        "ExperimentList": obj(["items"], items={"type": "array", "items": ref("Experiment")}),
        "RunRequest": obj(
            extra=False,
            params={
                "type": "object",
                "description": "Overrides of the entry's experiment parameters.",
            },
            seed={"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 0},
        ),
        "Run": obj(list(run_props), **_as_props(run_props)),
        "RunStarted": {
            "allOf": [ref("Run")],
            "type": "object",
            "required": ["cached"],
            "properties": {"cached": {"type": "boolean"}},
        },
        "Health": obj(
            ["status", "database", "entries", "knowledge_version", "index"],
            status={"type": "string", "enum": ["ok"]},
            database={"type": "string"},
            entries={"type": "integer"},
            knowledge_version={"type": "integer"},
            index=obj(
                ["loaded", "version", "models"],
                loaded={"type": "boolean"},
                version={"type": ["integer", "null"]},
                models={"type": "array", "items": {"type": "string"}},
            ),
            queue=obj(
                ["ok", "backend"],
                ok={"type": "boolean"},
                backend={"type": "string", "enum": ["sqlite", "redis"]},
                pending={"type": "integer"},
                error={"type": "string"},
            ),
            sandbox=obj(
                ["isolation"],
                isolation={"type": "string", "enum": ["bubblewrap", "rlimits-only"]},
                bwrap=NULLABLE_STRING,
                reason=NULLABLE_STRING,
            ),
        ),
    }


# -- responses and parameters ------------------------------------------------------

ERRORS: dict[str, str] = {
    "400": "Invalid request; error.field names the culprit.",
    "401": "Missing, malformed, unknown, revoked or expired token "
    "(token_required, invalid_token, token_revoked, token_expired).",
    "403": "The token lacks the scope (insufficient_scope).",
    "404": "Not found.",
    "409": "Conflict.",
    "412": "If-Match names an old version (precondition_failed); fetch the entry again.",
    "413": "The body is larger than the limit (body_too_large).",
    "415": "Session-authenticated writes must send application/json.",
    "428": "PUT and DELETE need If-Match or a version (precondition_required).",
    "429": "Too many requests (rate_limited); see Retry-After.",
    "503": "The run queue is full or unavailable; see Retry-After.",
}
RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
RATE_HEADERS = {
    f"X-RateLimit-{name}": {"description": text, "schema": {"type": "string"}}
    for name, text in (
        ("Limit", "Requests allowed in the window."),
        ("Remaining", "Requests left in the window."),
        ("Reset", "When the window resets (Unix time)."),
    )
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


def json_response(description: str, schema: str, headers: dict[str, Any] | None = None) -> Schema:
    out: Schema = {"description": description, "content": {JSON: {"schema": ref(schema)}}}
    if headers:
        out["headers"] = headers
    return out


def errors(*codes: str) -> dict[str, Schema]:
    out = {}
    for code in codes:
        headers: dict[str, Any] = {}
        if code in ("429", "503"):
            headers["Retry-After"] = RETRY_AFTER
        if code == "412":
            headers["ETag"] = {**ETAG, "required": False}
        if code == "401":
            headers["WWW-Authenticate"] = {"schema": {"type": "string"}}
        out[code] = json_response(ERRORS[code], "Error", headers or None)
    return out


def body(schema: str, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": ref(schema)}}}


SLUG_PARAM = {
    "name": "slug",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The entry's slug, e.g. double-descent.",
}
COURSE_QUERY = {
    "name": "course",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "Course code, when a slug exists in more than one course.",
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": IF_MATCH_RE.pattern, "examples": ['"1"']},
    "example": '"1"',
    "description": 'The ETag of the version you edited, e.g. "3" (a bare 3 is accepted too). '
    "Stale: 412.",
}


def security(scope: str | None, optional: bool) -> list[dict[str, list[str]]]:
    need = {"bearerAuth": [scope] if scope else []}
    return [{}, need] if optional else [need]


# -- the document ---------------------------------------------------------------------


def build_spec(*, require_token_for_read: bool = False) -> dict[str, Any]:
    """The whole document. ``require_token_for_read`` mirrors the app setting."""
    open_ = not require_token_for_read
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["service"],
                "summary": "Liveness, database, knowledge version and index status",
                "security": [],
                "responses": {"200": json_response("The service is up.", "Health")},
            }
        },
        "/api/v1/ask": {
            "post": {
                "operationId": "ask",
                "tags": ["ask"],
                "summary": "Ask a question; get the closest curated answer or an abstention",
                "security": security("ask", open_),
                "requestBody": body("AskRequest"),
                "responses": {
                    "200": json_response(
                        "The answer (answer is null when the service abstains; the question "
                        "is then queued for the TAs).",
                        "AskResponse",
                        RATE_HEADERS,
                    ),
                    **errors("400", "401", "403", "413", "429"),
                },
            }
        },
        "/api/v1/feedback": {
            "post": {
                "operationId": "feedback",
                "tags": ["ask"],
                "summary": "Rate an answer",
                "security": security("ask", open_),
                "requestBody": body("FeedbackRequest"),
                "responses": {
                    "201": json_response("Recorded.", "FeedbackResponse"),
                    **errors("400", "401", "403", "404", "413"),
                },
            }
        },
        "/api/v1/entries": {
            "get": {
                "operationId": "listEntries",
                "tags": ["entries"],
                "summary": "List entries (search, paging)",
                "security": security(None, open_),
                "parameters": [
                    {
                        "name": "q",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Text in the slug, question, aliases or tags "
                        "(first 200 characters are used).",
                    },
                    COURSE_QUERY,
                    {
                        "name": "page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100_000},
                    },
                    {
                        "name": "per_page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                ],
                "responses": {
                    "200": json_response("A page of entries.", "EntryList"),
                    **errors("400", "401"),
                },
            },
            "post": {
                "operationId": "createEntry",
                "tags": ["entries"],
                "summary": "Create an entry (write scope)",
                "security": security("write", False),
                "requestBody": body("EntryCreate"),
                "responses": {
                    "201": json_response(
                        "Created; a revision is recorded.",
                        "EntryDetail",
                        {"ETag": ETAG, "Location": LOCATION},
                    ),
                    **errors("400", "401", "403", "413", "415"),
                    "409": json_response("The slug is taken (slug_taken).", "Error"),
                },
            },
        },
        "/api/v1/entries/{slug}": {
            "parameters": [SLUG_PARAM, COURSE_QUERY],
            "get": {
                "operationId": "getEntry",
                "tags": ["entries"],
                "summary": "One entry, with its ETag",
                "security": security(None, open_),
                "responses": {
                    "200": json_response("The entry.", "EntryDetail", {"ETag": ETAG}),
                    **errors("400", "401", "404"),
                },
            },
            "put": {
                "operationId": "updateEntry",
                "tags": ["entries"],
                "summary": "Replace an entry (write scope; If-Match or version required)",
                "security": security("write", False),
                "parameters": [IF_MATCH],
                "requestBody": body("EntryUpdate"),
                "responses": {
                    "200": json_response(
                        "Updated (a revision is recorded) or unchanged.",
                        "EntryDetail",
                        {"ETag": ETAG},
                    ),
                    **errors("400", "401", "403", "404", "412", "413", "415", "428"),
                    "409": json_response(
                        "The version in the body is stale (version_conflict).", "Error"
                    ),
                },
            },
            "delete": {
                "operationId": "deleteEntry",
                "tags": ["entries"],
                "summary": "Delete an entry (write scope; If-Match or version required)",
                "security": security("write", False),
                "parameters": [
                    IF_MATCH,
                    {
                        "name": "version",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
                        "description": "The version you are deleting (stale: 409).",
                    },
                ],
                "responses": {
                    "204": {"description": "Deleted (soft; a revision is recorded)."},
                    **errors("400", "401", "403", "404", "412", "428"),
                    "409": json_response("The version is stale (version_conflict).", "Error"),
                },
            },
        },
        "/api/v1/experiments": {
            "get": {
                "operationId": "listExperiments",
                "tags": ["runs"],
                "summary": "The registered experiments and their parameter schemas",
                "security": security(None, open_),
                "responses": {
                    "200": json_response("Experiments.", "ExperimentList"),
                    **errors("401"),
                },
            }
        },
        "/api/v1/entries/{slug}/runs": {
            "post": {
                "operationId": "startRun",
                "tags": ["runs"],
                "summary": "Run the entry's experiment (or get the cached result)",
                "security": security("run", open_),
                "parameters": [SLUG_PARAM],
                "requestBody": body("RunRequest", required=False),
                "responses": {
                    "200": json_response(
                        "An identical run already succeeded: its result.",
                        "RunStarted",
                        RATE_HEADERS,
                    ),
                    "202": json_response(
                        "Queued (or shared with an identical run in flight); poll Location.",
                        "RunStarted",
                        {"Location": LOCATION, **RATE_HEADERS},
                    ),
                    **errors("400", "401", "403", "404", "413", "429", "503"),
                    "409": json_response("The entry has no experiment (no_experiment).", "Error"),
                },
            }
        },
        "/api/v1/runs/{run_id}": {
            "get": {
                "operationId": "getRun",
                "tags": ["runs"],
                "summary": "A run's status, metrics, finding and provenance",
                "security": security(None, open_),
                "parameters": [
                    {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": json_response("The run.", "Run"),
                    **errors("401", "404"),
                },
            }
        },
        "/api/v1/runs/{run_id}/figures/{number}.png": {
            "get": {
                "operationId": "getFigure",
                "tags": ["runs"],
                "summary": "One figure of a finished run",
                "security": security(None, open_),
                "parameters": [
                    {
                        "name": "run_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "number",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 999},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The PNG.",
                        "content": {
                            "image/png": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    **errors("401", "404"),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["service"],
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Runnable Answers API",
            "version": "1.0.0",
            "summary": "Course Q&A with curated answers and experiments you can run.",
            "description": (
                "Ask questions, read and curate entries, and run the experiments behind "
                "answers. Tokens are created by TAs (`flask --app service tokens create`) "
                "and sent as `Authorization: Bearer <token>`; scopes are "
                f"{', '.join(SCOPES)}. Errors are always "
                '`{"error": {"code", "message", "field"?}}`. Ask and run are rate '
                "limited per token, or per client address without a token."
            ),
        },
        "tags": [
            {"name": "ask", "description": "Questions and feedback."},
            {"name": "entries", "description": "Curated entries (write needs the write scope)."},
            {"name": "runs", "description": "Experiments and their runs."},
            {"name": "service", "description": "Health and this document."},
        ],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": f"An API token (ra_…) with scopes from: {', '.join(SCOPES)}.",
                }
            },
        },
    }
