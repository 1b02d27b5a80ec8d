"""JSON shapes of entries and answers (shared by the API and the pages)."""

from __future__ import annotations

from typing import Any

from flask import url_for

from knowledge.index import IndexedEntry
from knowledge.models import Entry
from knowledge.render import to_html


def pick_lang(available: dict[str, Any], wanted: str) -> str:
    """The wanted language when the entry has it, else the other one."""
    if wanted in available:
        return wanted
    return "en" if "en" in available else next(iter(available))


def citation_json(entry: Entry) -> list[dict[str, Any]]:
    out = []
    for number, c in enumerate(entry.citations, start=1):
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
    chosen = pick_lang(entry.answer, lang)
    keys = [c.key for c in entry.citations]
    markdown = entry.answer[chosen]
    return {
        "slug": entry.slug,
        "course": entry.course.code,
        "question": entry.question[pick_lang(entry.question, lang)],
        "answer_markdown": markdown,
        "answer_html": to_html(markdown, keys),
        "lang": chosen,
        "citations": citation_json(entry),
        "runner": runner_json(entry),
        "url": entry_url(entry.slug),
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
            lang: {"markdown": md, "html": to_html(md, keys)} for lang, md in entry.answer.items()
        },
        "citations": citation_json(entry),
    }
