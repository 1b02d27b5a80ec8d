"""Rate limits on ask and run, per token (callers with a token) or per client address.

Flask-Limiter with in-memory storage by default, or any ``limits`` storage URI (e.g.
``redis://127.0.0.1:6379/1``) from ``RATELIMIT_STORAGE_URI``, so every web replica shares
the counts. A refused request gets ``429 {"error": {"code": "rate_limited"}}`` and a
``Retry-After`` header; limited endpoints also report ``X-RateLimit-*`` headers.

Each app gets its own Limiter (tests build many apps in one process).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from typing import Any, cast

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from service.auth_tokens import principal_or_none
from service.errors import error_response

log = logging.getLogger(__name__)
# endpoint -> limit family; each family has an anonymous and a per-token limit setting.
LIMITED_ENDPOINTS: dict[str, str] = {"api.ask": "ASK", "runs.start_run": "RUN"}


def rate_key() -> str:
    """``token:<id>`` for a valid token, else ``addr:<client address>``."""
    principal = principal_or_none()
    if principal is not None and principal.token_id is not None:
        return f"token:{principal.token_id}"
    return f"addr:{request.remote_addr or 'unknown'}"


def client_pseudonym() -> str:
    """Who is asking, as a keyed hash of ``rate_key()``: stable per token or address, and
    no address is stored (the TAs' queue caps one client's share with it)."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, rate_key().encode(), hashlib.sha256).hexdigest()[:32]


def _limit_for(family: str) -> Callable[[], str]:
    def provider() -> str:
        suffix = "_TOKEN" if rate_key().startswith("token:") else ""
        return str(current_app.config[f"RATELIMIT_{family}{suffix}"])

    return provider


def limiter() -> Limiter:
    return current_app.extensions["rate_limiter"]


def _too_many(exc: RateLimitExceeded) -> Response:
    current = limiter().current_limit
    window = current.limit.get_expiry() if current is not None else 60
    try:
        reset_at = current.reset_at if current is not None else time.time() + window
    except Exception:  # the storage went away since the check: fall back to the window
        log.warning("rate limit storage unavailable for Retry-After", exc_info=True)
        reset_at = time.time() + window
    retry_after = min(window, max(1, math.ceil(reset_at - time.time())))
    response = error_response(
        429,
        "rate_limited",
        f"Too many requests ({exc.description}); retry in {retry_after} s.",
        retry_after=retry_after,
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


def _window(current: RequestLimit) -> tuple[int, int]:
    """(remaining, reset timestamp) of the limit this request was counted against.

    Flask-Limiter asks Redis with GET, then TTL: two roundtrips on every limited request.
    For the fixed-window strategy on Redis, one pipelined roundtrip gives the same figures.
    """
    strategy = current.limiter
    storage = strategy.storage
    if isinstance(strategy, FixedWindowRateLimiter) and isinstance(storage, RedisStorage):
        key = storage.prefixed_key(current.key)
        # (typed as limits' protocol, which lacks pipeline(); it is a redis client)
        pipe = cast(Any, storage.get_connection(True)).pipeline(transaction=False)
        count, ttl = pipe.get(key).ttl(key).execute()
        remaining = max(0, current.limit.amount - int(count or 0))
        return remaining, int(time.time() + max(int(ttl), 0) + 1)
    return current.remaining, current.reset_at


def _rate_headers(response: Response) -> Response:
    ext = current_app.extensions.get("rate_limiter")
    current = ext.current_limit if ext is not None else None
    if current is None:
        return response
    try:
        remaining, reset_at = _window(current)
    except Exception:  # informational headers are not worth failing a request for
        log.warning("rate limit storage unavailable for headers", exc_info=True)
        return response
    response.headers["X-RateLimit-Limit"] = str(current.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(remaining)
    response.headers["X-RateLimit-Reset"] = str(reset_at)
    return response


def init_app(app: Flask) -> None:
    """Call after the API blueprints are registered: it wraps their view functions."""
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "ra")
    # If Redis goes away, count in memory until it is back rather than fail the request.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    ext = Limiter(
        rate_key,
        storage_uri=app.config["RATELIMIT_STORAGE_URI"],
        strategy=app.config.get("RATELIMIT_STRATEGY", "fixed-window"),
        headers_enabled=False,  # it would put Retry-After on every response; see _rate_headers
    )
    ext.init_app(app)
    app.extensions["rate_limiter"] = ext
    for endpoint, family in LIMITED_ENDPOINTS.items():
        view = app.view_functions[endpoint]
        limited = ext.limit(_limit_for(family), scope=family.lower())(view)
        app.view_functions[endpoint] = cast(Callable[..., Any], limited)  # (typed as async)
    app.register_error_handler(RateLimitExceeded, _too_many)
    app.after_request(_rate_headers)
