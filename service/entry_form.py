"""The TA entry editor's form: what the TA typed, parsed into an EntryData with errors per field.

Field names: ``slug``, ``course``, ``tags``; per language ``question_en``, ``aliases_en``
(one per line), ``answer_en`` (and ``_ja``); citation rows ``cite-<i>-<key|title|authors|
year|venue|url|doi>``; ``runner`` and its parameters ``param-<name>``; ``version`` of the
entry being edited; ``resolves``, the ids of queued questions this entry answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import MultiDict

from knowledge.editing import FieldError
from knowledge.schema import LANGS, EntryData
from runners import registry
from service.i18n import STRINGS, translate

CITATION_FIELDS: tuple[str, ...] = ("key", "title", "authors", "year", "venue", "url", "doi")
_CITE_NAME = re.compile(r"^cite-(\d{1,3})-(" + "|".join(CITATION_FIELDS) + r")$")
_LIST_SPLIT = re.compile(r"[\s,、，]+")
MAX_RESOLVES = 500


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def param_kind(spec: dict[str, Any]) -> str:
    """boolean, choice, integer, number, list (of integers) or text, as params.js sees it."""
    if "enum" in spec:
        return "choice"
    kind = spec.get("type")
    if kind == "array" and spec.get("items", {}).get("type") == "integer":
        return "list"
    return kind if kind in ("boolean", "integer", "number") else "text"


def params_model(runner: str) -> type[BaseModel]:
    return registry.spec(runner).Params


def parse_params(
    runner: str, form: MultiDict[str, str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(values to store: those differing from the defaults, values to show, errors by name)."""
    model = params_model(runner)
    schema = model.model_json_schema()
    shown: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, spec in schema.get("properties", {}).items():
        kind = param_kind(spec)
        text = form.get(f"param-{name}")
        if text is None and kind != "boolean":
            continue  # not in the form at all: the default applies
        if kind == "boolean":
            shown[name] = text in ("true", "on", "1")
            continue
        text = (text or "").strip()
        shown[name] = text
        try:
            if kind == "integer":
                shown[name] = int(text)
            elif kind == "number":
                shown[name] = float(text)
            elif kind == "list":
                shown[name] = [int(p) for p in _LIST_SPLIT.split(text) if p]
        except ValueError:
            errors[name] = translate(f"form.enter_{kind}")
    if errors:
        return {}, shown, errors
    try:
        valid = model.model_validate(shown).model_dump(mode="json")
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "runner"
            errors.setdefault(name, err["msg"])
        return {}, shown, errors
    defaults = model().model_dump(mode="json")
    return {k: v for k, v in valid.items() if v != defaults.get(k)}, valid, {}


@dataclass
class EntryForm:
    """The editor's state: text as typed (so a rejected form comes back unchanged) and errors."""

    slug: str = ""
    course: str = ""
    tags: str = ""
    question: dict[str, str] = field(default_factory=lambda: dict.fromkeys(LANGS, ""))
    aliases: dict[str, str] = field(default_factory=lambda: dict.fromkeys(LANGS, ""))
    answer: dict[str, str] = field(default_factory=lambda: dict.fromkeys(LANGS, ""))
    citations: list[dict[str, str]] = field(default_factory=list)
    runner: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # as shown in the form
    stored_params: dict[str, Any] = field(default_factory=dict)  # those differing from defaults
    version: int | None = None
    resolves: list[int] = field(default_factory=list)
    candidate: int | None = None  # the mined candidate this draft was accepted from
    errors: dict[str, str] = field(default_factory=dict)

    # -- in ---------------------------------------------------------------
    @classmethod
    def from_data(cls, data: EntryData, version: int | None = None) -> EntryForm:
        form = cls(
            slug=data.slug,
            course=data.course,
            tags=", ".join(data.tags),
            runner=data.runner.name if data.runner else "",
            params=dict(data.runner.params) if data.runner else {},
            stored_params=dict(data.runner.params) if data.runner else {},
            version=version,
        )
        for lang in LANGS:
            form.question[lang] = data.question.get(lang, "")
            form.aliases[lang] = "\n".join(data.aliases.get(lang, []))
            form.answer[lang] = data.answer.get(lang, "")
        for c in data.citations:
            row = {k: "" for k in CITATION_FIELDS}
            row.update(
                key=c.key,
                title=c.title,
                authors="; ".join(c.authors),
                year=str(c.year),
                venue=c.venue,
                url=c.url or "",
                doi=c.doi or "",
            )
            form.citations.append(row)
        return form

    @classmethod
    def from_request(cls, raw: MultiDict[str, str]) -> EntryForm:
        # NUL characters can never be stored (PostgreSQL refuses them): drop them first.
        values: MultiDict[str, str] = MultiDict(
            (k, v.replace("\x00", "")) for k, v in raw.items(multi=True)
        )
        form = cls(
            slug=values.get("slug", "").strip(),
            course=values.get("course", "").strip(),
            tags=values.get("tags", ""),
            runner=values.get("runner", "").strip(),
        )
        for lang in LANGS:
            form.question[lang] = values.get(f"question_{lang}", "")
            form.aliases[lang] = values.get(f"aliases_{lang}", "")
            form.answer[lang] = values.get(f"answer_{lang}", "").replace("\r\n", "\n")
        rows: dict[int, dict[str, str]] = {}
        for name, value in values.items(multi=False):
            match = _CITE_NAME.match(name)
            if match:
                rows.setdefault(int(match.group(1)), {k: "" for k in CITATION_FIELDS})[
                    match.group(2)
                ] = value.strip()
        form.citations = [rows[i] for i in sorted(rows) if any(rows[i].values())]
        version = values.get("version", "").strip()
        if version:
            if version.isdigit() and len(version) < 10:
                form.version = int(version)
            else:
                form.errors["form"] = translate("form.version_not_number")
        form.resolves = parse_ids(values.get("resolves", ""))
        candidate = parse_ids(values.get("candidate", ""))
        form.candidate = candidate[0] if candidate else None
        if form.runner:
            if form.runner not in registry.EXPERIMENTS:
                form.errors["runner"] = translate("form.pick_experiment")
            else:
                form.stored_params, form.params, param_errors = parse_params(form.runner, values)
                form.errors.update({f"param-{k}": v for k, v in param_errors.items()})
        return form

    # -- out --------------------------------------------------------------
    def langs(self) -> list[str]:
        """Languages the TA filled in (question or answer)."""
        return [lang for lang in LANGS if self.question[lang].strip() or self.answer[lang].strip()]

    def to_data(self) -> EntryData | None:
        """The validated entry, or None with ``errors`` filled in."""
        langs = self.langs()
        citations = []
        for i, row in enumerate(self.citations):
            item: dict[str, Any] = {k: row[k] for k in ("key", "title", "venue")}
            item["authors"] = [a.strip() for a in re.split(r"[;\n]", row["authors"]) if a.strip()]
            year = row["year"].strip()
            if year.isdigit() and len(year) <= 4:
                item["year"] = int(year)
            else:
                self.errors.setdefault(f"cite-{i}-year", translate("form.enter_year"))
            for optional in ("url", "doi"):
                if row[optional]:
                    item[optional] = row[optional]
            citations.append(item)
        raw: dict[str, Any] = {
            "slug": self.slug,
            "course": self.course,
            "question": {lang: self.question[lang] for lang in langs},
            "aliases": {
                lang: _lines(self.aliases[lang]) for lang in langs if _lines(self.aliases[lang])
            },
            "answer": {lang: self.answer[lang] for lang in langs},
            "tags": [t.lower() for t in _LIST_SPLIT.split(self.tags) if t],
            "citations": citations,
        }
        if self.runner and not self._param_errors():
            raw["runner"] = {"name": self.runner, "params": self.stored_params}
        try:
            data = EntryData.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                # A cross-field rule names its field in the context (schema.rule_error).
                ctx = err.get("ctx", {})
                loc = err["loc"] or tuple(str(ctx.get("field", "")).split("."))
                name = field_name(loc if loc != ("",) else ())
                self.errors.setdefault(name, error_message(name, err["type"], ctx, err["input"]))
            return None
        return None if self.errors else data

    def add_errors(self, errors: Iterable[FieldError]) -> None:
        """The editing core's refusals (experiment and params) on the fields they name."""
        for error in errors:
            path = tuple(error.field.split("."))
            runner_param = path[:2] == ("runner", "params") and len(path) > 2
            name = f"param-{path[2]}" if runner_param else field_name(path)
            self.errors.setdefault(name, error_message(name, error.code, {}, None))

    def _param_errors(self) -> bool:
        return any(k.startswith("param-") or k == "runner" for k in self.errors)


# Plain words (in the interface language) for the pattern errors a TA is likely to meet.
_PATTERN_HELP = {
    "slug": "form.help_slug",
    "course": "form.help_course",
    "tags": "form.help_tags",
    "key": "form.help_key",
    "url": "form.help_url",
    "doi": "form.help_doi",
}


_CITATION_LABELS = {"url": "URL", "doi": "DOI"}


def field_label(name: str) -> str:
    """What the editor calls a form field, for its list of errors ("Citation 2: URL",
    "Answer (Markdown), English"); the field's own name when it has no label."""
    if name.startswith("param-"):
        return f"{translate('ta.experiment')}: {name[len('param-') :]}"
    match = _CITE_NAME.match(name)
    if match:
        column = match.group(2)
        label = _CITATION_LABELS.get(column) or translate(f"ta.cite_{column}")
        return f"{translate('ta.citations')} {int(match.group(1)) + 1}: {label}"
    head, _, lang = name.partition("_")
    if lang in LANGS and head in ("question", "answer", "aliases"):
        return f"{translate(f'ta.{head}')}, {translate(f'lang.{lang}')}"
    return translate(f"ta.{name}") if f"ta.{name}" in STRINGS else name


def error_message(name: str, code: str, ctx: Mapping[str, Any], given: Any) -> str:
    """A schema error in the interface language: a named rule in its own words, an empty
    question or answer as such, a pattern with its help, else the check by its kind."""
    values = {k: v for k, v in ctx.items() if k not in ("field", "rule", "pattern")}
    key = f"validation.{code}"
    if "rule" in ctx:
        key = f"form.{ctx['rule']}"
    elif code == "string_too_short" and isinstance(given, str) and not given.strip():
        kind = name.split("_")[0]
        key = f"form.needs_{kind}" if kind in ("question", "answer") else "form.required"
    elif code == "string_pattern_mismatch":
        key = _PATTERN_HELP.get(name.rsplit("-", 1)[-1], key)
    try:
        return translate(key, **values) if key in STRINGS else translate("validation.other")
    except (KeyError, IndexError):  # a message wanting a value this error does not carry
        return translate("validation.other")


def field_name(loc: tuple[Any, ...]) -> str:
    """The form field a pydantic error location points at."""
    if not loc:
        return "form"
    head = str(loc[0])
    if head in ("question", "answer", "aliases") and len(loc) > 1:
        return f"{head}_{loc[1]}"
    if head in ("question", "answer"):  # a rule on the whole text: its first language
        return f"{head}_en"
    if head == "citations" and len(loc) > 1:
        column = str(loc[2]) if len(loc) > 2 else "url"
        return f"cite-{loc[1]}-{column}"
    if head in ("slug", "course", "tags", "runner"):
        return head
    return "form"


def parse_ids(text: str) -> list[int]:
    """Comma-separated ask ids (at most MAX_RESOLVES); anything else is ignored."""
    ids = [int(p) for p in text.split(",") if p.strip().isdigit() and len(p.strip()) < 19]
    return sorted(set(ids))[:MAX_RESOLVES]
