"""Text normalisation, language detection and splitting answers into passages."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from knowledge.schema import Lang

_JA = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_HIRAGANA = re.compile(r"[\u3040-\u309f]")
_LATIN = re.compile(r"[A-Za-z]")
_LATIN_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
# English words that only an English sentence has (a Japanese one quotes terms, not these).
_EN_GRAMMAR = frozenset(
    """a an the is are was were be been do does did what why how when which who can could
    should would will of in on to for with from by and or but not it its this that there
    i we you my our your me if than""".split()
)
_SPACE = re.compile(r"\s+")
_CITE = re.compile(r"\[@[^\]]*\]")
_MD_SYNTAX = re.compile(r"[*_`#>|]+")


def normalize(text: str) -> str:
    """NFKC (full-width ASCII -> ASCII, half-width kana -> full-width) and single spaces."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def has_japanese(text: str) -> bool:
    """Whether ``text`` contains any kana or kanji."""
    return _JA.search(text) is not None


def detect_lang(text: str) -> Lang:
    """The language of the sentence's grammar: 'ja' or 'en'.

    Students mix scripts both ways: English with a Japanese term ("why does 勾配消失
    happen?") and Japanese with English terms ("BatchNormをVAEで外すと?"). Japanese grammar
    is written in hiragana (particles, endings), so a sentence with hiragana is Japanese
    unless its Latin text clearly outweighs its Japanese text (about three letters to a
    kana or kanji); without hiragana, Japanese terms in a sentence with English grammar
    words are quoted terms. Text with no Japanese at all is English.
    """
    japanese = len(_JA.findall(text))
    if not japanese:
        return "en"
    latin = len(_LATIN.findall(text))
    if _HIRAGANA.search(text):
        return "ja" if 3 * japanese >= latin else "en"
    words = {w.lower() for w in _LATIN_WORD.findall(text)}
    return "en" if words & _EN_GRAMMAR else "ja"


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


def plain_text(markdown: str) -> str:
    """An answer as one plain text (its passages joined), for a whole-answer index unit."""
    return " ".join(passages(markdown, max_chars=len(markdown) + 1))
