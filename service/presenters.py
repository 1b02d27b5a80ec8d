"""JSON shapes of entries and answers (shared by the API and the pages)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from flask import url_for

from knowledge.index import IndexedEntry
from knowledge.render import stored_html
from knowledge.schema import cited_keys
from knowledge.tables import Citation, Entry


def pick_lang(available: dict[str, Any], wanted: str) -> str:
    """The wanted language when the entry has it, else the other one."""
    if wanted in available:
        return wanted
    return "en" if "en" in available else next(iter(available))


def citation_json(entry: Entry, order: Sequence[Citation] | None = None) -> list[dict[str, Any]]:
    """The citations numbered 1, 2, ... in ``order`` (default: as the entry lists them)."""
    out = []
    for number, c in enumerate(entry.citations if order is None else order, start=1):
        item: dict[str, Any] = {
            "number": number,
            "key": c.key,
            "title": c.title,
            "authors": c.authors,
            "year": c.year,
            "venue": c.venue,
            "url": c.url or (f"https://doi.org/{c.doi}" if c.doi else None),
        }
        if c.doi:
            item["doi"] = c.doi
        out.append(item)
    return out


def runner_json(entry: Entry) -> dict[str, Any] | None:
    if not entry.runner_name:
        return None
    return {"name": entry.runner_name, "params": entry.runner_params or {}}


def entry_url(slug: str) -> str:
    return url_for("web.entry_page", slug=slug, _external=True)


def answer_json(entry: Entry, lang: str) -> dict[str, Any]:
    """The answer block of an ask response, in ``lang`` where the entry has it."""
    return {**_answer_block(entry, lang), "url": entry_url(entry.slug)}


def cached_answer_json(
    entry: IndexedEntry, lang: str, load: Callable[[int], Entry]
) -> dict[str, Any]:
    """``answer_json`` for the index's view of an entry, memoised by content and language.

    Most asks land on a few entries; this skips three queries and the rendering. The key
    is the hash of the entry's whole content (not its id, which another database may
    give to another entry), so an edit is a new key once the index picks it up.
    """
    key = (entry.content_hash, lang)
    with _answers_lock:
        block = _answers.get(key)
        if block is not None:
            _answers.move_to_end(key)
    if block is None:
        loaded = load(entry.id)
        block = _answer_block(loaded, lang)
        with _answers_lock:
            _answers[(loaded.content_hash, lang)] = block
            while len(_answers) > ANSWER_MEMO_SIZE:
                _answers.popitem(last=False)
    return {**block, "url": entry_url(block["slug"])}


ANSWER_MEMO_SIZE = 512
_answers: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
_answers_lock = threading.Lock()


def by_first_use(entry: Entry, markdown: str) -> list[Citation]:
    """The entry's citations in the order ``markdown`` first cites them; uncited ones last,
    as listed. A student reads [1], [2], [3] in that order."""
    first = {key: i for i, key in enumerate(cited_keys(markdown))}
    listed = list(entry.citations)
    return sorted(listed, key=lambda c: (first.get(c.key, len(first)), listed.index(c)))


def _answer_block(entry: Entry, lang: str) -> dict[str, Any]:
    chosen = pick_lang(entry.answer, lang)
    markdown = entry.answer[chosen]
    order = by_first_use(entry, markdown)
    keys = [c.key for c in order]
    return {
        "slug": entry.slug,
        "course": entry.course.code,
        "question": entry.question[pick_lang(entry.question, lang)],
        "answer_markdown": markdown,
        "answer_html": stored_html(markdown, keys),
        "lang": chosen,
        "citations": citation_json(entry, order),
        "runner": runner_json(entry),
    }


def match_json(entry: IndexedEntry, score: float, lang: str) -> dict[str, Any]:
    return {
        "slug": entry.slug,
        "course": entry.course,
        "question": entry.question[pick_lang(entry.question, lang)],
        "score": round(score, 4),
    }


def entry_summary(entry: Entry) -> dict[str, Any]:
    return {
        "slug": entry.slug,
        "course": entry.course.code,
        "question": entry.question,
        "tags": entry.tags,
        "runner": runner_json(entry),
        "version": entry.version,
        "updated_at": entry.updated_at.isoformat(),
        "url": entry_url(entry.slug),
    }


def entry_detail(entry: Entry) -> dict[str, Any]:
    keys = [c.key for c in entry.citations]
    return {
        **entry_summary(entry),
        "aliases": entry.aliases,
        "answer": {
            lang: {"markdown": md, "html": stored_html(md, keys)}
            for lang, md in entry.answer.items()
        },
        "citations": citation_json(entry),
    }
