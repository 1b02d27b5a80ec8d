"""The Flask settings, from ``knowledge.settings`` with safe defaults for the embedded mode."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from knowledge.settings import settings


def instance_secret(instance: Path) -> str:
    """A random key kept in the instance folder, for the embedded one-machine setup.

    Processes on one machine share it; several hosts must set SECRET_KEY instead.
    """
    path = instance / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        instance.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(key)
        except FileExistsError:  # another process won the race; use its key
            return path.read_text().strip()
        return key


# Limit families: anonymous (per client address) and per token.
RATE_LIMITS = ("RATELIMIT_ASK", "RATELIMIT_ASK_TOKEN", "RATELIMIT_RUN", "RATELIMIT_RUN_TOKEN")


def default_settings(instance_path: str) -> dict[str, Any]:
    instance = Path(instance_path)
    s = settings()
    return {
        "DATABASE_URL": s.DATABASE_URL or f"sqlite:///{instance / 'runnable_answers.db'}",
        "QUEUE_URL": s.QUEUE_URL or f"sqlite:///{instance / 'queue.db'}",
        "SECRET_KEY": s.SECRET_KEY or instance_secret(instance),
        "MAX_CONTENT_LENGTH": 256 * 1024,  # request bodies over this get 413
        "JSON_SORT_KEYS": False,
        "REQUIRE_TOKEN_FOR_READ": s.REQUIRE_TOKEN_FOR_READ,
        "RATELIMIT_STORAGE_URI": s.RATELIMIT_STORAGE_URI,
        **{name: getattr(s, name) for name in RATE_LIMITS},
        "LOGIN_LIMIT_PER_USER": s.LOGIN_LIMIT_PER_USER,
        "LOGIN_LIMIT_PER_ADDRESS": s.LOGIN_LIMIT_PER_ADDRESS,
        "TRUSTED_PROXY_HOPS": s.TRUSTED_PROXY_HOPS,
        "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
        "INDEX_SNAPSHOT_DIR": str(s.INDEX_SNAPSHOT_DIR or instance / "index-snapshots"),
        "INDEX_SNAPSHOT_MIN_UNITS": s.INDEX_SNAPSHOT_MIN_UNITS,
        "INDEX_ANN_MIN_UNITS": s.INDEX_ANN_MIN_UNITS,
        "INDEX_DELTA_MAX": s.INDEX_DELTA_MAX,
    }
