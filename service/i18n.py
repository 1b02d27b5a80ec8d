"""Interface strings in English and Japanese, and the choice of the interface language.

The interface language comes from the ``ra_lang`` cookie (set by the language switch),
else from Accept-Language, else English. Answers have their own language: the one the
question was asked in, where the entry has it.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from flask import Flask, g, request
from werkzeug.wrappers import Response as BaseResponse

LANGS: tuple[str, ...] = ("en", "ja")
COOKIE = "ra_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600


def _catalogue() -> dict[str, tuple[str, str]]:
    """messages.yaml (section -> name -> {en, ja}) as "<section>.<name>" -> (en, ja)."""
    sections = yaml.safe_load((Path(__file__).with_name("messages.yaml")).read_text("utf-8"))
    return {
        f"{section}.{name}": (text["en"], text["ja"])
        for section, names in sections.items()
        for name, text in names.items()
    }


# key -> (English, Japanese). Keys are "<section>.<name>"; pages hand whole sections to JS.
STRINGS: dict[str, tuple[str, str]] = _catalogue()


def ui_lang() -> str:
    """The interface language of this request."""
    if "ui_lang" not in g:
        chosen = request.cookies.get(COOKIE)
        if chosen not in LANGS:
            chosen = request.accept_languages.best_match(LANGS, default="en")
        g.ui_lang = chosen
    return g.ui_lang


def other_lang() -> str:
    return "ja" if ui_lang() == "en" else "en"


def translate(key: str, lang: str | None = None, **values: object) -> str:
    """The string ``key`` in ``lang`` (default: the interface language), with ``{values}``."""
    pair = STRINGS.get(key)
    if pair is None:
        return key
    text = pair[1] if (lang or ui_lang()) == "ja" else pair[0]
    return text.format(**values) if values else text


def js_strings(*sections: str) -> dict[str, str]:
    """The interface strings of ``sections`` for scripts, in the interface language."""
    prefixes = tuple(f"{s}." for s in sections)
    return {key: translate(key) for key in STRINGS if key.startswith(prefixes)}


def remember_lang(response: BaseResponse, lang: str) -> None:
    response.set_cookie(
        COOKIE,
        lang,
        max_age=COOKIE_MAX_AGE,
        samesite="Lax",
        httponly=True,
        secure=request.is_secure,
    )


def init_app(app: Flask) -> None:
    app.jinja_env.globals["_"] = translate

    @app.context_processor
    def _lang_context() -> dict[str, object]:
        return {"ui_lang": ui_lang(), "other_lang": other_lang(), "lang_switch_next": None}
