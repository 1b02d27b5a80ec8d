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


def rule_error(field: str, message: str) -> PydanticCustomError:
    """A cross-field rule's error. Pydantic gives such errors no location, so the field the
    rule concerns (a dotted path) travels in the error's context as ``field``."""
    template = message.replace("{", "{{").replace("}", "}}")  # the message is not a template
    return PydanticCustomError("value_error", template, {"field": field})


class Citation(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
            raise ValueError("a citation needs a url or a doi")
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
            raise ValueError("at least one language (en or ja) is required")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EntryData:
        if set(self.question) != set(self.answer):
            raise rule_error("answer", "question and answer must be given in the same languages")
        keys = [c.key for c in self.citations]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise rule_error("citations", f"duplicate citation keys: {', '.join(dupes)}")
        for lang, text in self.answer.items():
            missing = [k for k in cited_keys(text) if k not in keys]
            if missing:
                raise rule_error(
                    f"answer.{lang}",
                    f"answer.{lang} cites unknown keys: {', '.join('@' + k for k in missing)}",
                )
        return self

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def content_hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()
