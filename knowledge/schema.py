"""The validated shape of one entry, shared by entry files, import/export and the write API."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

Lang = Literal["en", "ja"]
LANGS: tuple[Lang, ...] = ("en", "ja")
SLUG_RE = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
CITE_KEY_RE = r"^[a-z][a-z0-9_-]*$"
# [@key] or [@key1; @key2] inside an answer.
CITE_REF = re.compile(r"\[(@[a-z][a-z0-9_-]*(?:\s*;\s*@[a-z][a-z0-9_-]*)*)\]")

MAX_SLUG_LEN = 120
Slug = Annotated[str, StringConstraints(pattern=SLUG_RE, min_length=1, max_length=MAX_SLUG_LEN)]
CourseCode = Annotated[str, StringConstraints(pattern=SLUG_RE, min_length=1, max_length=64)]

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


def is_slug(text: str) -> bool:
    """Whether ``text`` is a well-formed entry slug (URLs are checked before any query)."""
    return len(text) <= MAX_SLUG_LEN and re.fullmatch(SLUG_RE, text) is not None


def cited_keys(markdown: str) -> list[str]:
    """Citation keys used in ``markdown``, in order of first use."""
    keys: list[str] = []
    for group in CITE_REF.findall(markdown):
        for part in group.split(";"):
            key = part.strip().lstrip("@")
            if key not in keys:
                keys.append(key)
    return keys


def rule_error(rule: str, message: str, field: str = "", **values: str) -> PydanticCustomError:
    """A rule's error, named in its context as ``rule`` (with the ``values`` its message
    needs), so that an interface can word it in its own language. A cross-field rule's
    error has no location in pydantic: the field it concerns (a dotted path) travels in
    the context as ``field``."""
    template = message.replace("{", "{{").replace("}", "}}")  # the message is not a template
    context = {"rule": rule, **values} | ({"field": field} if field else {})
    return PydanticCustomError("value_error", template, context)


class Citation(BaseModel):
    # The url-or-doi rule below, stated in the JSON schema too.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": [link], "properties": {link: {"type": "string"}}}
                for link in ("url", "doi")
            ]
        },
    )

    key: Annotated[str, StringConstraints(pattern=CITE_KEY_RE, max_length=64)]
    title: Line
    authors: Annotated[list[Line], Field(min_length=1, max_length=50)]
    year: Annotated[int, Field(ge=1800, le=2100)]
    venue: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    url: (
        Annotated[str, StringConstraints(pattern=r"^https?://[^\s<>\"']+$", max_length=500)] | None
    ) = None
    doi: Annotated[str, StringConstraints(pattern=r"^10\.\d{4,9}/\S+$", max_length=200)] | None = (
        None
    )

    @model_validator(mode="after")
    def _needs_link(self) -> Citation:
        if not self.url and not self.doi:
            raise rule_error("needs_link", "a citation needs a url or a doi")
        return self


class RunnerRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=80)]
    params: dict[str, Any] = Field(default_factory=dict)


class EntryData(BaseModel):
    """One curated Q&A in both languages (at least one language must be present)."""

    model_config = ConfigDict(extra="forbid")

    slug: Slug
    course: CourseCode
    question: dict[
        Lang,
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)],
    ]
    aliases: dict[Lang, Annotated[list[Line], Field(max_length=50)]] = Field(default_factory=dict)
    answer: dict[
        Lang,
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50_000)],
    ]
    tags: Annotated[
        list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=40)]],
        Field(max_length=20),
    ] = Field(default_factory=list)
    citations: Annotated[list[Citation], Field(max_length=50)] = Field(default_factory=list)
    runner: RunnerRef | None = None

    @field_validator("question", "answer")
    @classmethod
    def _some_language(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise rule_error("one_language", "at least one language (en or ja) is required")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EntryData:
        if set(self.question) != set(self.answer):
            message = "question and answer must be given in the same languages"
            raise rule_error("same_languages", message, "answer")
        keys = [c.key for c in self.citations]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                message = f"duplicate citation key: {key}"
                raise rule_error("duplicate_key", message, f"citations.{i}.key", key=key)
        for lang, text in self.answer.items():
            missing = ", ".join("@" + k for k in cited_keys(text) if k not in keys)
            if missing:
                message = f"answer.{lang} cites unknown keys: {missing}"
                raise rule_error("unknown_keys", message, f"answer.{lang}", keys=missing)
        return self

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def content_hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()
