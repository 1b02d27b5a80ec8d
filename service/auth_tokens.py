"""Who is calling the API: ``Authorization: Bearer <token>`` with scopes, or a TA session.

- ``require_scope("write")`` refuses anyone without a valid token that has the scope
  (401 without a usable token, 403 with a token lacking the scope).
- ``require_scope("ask", anonymous=True)`` lets anonymous callers through unless the
  ``REQUIRE_TOKEN_FOR_READ`` setting is on; a token that *is* sent must still be valid and
  carry the scope.
- ``require_read`` guards plain reads: open by default, any valid token when
  ``REQUIRE_TOKEN_FOR_READ`` is on.

A logged-in TA page session can stand in for a token: the TA pages register a callable
with :func:`register_session_principal` that returns a :class:`Principal` (or None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, current_app, g, request

from knowledge import api_tokens
from service.errors import ApiError
from service.extensions import core

F = TypeVar("F", bound=Callable[..., Any])
SESSION_PRINCIPAL = "api_session_principal"
_UNSET = object()


@dataclass(frozen=True)
class Principal:
    kind: str  # "token" or "session"
    name: str
    scopes: frozenset[str]
    token_id: int | None = None
    user_id: int | None = None

    @property
    def author(self) -> str:
        """How revisions written by this caller are attributed."""
        return f"{'token' if self.kind == 'token' else 'ta'}:{self.name}"[:120]


def bearer_secret() -> str | None:
    """The token in the Authorization header, None when there is no header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized(
            "invalid_authorization",
            "Use 'Authorization: Bearer <token>'.",
            error="invalid_request",
        )
    return value.strip()


def current_principal() -> Principal | None:
    """The caller's token (validated, cached per request), else a TA session, else None."""
    cached = g.get("_api_principal", _UNSET)
    if cached is not _UNSET:
        return cast(Principal | None, cached)
    principal = _token_principal()
    if principal is None:
        principal = _session_principal()
    g._api_principal = principal
    return principal


def principal_or_none() -> Principal | None:
    """Like current_principal, but an unusable token counts as anonymous (for rate keys)."""
    try:
        return current_principal()
    except ApiError:
        return None


def token_required_for_read() -> bool:
    return bool(current_app.config.get("REQUIRE_TOKEN_FOR_READ"))


def require_scope(scope: str, *, anonymous: bool = False) -> Callable[[F], F]:
    """Refuse the view unless the caller may use ``scope`` (see the module docstring)."""
    if scope not in api_tokens.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                if g.get("session_needs_csrf") and not anonymous:
                    raise ApiError(
                        403,
                        "csrf_failed",
                        "A logged-in session must send its X-CSRF-Token header with writes.",
                    )
                if not anonymous or token_required_for_read():
                    raise _unauthorized(
                        "token_required", f"This needs a token with the {scope!r} scope."
                    )
            elif scope not in principal.scopes:
                raise ApiError(
                    403,
                    "insufficient_scope",
                    f"The token lacks the {scope!r} scope.",
                    headers={
                        "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'
                    },
                    required_scope=scope,
                )
            return view(*args, **kwargs)

        return cast(F, _marked(wrapped, scope, anonymous))

    return decorate


def _marked(view: Callable[..., Any], scope: str | None, anonymous: bool) -> Callable[..., Any]:
    """The view with what it requires as attributes (the OpenAPI test reads them)."""
    vars(view).update(required_scope=scope, anonymous=anonymous)
    return view


def require_read(view: F) -> F:
    """Open reads, unless REQUIRE_TOKEN_FOR_READ: then any valid token will do."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_principal() is None and token_required_for_read():
            raise _unauthorized("token_required", "This API needs a token.")
        return view(*args, **kwargs)

    return cast(F, _marked(wrapped, None, True))


def register_session_principal(app: Flask, fn: Callable[[], Principal | None]) -> None:
    """Let a logged-in page session act on the API (the TA pages call this)."""
    app.extensions[SESSION_PRINCIPAL] = fn


def _token_principal() -> Principal | None:
    secret = bearer_secret()
    if secret is None:
        return None
    try:
        with core().sessions() as session, session.begin():
            info = api_tokens.verify_token(session, secret)
    except api_tokens.TokenError as exc:
        raise _unauthorized(exc.code, str(exc)) from None
    return Principal(
        kind="token",
        name=info.name,
        scopes=frozenset(info.scopes),
        token_id=info.id,
        user_id=info.user_id,
    )


def _session_principal() -> Principal | None:
    fn = current_app.extensions.get(SESSION_PRINCIPAL)
    if fn is None:
        return None
    principal = fn()
    if principal is None:
        return None
    # A cookie travels with cross-site requests; a JSON content type does not without CORS.
    if request.method not in ("GET", "HEAD", "OPTIONS", "DELETE") and not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send 'Content-Type: application/json' with session-authenticated writes.",
        )
    return cast(Principal, principal)


def _unauthorized(code: str, message: str, error: str = "invalid_token") -> ApiError:
    challenge = 'Bearer realm="api"'
    if code != "token_required":
        challenge += f', error="{error}"'
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})
