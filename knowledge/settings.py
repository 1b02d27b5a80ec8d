"""Every setting the service reads from the environment, in one place.

The web app, the worker, the CLI, gunicorn's config and the encoders all read
``settings()``: the environment is parsed once per process (pydantic-settings), and a
bad value stops the process at start with the variable's name. Flask settings beyond
these can still be given as ``RA_<NAME>`` (``app.config.from_prefixed_env``).

The README's settings table lists exactly these fields (``tests/test_settings.py``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # An empty variable counts as unset (a compose file often writes FOO= for "no value").
    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", frozen=True, env_ignore_empty=True
    )

    # Storage. Empty: files in the app's instance folder (the embedded setup).
    DATABASE_URL: str = ""
    QUEUE_URL: str = ""
    RATELIMIT_STORAGE_URI: str = "memory://"
    # Sessions. Empty: a random key kept in the instance folder (one machine only).
    SECRET_KEY: str = ""
    # gunicorn (service/gunicorn_conf.py).
    WEB_BIND: str = "127.0.0.1:5000"
    WEB_WORKERS: int = Field(default=1, ge=1, le=64)
    WEB_THREADS: int = Field(default=4, ge=1, le=256)
    WEB_ACCESS_LOG: str = "-"
    # Encoders: threads per call (0: every core; the web role sets 1) and the graph cache.
    EMBED_THREADS: int = Field(default=0, ge=0, le=256)
    MODEL_CACHE_DIR: Path | None = None
    # Entries whose token states a process keeps (knowledge.token_match); a knowledge
    # base with more is answered without the token check (0: never with it).
    TOKEN_MATCH_ENTRIES: int = Field(default=200, ge=0, le=100_000)
    XDG_CACHE_HOME: Path | None = None  # the user's cache folder, when no MODEL_CACHE_DIR
    # The index: where snapshots are kept (empty: the instance folder's
    # index-snapshots), the sizes above which they are written and a graph finds the
    # candidates, and how many changed entries are caught up before the base is rebuilt.
    INDEX_SNAPSHOT_DIR: Path | None = None
    INDEX_SNAPSHOT_MIN_UNITS: int = Field(default=30_000, ge=0)
    INDEX_ANN_MIN_UNITS: int = Field(default=150_000, ge=1)
    INDEX_DELTA_MAX: int = Field(default=2_000, ge=1)
    # Knowledge base upgrades: delete vectors of models no longer used.
    DROP_OLD_VECTORS: bool = False
    # API: reads need a token too; rate limits per client address / per token.
    REQUIRE_TOKEN_FOR_READ: bool = False
    RATELIMIT_ASK: str = "60 per minute"
    RATELIMIT_ASK_TOKEN: str = "300 per minute"
    RATELIMIT_RUN: str = "20 per minute"
    RATELIMIT_RUN_TOKEN: str = "120 per minute"
    # TA logins: failed attempts allowed per address and username, and per address.
    LOGIN_LIMIT_PER_USER: str = "5 per 10 minutes"
    LOGIN_LIMIT_PER_ADDRESS: str = "20 per 10 minutes"
    # Behind proxies: how many (X-Forwarded-For/-Proto are trusted that many hops deep).
    TRUSTED_PROXY_HOPS: int = Field(default=0, ge=0, le=5)
    # The session cookie is Secure over https; this makes it Secure always.
    SESSION_COOKIE_SECURE: bool = False
    # Worker: refuse to start, and runs fail, without bubblewrap (never rlimits only).
    REQUIRE_SANDBOX: bool = False


@cache
def settings() -> Settings:
    """This process's settings, read from the environment on first use."""
    return Settings()
