"""Markdown -> sanitised HTML. Raw HTML in entries never reaches a page."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

from knowledge.schema import CITE_REF

# html=False: raw HTML in the Markdown is escaped, not passed through.
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")

_TAGS = {
    "p", "br", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a", "sup",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_ATTRS = {"a": {"href", "title", "class"}, "sup": {"class"}, "th": {"align"}, "td": {"align"}}


def sanitize(html: str) -> str:
    """Keep a small set of tags; links only to http(s), mailto or same-page anchors."""
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRS,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def link_citations(markdown: str, keys: Sequence[str]) -> str:
    """Replace ``[@key]`` with numbered links to the citation list (``[1]`` -> #cite-key).
    A key with no citation (a draft in the editor's preview) stays visible as ``@key``."""
    number = {key: i + 1 for i, key in enumerate(keys)}

    def repl(match: re.Match[str]) -> str:
        parts = [p.strip().lstrip("@") for p in match.group(1).split(";")]
        shown = [f"[{number[k]}](#cite-{k})" if k in number else f"@{k}" for k in parts]
        return "[" + ", ".join(shown) + "]"

    return CITE_REF.sub(repl, markdown)


def to_html(markdown: str, citation_keys: Sequence[str] = ()) -> str:
    return sanitize(_md.render(link_citations(markdown, citation_keys)))


def stored_html(markdown: str, citation_keys: Sequence[str] = ()) -> str:
    """``to_html`` memoised, for stored entries: every answer shown renders the same text.

    Not for arbitrary input (previews): the memo holds up to 1024 texts.
    """
    return _stored_html(markdown, tuple(citation_keys))


@lru_cache(maxsize=1024)
def _stored_html(markdown: str, citation_keys: tuple[str, ...]) -> str:
    return to_html(markdown, citation_keys)
