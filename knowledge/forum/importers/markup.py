"""Export markup reduced to plain text: HTML (Discourse ``cooked``, Piazza) and Slack's
``mrkdwn`` escapes. Personal data is left alone: another module removes it."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser

_BLOCKS = frozenset(
    "p div blockquote aside section article header footer ul ol dl table figure details "
    "h1 h2 h3 h4 h5 h6 hr".split()
)
_LINES = frozenset("li tr dt dd summary figcaption".split())
_HIDDEN = frozenset({"script", "style", "template", "head"})
_SPACES = re.compile(r"[ \t\r\n\f\xa0]+")  # not \s: keep ideographic spaces (U+3000)


class _TextParser(HTMLParser):
    """Collects ("text" | "pre", str) pieces and ("break", newlines) marks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[tuple[str, str | int]] = []
        self._links: list[tuple[str, bool, int]] = []  # href, is a mention, where it began
        self._pre = 0
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self.items.append(("break", 1))
        elif tag in _BLOCKS or tag == "pre":
            self.items.append(("break", 2))
            self._pre += tag == "pre"
        elif tag in _LINES:
            self.items.append(("break", 1))
            if tag == "li":
                self.items.append(("text", "- "))
        elif tag in ("td", "th"):
            self.items.append(("text", " "))
        elif tag == "a":
            attr = dict(attrs)
            # Discourse mentions and hashtags are links whose text says it all.
            plain = bool({"mention", "hashtag"} & set((attr.get("class") or "").split()))
            self._links.append((attr.get("href") or "", plain, len(self.items)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS or tag == "pre":
            self._pre = max(0, self._pre - (tag == "pre"))
            self.items.append(("break", 2))
        elif tag == "a" and self._links:
            href, plain, start = self._links.pop()
            label = "".join(str(v) for k, v in self.items[start:] if k != "break").strip()
            if not href or plain or href == label or href == f"mailto:{label}":
                return
            self.items.append(("text", f" ({href})" if label else href))

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.items.append(("pre", data) if self._pre else ("text", _SPACES.sub(" ", data)))


def html_to_text(markup: str) -> str:
    """HTML as text: tags dropped, links as "text (url)", entities unescaped, paragraphs
    separated by a blank line, <pre>/<code> kept as they are."""
    if "<" not in markup and "&" not in markup:
        return markup.strip()
    parser = _TextParser()
    parser.feed(markup)
    parser.close()
    return _render(parser.items)


def _render(items: list[tuple[str, str | int]]) -> str:
    out: list[str] = []
    pending = 0  # newlines owed before the next text
    last_kind = ""
    for kind, value in items:
        if kind == "break":
            pending = max(pending, int(value))
            continue
        text = str(value)
        if kind == "text" and (pending or not out or out[-1].endswith("\n")):
            text = text.lstrip(" ")
        if not text:
            continue
        if pending and out:
            if last_kind == "text":
                out[-1] = out[-1].rstrip(" ")
            have = len(out[-1]) - len(out[-1].rstrip("\n"))  # a <pre> may end in newlines
            out.append("\n" * max(0, pending - have))
        pending = 0
        out.append(text)
        last_kind = kind
    return "".join(out).strip()


# --- Slack -----------------------------------------------------------------------------

_SLACK_ESCAPE = re.compile(r"<([^<>\n]*)>")
_SLACK_ENTITY = re.compile(r"&(amp|lt|gt);")
_SLACK_CHARS = {"amp": "&", "lt": "<", "gt": ">"}


def slack_to_text(text: str, user_name: Callable[[str], str]) -> str:
    """Slack message markup as text: ``<@U1>`` → "@name", ``<#C1|general>`` → "#general",
    ``<!here>`` → "@here", ``<url|label>`` → "label (url)", ``<url>`` → url, then the
    three escaped characters (&amp; &lt; &gt;) unescaped."""

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (label.lstrip("@") or user_name(target[1:]))
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            # <!here>, <!channel>, <!subteam^S1|@tas>, <!date^...|fallback>
            if label:
                return label
            return "@" + target[1:].split("^")[0]
        if not label or label == target or f"mailto:{label}" == target:
            return target.removeprefix("mailto:")
        return f"{label} ({target})"

    if not text:
        return ""
    # Slack escapes only these three: any other entity-like text is what the user typed.
    return _SLACK_ENTITY.sub(lambda m: _SLACK_CHARS[m.group(1)], _SLACK_ESCAPE.sub(replace, text))
