"""From a thread to what mining keeps: the student's question and the staff's answer to
it, with personal data removed. Authors become roles; nothing else of theirs is kept."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from knowledge.forum.model import Post, Thread
from knowledge.forum.scrub import Removed, scrub
from knowledge.text import detect_lang, normalize

MAX_PHRASING_CHARS = 200
MAX_QUESTION_CHARS = 600  # of title + body, for grouping and matching
MAX_ANSWER_CHARS = 4000

# A post asks something: a question mark, an English question opening, or a Japanese
# question ending or question word.
_QUESTION_MARK = re.compile(r"[?？]")
_EN_OPENING = re.compile(
    r"^\s*(why|how|what|when|where|which|who|is|are|was|were|can|could|should|would|will|"
    r"do|does|did|has|have|any(one|body))\b",
    re.IGNORECASE | re.MULTILINE,
)
# A question asked as a statement: "I'd like to understand why ...", "not sure how ...".
_EN_ASKING = re.compile(
    r"\b(i('d| would) like to (understand|know)|i want to (understand|know)|"
    r"i (don't|do not|can't|cannot) (understand|see|get|figure out)|i('m| am) (confused|"
    r"wondering|not sure)|not sure (why|how|what|whether|if)|(can|could) (someone|anyone|you) "
    r"explain|please explain|explain (why|how|what))\b",
    re.IGNORECASE,
)
_JA_QUESTION = re.compile(
    r"(ですか|ますか|でしょうか|のか|んですか|教えて|なぜ|どうして|どうやって|どう|何故|何が|"
    r"分かりません|わかりません|分からない|わからない|知りたい|理解できません|気になります)"
)
_SENTENCE = re.compile(r"[^.!?。！？\n]*[?？]")


@dataclass
class MinedQuestion:
    """One thread's question, ready to group: text for the encoder, a short phrasing
    for the draft and its aliases, the best staff answer (if any) and where it came from."""

    forum: str
    thread_id: str
    url: str | None
    title: str
    text: str
    phrasing: str
    lang: str
    asked_at: datetime | None
    votes: int
    answer: str | None
    answer_lang: str | None
    staff_answered: bool


def looks_like_a_question(text: str) -> bool:
    return bool(
        _QUESTION_MARK.search(text)
        or _EN_OPENING.search(text)
        or _EN_ASKING.search(text)
        or _JA_QUESTION.search(text)
    )


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:、") + "…"


def _phrasing(title: str, body: str) -> str:
    """The question in a line: the title when it asks, else the body's first question
    sentence, else the title, else the body's start."""
    if title and looks_like_a_question(title):
        return _clip(normalize(title), MAX_PHRASING_CHARS)
    first = _SENTENCE.search(body)
    if first and len(first.group(0).strip()) >= 8:
        return _clip(normalize(first.group(0)), MAX_PHRASING_CHARS)
    return _clip(normalize(title or body), MAX_PHRASING_CHARS)


def _best_answer(thread: Thread) -> Post | None:
    """The staff's answer: an endorsed or accepted reply first, then a staff reply with
    the most votes, then the earliest staff reply."""
    replies = thread.posts[1:]
    endorsed = [p for p in replies if p.endorsed and p.body.strip()]
    staff = [p for p in replies if p.role == "staff" and p.body.strip()]
    pool = endorsed or staff
    if not pool:
        return None
    return max(pool, key=lambda p: (p.votes, -replies.index(p)))


def extract(thread: Thread) -> tuple[MinedQuestion | None, str, Removed]:
    """The thread's question (None when it has none) and why not: "ok",
    "staff_post" (an announcement by staff), "not_a_question" or "empty"."""
    removed = Removed()
    if not thread.posts:
        return None, "empty", removed
    opening = thread.opening
    if opening.role == "staff":
        return None, "staff_post", removed
    names = {p.author for p in thread.posts if p.author}
    title, gone = scrub(thread.title, names)
    removed += gone
    body, gone = scrub(opening.body, names)
    removed += gone
    if not (title.strip() or body.strip()):
        return None, "empty", removed
    if not looks_like_a_question(f"{title}\n{body}"):
        return None, "not_a_question", removed
    answer_post = _best_answer(thread)
    answer = answer_lang = None
    if answer_post is not None:
        answer, gone = scrub(answer_post.body, names)
        removed += gone
        answer = _clip(answer, MAX_ANSWER_CHARS) or None
        answer_lang = detect_lang(answer) if answer else None
    phrasing = _phrasing(title, body)
    text = _clip(normalize(f"{title}\n{body}" if title else body), MAX_QUESTION_CHARS)
    question = MinedQuestion(
        forum=thread.forum,
        thread_id=thread.thread_id,
        url=thread.url,
        title=_clip(normalize(title), MAX_PHRASING_CHARS),
        text=text,
        phrasing=phrasing,
        lang=detect_lang(phrasing + " " + text),
        asked_at=opening.created_at,
        votes=max(0, opening.votes),
        answer=answer,
        answer_lang=answer_lang,
        staff_answered=answer is not None
        and any(p.role == "staff" or p.endorsed for p in thread.posts[1:]),
    )
    return question, "ok", removed
