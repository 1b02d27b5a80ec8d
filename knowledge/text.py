"""Text normalisation, language detection and splitting answers into passages."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_JA = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_SPACE = re.compile(r"\s+")
_CITE = re.compile(r"\[@[^\]]*\]")
_MD_SYNTAX = re.compile(r"[*_`#>|]+")


def normalize(text: str) -> str:
    """NFKC (full-width ASCII -> ASCII, half-width kana -> full-width) and single spaces."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def detect_lang(text: str) -> str:
    """'ja' when the text contains kana or kanji, else 'en'."""
    return "ja" if _JA.search(text) else "en"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def passages(markdown: str, max_chars: int = 600) -> list[str]:
    """Plain-text paragraphs of an answer, citation markers and Markdown syntax removed."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", markdown):
        plain = normalize(_MD_SYNTAX.sub(" ", _CITE.sub("", block)))
        plain = re.sub(r"^[-+] |\s[-+] ", " ", plain).strip()
        if len(plain) < 20:
            continue
        while len(plain) > max_chars:
            cut = plain.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            out.append(plain[:cut].strip())
            plain = plain[cut:].strip()
        out.append(plain)
    return out
