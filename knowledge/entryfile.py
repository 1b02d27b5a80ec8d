"""Entry files: YAML front matter + bilingual Markdown body (see DESIGN.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from knowledge.schema import LANGS, EntryData

FRONT = "---"
LANG_MARKER = re.compile(r"^<!--\s*(en|ja)\s*-->\s*$")


@dataclass
class EntryFileError(Exception):
    """A problem in an entry file, located by file, line and field."""

    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


def _node_lines(node: yaml.Node, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each field path in a composed YAML tree to its 1-based line."""
    lines = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines.update(_node_lines(value, (*prefix, key.value)))
            lines[(*prefix, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_node_lines(item, (*prefix, i)))
    return lines


def _closest_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def parse(text: str, path: str = "<entry>") -> EntryData:
    """Parse and validate one entry file; raise EntryFileError naming line and field."""
    all_lines = text.splitlines()
    if not all_lines or all_lines[0].strip() != FRONT:
        raise EntryFileError(path, 1, "front matter", "the file must start with a '---' line")
    try:
        end = next(i for i in range(1, len(all_lines)) if all_lines[i].strip() == FRONT)
    except StopIteration:
        raise EntryFileError(path, 1, "front matter", "no closing '---' line") from None
    front_text = "\n".join(all_lines[1:end])
    try:
        node = yaml.compose(front_text, Loader=yaml.SafeLoader)
        meta = yaml.safe_load(front_text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 2 if mark else 1
        raise EntryFileError(path, line, "front matter", f"invalid YAML: {exc.problem}") from None
    if not isinstance(meta, dict) or node is None:
        raise EntryFileError(path, 2, "front matter", "must be a mapping of fields")
    lines = {k: v + 1 for k, v in _node_lines(node).items()}  # +1 for the opening '---'

    answers, answer_lines = _split_body(all_lines, end + 1, path)
    data = {**meta, "answer": answers}
    for key in ("answer",):
        if key in meta:
            raise EntryFileError(path, lines[(key,)], key, "the answer goes in the body, not here")
    try:
        return EntryData.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        if loc and loc[0] == "answer" and len(loc) > 1:
            line = answer_lines.get(str(loc[1]), end + 2)
        elif not loc and "answer." in err["msg"]:
            lang = err["msg"].split("answer.")[1][:2]
            loc = ("answer", lang)
            line = answer_lines.get(lang, end + 2)
            bad_key = err["msg"].rsplit("@", 1)[-1].split(",")[0]
            for i in range(line, len(all_lines)):
                if "@" + bad_key in all_lines[i]:
                    line = i + 1
                    break
        else:
            line = _closest_line(lines, loc)
        field = ".".join(str(p) for p in loc if p != "[key]") or "entry"
        message = err["msg"].removeprefix("Value error, ")
        raise EntryFileError(path, line, field, message) from None


def _split_body(lines: list[str], start: int, path: str) -> tuple[dict[str, str], dict[str, int]]:
    answers: dict[str, list[str]] = {}
    where: dict[str, int] = {}
    current: str | None = None
    for i in range(start, len(lines)):
        marker = LANG_MARKER.match(lines[i].strip())
        if marker:
            current = marker.group(1)
            if current in answers:
                raise EntryFileError(path, i + 1, f"answer.{current}", "language given twice")
            answers[current] = []
            where[current] = i + 1
        elif current is not None:
            answers[current].append(lines[i])
        elif lines[i].strip():
            raise EntryFileError(
                path,
                i + 1,
                "answer",
                "body text before the first <!-- en --> or <!-- ja --> marker",
            )
    return {k: "\n".join(v).strip() for k, v in answers.items()}, where


def load(path: Path) -> EntryData:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EntryFileError(str(path), 1, "file", "not valid UTF-8") from None
    return parse(text, str(path))


def dump(entry: EntryData) -> str:
    """The entry file text; ``parse(dump(e)) == e``."""
    data = entry.canonical()
    answers = data.pop("answer")
    order = ["slug", "course", "question", "aliases", "tags", "citations", "runner"]
    meta = {k: data[k] for k in order if k in data and data[k] not in ({}, [])}
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=100)
    body = "".join(f"<!-- {lang} -->\n{answers[lang]}\n\n" for lang in LANGS if lang in answers)
    return f"{FRONT}\n{front}{FRONT}\n{body}".rstrip() + "\n"
