"""Remove personal data from a forum post (English or Japanese) before anything is stored.

``scrub(text, names)`` replaces email addresses, phone numbers and student ids by
placeholders (``[email]``, ``[phone]``, ``[student id]``) and the export's known author
names by ``[name]``, drops @-mentions and a trailing signature, and counts what it removed
by kind. The result is a fixed point: scrubbing it again removes nothing.

Full-width forms (``０９０－１２３４－５６７８``, ``ａｌｉｃｅ＠ｎｙｕ．ｅｄｕ``, ``学籍番号：``)
are matched on a *folded* twin of the text, in which full-width ASCII, the ideographic
space and the dash variants are mapped one to one onto ASCII (for these characters that is
what NFKC does). The fold keeps every character's position, so the replacements are made in
the original text, which otherwise stays exactly as it was: no NFKC of the output.

Code (between ``` fences, or `inline`) is scrubbed for emails, phones, ids and names, but
not for mentions (``@torch.no_grad()`` is a decorator) or signatures.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from functools import lru_cache

EMAIL, PHONE, STUDENT_ID, NAME = "[email]", "[phone]", "[student id]", "[name]"


@dataclass
class Removed:
    """How many pieces of personal data of each kind ``scrub`` removed."""

    emails: int = 0
    phones: int = 0
    student_ids: int = 0
    mentions: int = 0
    signatures: int = 0
    names: int = 0

    def __add__(self, other: Removed) -> Removed:
        if not isinstance(other, Removed):
            return NotImplemented
        total = Removed()
        for f in fields(self):
            setattr(total, f.name, getattr(self, f.name) + getattr(other, f.name))
        return total

    def __radd__(self, other: int) -> Removed:  # sum(removeds) starts from 0
        if other == 0:
            return self + Removed()
        return NotImplemented

    def __iadd__(self, other: Removed) -> Removed:
        if not isinstance(other, Removed):
            return NotImplemented
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())


# --- the folded twin ----------------------------------------------------------------------

_FOLD = str.maketrans(
    {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}  # full-width ASCII
    | {0x3000: 0x20}  # ideographic space
    | dict.fromkeys((0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212), 0x2D)  # dashes
)

_FOLDABLE = re.compile("[\uff01-\uff5e\u3000\u2010-\u2015\u2212]+")
Decide = Callable[[re.Match[str]], str | None]
# What continues a word, an address or a number (dropping text must not join two of them).
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@[]")
_JOINING = _WORD | frozenset(".%+-")


def _would_join(left: str, right: str) -> bool:
    """Whether ``left`` and the text starting with ``right`` would run together into one
    word, address or number (a "." only when a word follows it: "I asked." is fine)."""
    if left not in _JOINING or not right:
        return False
    return right[0] in _WORD or (right[0] in _JOINING and right[1:2] in _WORD)


def _fold(m: re.Match[str]) -> str:
    return m.group().translate(_FOLD)


class _Text:
    """The text and its folded twin (same length, same positions): match on the twin,
    edit both the same way so that they stay aligned."""

    __slots__ = ("text", "folded")

    def __init__(self, text: str) -> None:
        self.text = text
        self.folded = text if text.isascii() else _FOLDABLE.sub(_fold, text)

    def sub(
        self,
        pattern: re.Pattern[str],
        decide: Decide,
        groups: tuple[str, ...] = (),
        spans: Iterable[tuple[int, int]] | None = None,
        spaces_before: bool = False,
    ) -> int:
        """Replace each match ``decide`` returns a string for (None keeps it); the replaced
        span is the first of ``groups`` that took part in the match, else the whole match,
        and the spaces before it with ``spaces_before``. Matches are looked for within
        ``spans`` only, when given (sorted, disjoint). Returns the count."""
        same, folded = self.text is self.folded, self.folded
        out: list[str] = []
        fout: list[str] = []
        last = n = 0
        before = ""  # the last character of the (folded) output so far
        for start, end in spans if spans is not None else ((0, len(folded)),):
            for m in pattern.finditer(folded, start, end):
                replacement = decide(m)
                if replacement is None:
                    continue
                s, e = next((m.span(g) for g in groups if m.start(g) >= 0), m.span())
                if spaces_before:
                    while s > last and folded[s - 1] in " \t":
                        s -= 1
                    # dropping "<@U1>" from "edu<@U1>@x.org" would make a new address
                    left = folded[s - 1] if s > last else before
                    if not replacement and _would_join(left, folded[e : e + 2]):
                        replacement = " "
                out += (self.text[last:s], replacement)
                if not same:
                    fout += (folded[last:s], replacement)
                before = replacement[-1:] or (folded[s - 1] if s > last else before)
                last, n = e, n + 1
        if n:
            self.text = "".join([*out, self.text[last:]])
            self.folded = self.text if same else "".join([*fout, folded[last:]])
        return n

    def keep_lines(self, count: int) -> None:
        """Keep the first ``count`` lines, without the blank ones they end with."""
        ending = "\n" if self.text.endswith("\n") else ""
        self.text = "\n".join(self.text.split("\n")[:count]).rstrip() + ending
        self.folded = "\n".join(self.folded.split("\n")[:count]).rstrip() + ending


def _replace_with(placeholder: str) -> Decide:
    return lambda _m: placeholder


# Characters that continue a Latin word, an address or a number (ASCII: a Japanese
# sentence runs straight into "yamada@example.jp" or "090-1234-5678" without a space).
_WORDCH = r"A-Za-z0-9_"
# A placeholder stands for the word it replaced: "[name]+1234..." was "Alice+1234...".
_BEFORE, _AFTER = _WORDCH + r"\]", _WORDCH + r"\["
_CJK = "\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f"
_SPACE = re.compile(r"\s")


def _in_url(s: str, pos: int) -> bool:
    """Whether ``pos`` is inside a link (whose numbers are no phone or id)."""
    start = max(s.rfind("http", 0, pos), s.rfind("www.", 0, pos))
    return start >= 0 and _SPACE.search(s, start, pos) is None


# --- emails -------------------------------------------------------------------------------

_EMAIL_RE = re.compile(
    rf"(?<![{_WORDCH}.%+\-])(?P<local>[A-Za-z0-9][{_WORDCH}.%+\-]*)@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)

# "alice [at] nyu [dot] edu", "alice(at)nyu.edu", "alice アットマーク example.jp" (a marked
# "at": any domain), "alice at nyu dot edu" (a bare "at": only before a spelled "dot" and a
# known top-level domain, or a dotted .edu / .ac.xx domain, so "look at the dot product"
# and "look at pytorch.org" stay).
_AT_MARKED = r"(?:\s*[\[({<]\s*(?:at|@)\s*[\])}>]\s*|\s*(?:アットマーク|あっとまーく|アット)\s*)"
_AT_BARE = r"[ \t]+at[ \t]+(?!(?:the|a|an|this|that|my|our|your|its|his|her|their)\b)"
_DOT_SPELLED = r"(?:\s*[\[({<]\s*dot\s*[\])}>]\s*|\s*(?:ドット|どっと)\s*|[ \t]+dot[ \t]+)"
_DOT = rf"(?:\.|{_DOT_SPELLED})"
_LABEL = r"[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?"
_TLD = r"(?:com|org|net|edu|gov|io|ai|jp|uk|ca|de|fr|cn|kr|tw|hk|sg|in|au|us|me|info|co)"
_OBFUSCATED_RE = re.compile(
    # (bounded repetitions: "at dot at dot ..." must not take quadratic time)
    rf"(?<![a-z0-9._%+\-])(?P<local>[a-z0-9][a-z0-9_%+\-]*(?:{_DOT}[a-z0-9_%+\-]+){{0,3}})"
    rf"(?:{_AT_MARKED}{_LABEL}(?:{_DOT}{_LABEL}){{0,4}}{_DOT}[a-z]{{2,24}}"
    rf"|@{_LABEL}(?:{_DOT}{_LABEL}){{0,4}}{_DOT_SPELLED}[a-z]{{2,24}}"  # alice@nyu dot edu
    rf"|(?P<bare>{_AT_BARE}){_LABEL}(?:{_DOT}{_LABEL}){{0,4}}"
    rf"(?:{_DOT_SPELLED}{_TLD}|\.(?:edu|ac\.[a-z]{{2}})))(?![a-z0-9\-])",
    re.I,
)
# In any (lower-case) text the pattern matches: a quick test first.
_OBFUSCATED_HINT = re.compile(r"dot|at\s*[\])}>]|アット|あっと|ドット|どっと|\.edu|\.ac\.")


# Words before a bare "at" that are no address: "ping me at foo dot com".
_NOT_LOCAL = frozenset("me us you him her them it i we they here there".split())


def _email(m: re.Match[str]) -> str | None:
    local = m.group("local").lower()
    if local == "git":  # git@github.com:org/repo.git
        return None
    bare = m.re is _OBFUSCATED_RE and m.group("bare")
    return None if bare and local in _NOT_LOCAL else EMAIL


_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.%+-")
_DOMAIN_RUN = re.compile(r"[A-Za-z0-9.\-]*")


def _address_spans(text: str) -> list[tuple[int, int]]:
    """Disjoint spans of ``text`` that could be an address: the local part before each
    "@" (at most 64 characters) to the end of the domain after it."""
    spans: list[tuple[int, int]] = []
    at = text.find("@")
    while at >= 0:
        start, floor = at, max(0, at - 64)
        while start > floor and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        domain = _DOMAIN_RUN.match(text, at + 1)
        end = domain.end() if domain else at + 1
        if spans and start <= spans[-1][1]:
            start = spans.pop()[0]
        spans.append((start, end))
        at = text.find("@", end)
    return spans


def _scrub_emails(doc: _Text) -> int:
    n = doc.sub(_EMAIL_RE, _email, spans=_address_spans(doc.folded))
    if _OBFUSCATED_HINT.search(doc.folded.lower()):
        n += doc.sub(_OBFUSCATED_RE, _email)
    return n


# --- student ids --------------------------------------------------------------------------

_ID_NUMBER = r"(?:\s*(?:number|no\.?|\#))?"
_ID_SEP = r"\s*(?:[:#=]|(?i:is|was)(?=\s)|は|が)?\s*"
# A regex that opens with a character class lets the engine skip to the candidates fast:
# this one consumes its first character, then checks it (and the one before) by lookbehind.
_SID_RE = re.compile(
    rf"[SsIiUuNn学](?<![{_BEFORE}][SsIiUuNn])(?:"
    # labelled: "student id 12345678", "ID: 1234567", 学籍番号 12345678, 学生番号：A1234567
    rf"(?:(?<=[Ss])(?i:tudent\s*(?:id(?:entification)?{_ID_NUMBER}|number|no\.?|\#))"
    rf"|(?<=[Uu])(?i:niv(?:ersity|\.)?\s+id{_ID_NUMBER})"
    rf"|(?P<bare>(?<=[Ii])(?i:d{_ID_NUMBER}))"
    r"|(?<=学)(?:籍番号|生番号|生証番号|籍|生証))"
    rf"{_ID_SEP}(?P<num>(?:[A-Za-z]{{1,2}}-?)?[0-9]{{5,10}})"
    # NYU: N12345678, and "NetID: abc123"
    rf"|(?<=[Nn])(?:[0-9]{{8}}|(?i:et\s*id){_ID_SEP}(?P<netid>[A-Za-z]{{2,4}}[0-9]{{1,6}})))"
    rf"(?![{_AFTER}])"
)
# "job ID 1234567" (Slurm), "run id", "issue id": ids, but not a student's.
_OTHER_IDS = frozenset(
    """job run process task commit issue pr thread post order device gpu node request
    session experiment exp sample image item class token model dataset channel message
    ticket assignment hw homework question problem lab cell row column course paper
    submission seed worker container instance""".split()
)
_WORD_BEFORE = re.compile(r"([A-Za-z]+)[\s\-_]*$")


def _student_id(m: re.Match[str]) -> str | None:
    if _in_url(m.string, m.start()):
        return None
    if m.group("bare"):  # a bare "ID": 6+ digits, and not a job's or a run's
        before = _WORD_BEFORE.search(m.string, max(0, m.start() - 24), m.start())
        if before and before.group(1).lower() in _OTHER_IDS:
            return None
        if sum(c.isdigit() for c in m.group("num")) < 6:
            return None
    return STUDENT_ID


def _scrub_student_ids(doc: _Text) -> int:
    return doc.sub(_SID_RE, _student_id, ("num", "netid"))


# --- phones -------------------------------------------------------------------------------

# Where a phone number can be: runs of digits and separators (phones are looked for in
# these only, which most posts have none of; they stop at a letter, so the full pattern's
# lookahead is given the two characters after a run).
_PHONE_RUN = re.compile(r"[+(0-9][0-9+\-.ー\uff70() ]{7,}")
_PHONE_RE = re.compile(
    rf"(?<![{_BEFORE}.\-+/=#])(?:"
    # international: +81 90-1234-5678, +44 20 7946 0958, +1 (212) 555-0147, +12125550147
    r"\+[1-9][0-9]{0,2}[ \-.]?(?:\([0-9]{1,4}\)[ \-.]?)?[0-9]{1,5}"
    r"(?P<isep>[ \-.])[0-9]{1,5}(?:(?P=isep)[0-9]{1,5}){0,3}"
    r"|\+[1-9][0-9]{7,14}"
    # US: (212) 555-0199, 212.555.0199, 212-555-0199, 1-800-555-0199 (not 212 555 0199:
    # three numbers in a row are too common in ML text)
    r"|(?:1[\-.])?(?:\([0-9]{3}\)[ ]?[0-9]{3}[\-.]|[0-9]{3}(?P<us>[\-.])[0-9]{3}(?P=us))"
    r"[0-9]{4}"
    # Japan: 090-1234-5678, 03-1234-5678, 0120-123-456, 03(1234)5678, (03) 1234-5678,
    # 090 1234 5678, 09012345678 ("ー" is the long-vowel mark IMEs type for a hyphen)
    r"|0[0-9]{1,4}(?P<jp>[\-.ー\uff70])[0-9]{1,4}(?P=jp)[0-9]{3,4}"
    r"|0[0-9]{1,4}\([0-9]{1,4}\)[0-9]{4}|\(0[0-9]{1,4}\)[ ]?[0-9]{1,4}[\-ー][0-9]{4}"
    r"|0[5789]0 [0-9]{4} [0-9]{4}|0[5789]0[0-9]{8}"
    rf")(?![{_AFTER}\-]|[.,][0-9])"
)


def _phone(m: re.Match[str]) -> str | None:
    phone = m.group()
    digits = sum(c.isdigit() for c in phone)
    # 2020-10-05, 01-02-2020 and version triples have too few digits for a phone
    if not (8 <= digits <= 15 if phone[0] == "+" else 10 <= digits <= 11):
        return None
    return None if _in_url(m.string, m.start()) else PHONE


def _phone_spans(folded: str) -> list[tuple[int, int]]:
    runs = [m.span() for m in _PHONE_RUN.finditer(folded)]
    if not runs:
        return []
    ends = [start for start, _ in runs[1:]] + [len(folded)]
    return [(start, min(end + 2, limit)) for (start, end), limit in zip(runs, ends, strict=True)]


def _scrub_phones(doc: _Text) -> int:
    spans = _phone_spans(doc.folded)
    return doc.sub(_PHONE_RE, _phone, spans=spans) if spans else 0


# --- code spans ---------------------------------------------------------------------------

_CODE_RE = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]+`", re.S)


def _prose_spans(folded: str) -> list[tuple[int, int]]:
    """The parts of the text outside code."""
    if "`" not in folded and "~~~" not in folded:
        return [(0, len(folded))]
    spans, last = [], 0
    for m in _CODE_RE.finditer(folded):
        spans.append((last, m.start()))
        last = m.end()
    spans.append((last, len(folded)))
    return spans


# --- names and mentions -------------------------------------------------------------------

# Name parts that are ordinary words too ("Will this work?", "Mark the cell", Adam the
# optimiser): never removed as a single word, only inside a full name.
_COMMON_WORDS = frozenset(
    """will may june april august rose mark bill grant hope joy faith grace summer autumn
    dawn frank art max page long young white black green brown gray grey king bell hill
    wood stone rich sky river ray gene pat sue jack jean dean chase hunter cole drew lane
    miles price cook baker park sung adam ada bert elmo gan kim ward case hall lee
    noble love star sunny storm fox wolf hart field""".split()
)
_PLACEHOLDER_WORDS = frozenset({"name", "email", "phone", "student", "id", "student id"})
_LATIN_EDGE = rf"{_WORDCH}\u00c0-\u024f"  # accented letters continue a Latin name
_HAS_CJK = re.compile(f"[{_CJK}]")


@dataclass(frozen=True)
class _NamePatterns:
    names: re.Pattern[str] | None  # the export's author names
    needles: tuple[str, ...]  # their words in lower case: a quick test first
    mention_lead: re.Pattern[str]  # mentions opening a line (and the separator after them)
    mention: re.Pattern[str]  # mentions elsewhere (and the spaces before them)


Tokens = tuple[str, ...]


def _name_forms(names: tuple[str, ...]) -> tuple[set[Tokens], set[str], set[Tokens]]:
    """The forms of the names to remove: Latin names (matched whatever their case), Latin
    name parts (matched only when capitalised), CJK names and their parts (substrings)."""
    anycase: set[Tokens] = set()
    capitalised: set[str] = set()
    cjk: set[Tokens] = set()
    for name in names:
        tokens = tuple(name.translate(_FOLD).split())
        if not tokens or name.lower() in _PLACEHOLDER_WORDS or "@" in name:
            continue
        if _HAS_CJK.search(name):
            if len("".join(tokens)) >= 2:  # 林 alone is in 森林 too
                cjk.add(tokens)
                cjk.update((t,) for t in tokens if len(tokens) > 1 and len(t) >= 2)
            continue
        if len(tokens) > 1 or (len(name) >= 3 and name.lower() not in _COMMON_WORDS):
            anycase.add(tokens)
        for token in tokens if len(tokens) > 1 else ():
            if sum(c.isalpha() for c in token) >= 3 and token.lower() not in _COMMON_WORDS:
                capitalised.add(token[0].upper() + token[1:])
    return anycase, capitalised, cjk


def _spelled(tokens: Tokens, space: str) -> str:
    return space.join(map(re.escape, tokens))


def _names_regex(anycase: set[Tokens], capitalised: set[str], cjk: set[Tokens]) -> str:
    """One regex for all the forms, longest first. It opens with the class of their first
    characters (so the engine skips to candidates), each form then checks its own first
    character (and, if Latin, that no letter comes before it) by lookbehind."""
    forms: list[tuple[int, str, str]] = []  # (length, first characters, the rest)
    edge = _LATIN_EDGE
    for tokens in anycase:
        first = tokens[0][0]
        chars = re.escape(first.lower()) + re.escape(first.upper())
        rest = _spelled((tokens[0][1:], *tokens[1:]), r"\s+")
        rest = f"(?<![{edge}][{chars}])(?i:{rest})(?![{edge}])"
        forms.append((len(" ".join(tokens)), chars, rest))
    for token in capitalised:
        chars = re.escape(token[0])
        forms.append((len(token), chars, f"(?<![{edge}]{chars}){re.escape(token[1:])}(?![{edge}])"))
    for tokens in cjk:
        chars = re.escape(tokens[0][0])
        forms.append((len("".join(tokens)), chars, _spelled((tokens[0][1:], *tokens[1:]), r"\s*")))
    forms.sort(key=lambda form: -form[0])
    firsts = "".join(sorted({c for _, chars, _ in forms for c in chars}))
    return f"[{firsts}](?:" + "|".join(f"(?<=[{chars}]){rest}" for _, chars, rest in forms) + ")"


_TOK_LATIN = rf"[{_WORDCH}][{_WORDCH}\-]*(?:\.[{_WORDCH}\-]+)*(?:'s)?"
_TOK_CJK = r"(?:[\u3005\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]+|[\u3040-\u309f]+)"
_HONORIFIC = r"(?:さん|様|さま|先生|くん|君|ちゃん|氏)?"
_SLACK_MENTION = r"<@[A-Z0-9]+(?:\|[^>\n]*)?>"  # <@U024BE7LH> or <@U024BE7LH|alice>


@lru_cache(maxsize=512)
def _name_patterns(names: tuple[str, ...]) -> _NamePatterns:
    anycase, capitalised, cjk = _name_forms(names)
    forms = anycase or capitalised or cjk
    names_re = re.compile(_names_regex(anycase, capitalised, cjk)) if forms else None
    # "@Alice Smith" (a display name with a space) is one mention
    known = [_spelled(t, r"\s+") for t in anycase if len(t) > 1]
    known += [_spelled(t, r"\s*") for t in cjk if len(t) > 1]
    known.sort(key=len, reverse=True)
    known_tok = rf"(?i:{'|'.join(known)})(?![{_LATIN_EDGE}])|" if known else ""
    mention = (
        rf"(?:{_SLACK_MENTION}|@(?<![{_BEFORE}.+\-/@=]@)"
        rf"(?P<tok>(?:{known_tok}{_TOK_LATIN}|{_TOK_CJK}){_HONORIFIC}))"
    )
    needles = {t.lower() for name in names for t in name.translate(_FOLD).split()}
    return _NamePatterns(
        names=names_re,
        needles=tuple(sorted(needles)),
        mention_lead=re.compile(rf"^[ \t]*(?P<drop>(?:{mention}(?:[ \t]*[,:、])?[ \t]*)+)", re.M),
        mention=re.compile(mention),  # (and the spaces before it: see _scrub_mentions)
    )


def _name_key(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({n.strip() for n in names if n and n.strip()}))


def _scrub_names(doc: _Text, patterns: _NamePatterns) -> int:
    if patterns.names is None:
        return 0
    low = doc.folded.lower()
    if not any(needle in low for needle in patterns.needles):
        return 0
    return doc.sub(patterns.names, _replace_with(NAME))


# Not people: decorators and doc tags pasted outside a code block.
_NOT_MENTIONS = frozenset(
    """property staticmethod classmethod dataclass dataclasses abstractmethod
    cached_property lru_cache cache wraps contextmanager overload override final
    torch tf jax jit njit numba functools pytest unittest mock patch np nn app router bp
    triton param return returns raises throws type rtype see since deprecated todo""".split()
)
_CODE_NEXT_LINE = re.compile(r"[ \t]*(?:(?:(?:async[ \t]+)?def|class)(?!\w)|@[A-Za-z_])")


def _is_decorator(m: re.Match[str]) -> bool:
    s, start, end = m.string, m.start("tok"), m.end("tok")
    if s[end : end + 1] == "(" or m.group("tok").split(".")[0].lower() in _NOT_MENTIONS:
        return True
    # alone on its line, above a def, a class or another decorator
    line_start = s.rfind("\n", 0, start) + 1
    line_end = s.find("\n", end)
    if line_end < 0 or s[line_start : start - 1].strip() or s[end:line_end].strip():
        return False
    return _CODE_NEXT_LINE.match(s, line_end + 1) is not None


def _mention(m: re.Match[str]) -> str | None:
    return None if m.group("tok") is not None and _is_decorator(m) else ""


def _scrub_mentions(doc: _Text, patterns: _NamePatterns) -> int:
    if "@" not in doc.folded:
        return 0
    dropped: list[str] = []

    def leading(m: re.Match[str]) -> str | None:
        """The mentions opening a line: "@alice @bob, can you check" -> "can you check"
        (the last one tells whether they are decorators)."""
        replacement = _mention(m)
        if replacement is not None:
            dropped.append(m.group("drop"))
        return replacement

    doc.sub(patterns.mention_lead, leading, ("drop",), _prose_spans(doc.folded))
    n = sum(d.count("@") for d in dropped)  # one "@" a mention
    # until none is left: "x @a@b" has "@b" once "@a" is gone
    while "@" in doc.folded and (
        found := doc.sub(
            patterns.mention, _mention, spans=_prose_spans(doc.folded), spaces_before=True
        )
    ):
        n += found
    return n


# --- signatures ---------------------------------------------------------------------------

_THANKS = (
    r"(?:(?:many\s+|thanks\s+)?thanks?(?:\s+(?:you|again|so\s+much|a\s+lot|very\s+much"
    r"|in\s+advance|for\s+reading|all|everyone))*"
    r"|thank\s+you(?:\s+(?:so|very)\s+much)?(?:\s+(?:again|in\s+advance|all))?|thx|tia)"
)
_SIGN_OFF = (
    rf"(?:{_THANKS}|best(?:\s+(?:regards|wishes))?|(?:kind|warm|warmest|kindest|many)\s+"
    r"regards|regards|cheers|sincerely(?:\s+yours)?|yours\s+(?:truly|sincerely)"
    r"|all\s+the\s+best|respectfully)"
)
_JA_CLOSING = (
    r"(?:(?:よろしく|宜しく)お願い(?:いた|致|申し上げ)?(?:します|ます)"
    r"|お願い(?:いた|致)?します|以上(?:です|になります)?|ありがとうございま(?:す|した))"
)
_SIGNATURE_NAME = r"(?:\[name\]|[A-Z][\w.'\-]*)"
# A closing on a line of its own: dropped with the short lines that follow it.
_CLOSING_LINE = re.compile(
    rf"\s*(?:(?i:{_SIGN_OFF})\s*[,.!~]*|(?:{_JA_CLOSING}[。.!、,~〜 ]*)+)\s*"
)
# A closing with the name on the same line ("Thanks, Alice", "以上です。山田"), a "--"
# delimiter, "Sent from my iPhone": dropped even when nothing follows.
_SIGNATURE_LINE = re.compile(
    rf"\s*(?:(?i:{_SIGN_OFF})\s*[,\-]\s*{_SIGNATURE_NAME}(?:\s+{_SIGNATURE_NAME}){{0,2}}"
    rf"\s*[.!]?|(?:{_JA_CLOSING}[。.!、,~〜 ]*)+(?:\[name\]|[{_CJK}]{{1,8}})"
    r"|--|(?i:sent\s+from\s+my\s+\S.{0,30}|get\s+outlook\s+for\s+\w+)|\S{1,20}から送信)\s*"
)
# A sentence ending with thanks or a closing: kept, but the short lines after it go.
_CLOSING_END = re.compile(
    rf"(?:^|[\s,.;!?、。])(?i:{_THANKS})[\s.!~]*$|{_JA_CLOSING}[。.!！~〜\s]*$"
)
# The last words _CLOSING_END can end with: a quick test first.
_CLOSING_LAST = tuple(
    "thanks thank you advance much lot again all everyone reading thx tia ます した 以上".split()
)
_CLOSING_PUNCTUATION = " \t\r.!~。！〜"
_NOT_SIGNATURE = re.compile(
    r"[?？]|[:：]\s*$|^(?i:edit|update|ps|p\.s\.|note|btw)(?![a-z])|^(?:追記|補足)|`"
)
# Words of a sentence, not of a name or a title ("see this", "it works now").
_SENTENCE_WORDS = frozenset(
    """this that these is are was were it its can could please see check ok okay i
    we you my me did does do have has not will would should here there what how why also
    just so but if then hey hi hello yes no sure now works work try tried""".split()
)
_LATIN_WORDS = re.compile(r"[a-z']+")
_HIRAGANA = re.compile("[\u3040-\u309f]")
_MAX_SIGNATURE_LINES = 3
_MAX_SIGNATURE_CHARS = 40


def _signature_line(line: str) -> bool:
    """A name, a title, a contact line: short, no question, not a sentence or a note."""
    s = line.strip()
    if _SIGNATURE_LINE.fullmatch(s):  # "Sent from my iPhone", "--"
        return True
    return (
        len(s) <= _MAX_SIGNATURE_CHARS
        and not _NOT_SIGNATURE.search(s)
        and len(_HIRAGANA.findall(s)) < 3  # 山田 / 山田です, not 確認お願いします
        and _SENTENCE_WORDS.isdisjoint(_LATIN_WORDS.findall(s))
    )


def _closing_end(line: str) -> bool:
    if not line.rstrip(_CLOSING_PUNCTUATION).lower().endswith(_CLOSING_LAST):
        return False
    return _CLOSING_END.search(line, max(0, len(line) - 60)) is not None


def _signature_start(lines: list[str], first: int, end: int) -> int | None:
    """The index of the first line of a signature ending ``lines[first:end]``, if any:
    the earliest closing that only signature lines follow."""
    tail: list[int] = []  # the last non-blank lines: a closing and what follows it
    for i in range(end - 1, first - 1, -1):
        if lines[i].strip():
            tail.insert(0, i)
            if len(tail) > _MAX_SIGNATURE_LINES:
                break
    earliest = len(tail) - 1  # tail[earliest + 1:] are all signature lines
    while earliest > 0 and _signature_line(lines[tail[earliest]]):
        earliest -= 1
    for pos in range(max(earliest, 0), len(tail)):
        line, after = lines[tail[pos]], tail[pos + 1 :]
        if _SIGNATURE_LINE.fullmatch(line) or (after and _CLOSING_LINE.fullmatch(line)):
            return tail[pos]
        if after and _closing_end(line):
            return after[0]
    return None


def _scrub_signatures(doc: _Text) -> int:
    folded = doc.folded
    fences = folded.count("```")
    if fences % 2:  # an unclosed code block runs to the end: no signature
        return 0
    first = folded[: folded.rfind("```")].count("\n") + 1 if fences else 0
    lines = folded.split("\n")
    end, n = len(lines), 0
    # another signature can end where one is cut off ("Best,\nBob\nThanks,\nAlice")
    while (start := _signature_start(lines, first, end)) is not None:
        end, n = start, n + 1
    if n:
        doc.keep_lines(end)
    return n


# --- all of it ----------------------------------------------------------------------------

_HAS_DIGIT = re.compile(r"[0-9]")


def scrub(text: str, names: Iterable[str] = ()) -> tuple[str, Removed]:
    """``text`` without personal data, and what was removed by kind.

    ``names``: the authors' names and user names known from the export ("Alice Smith",
    "asmith", "山田太郎"), removed wherever they occur (as ``[name]``).
    """
    doc = _Text(text)
    patterns = _name_patterns(_name_key(names))
    # Emails first (their "@" is no mention's), then mentions: what a rule sees must not
    # change by a later rule's edits, or a second scrub would find more ("@bob+1 212...").
    removed = Removed(emails=_scrub_emails(doc))
    removed.mentions = _scrub_mentions(doc, patterns)  # before names: "@Alice Smith"
    if removed.mentions:  # "alice [at] @bob nyu.edu" is an address without the mention
        removed.emails += _scrub_emails(doc)
    if _HAS_DIGIT.search(doc.folded):
        removed.student_ids = _scrub_student_ids(doc)
        removed.phones = _scrub_phones(doc)
    removed.names = _scrub_names(doc, patterns)
    removed.signatures = _scrub_signatures(doc)
    return doc.text, removed
