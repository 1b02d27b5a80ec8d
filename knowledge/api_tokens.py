"""API tokens for bots and scripts. Framework-free: the CLI, the API and the TA pages share it.

A token is shown once, when it is created, and only its SHA-256 is stored (tokens are 256
random bits, so a fast unsalted hash is safe). Its first characters are kept as a
``prefix`` so people can tell tokens apart and revoke one without the secret.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from knowledge.tables import ApiToken, utcnow

SCOPES: tuple[str, ...] = ("ask", "run", "write")
SECRET_PREFIX = "ra_"
PREFIX_CHARS = 11  # "ra_" + 8 characters of the random part
TOKEN_RE = re.compile(r"^ra_[A-Za-z0-9_-]{43}$")
MAX_NAME_CHARS = 120
MAX_EXPIRY_DAYS = 3650
# last_used_at is refreshed at most this often, so busy bots do not write on every call.
TOUCH_INTERVAL = timedelta(seconds=60)


class TokenError(Exception):
    """A presented token cannot be used. ``code`` is stable for API clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TokenLookupError(LookupError):
    """No token, or more than one, matches an id or prefix given by a person."""


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token (never its secret)."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    user_id: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime

    def status(self, now: datetime | None = None) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class NewToken:
    info: TokenInfo
    secret: str  # shown to the person once; not stored anywhere


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes from ``"ask,run"`` or a list, validated, de-duplicated, in canonical order."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    wanted = {s.strip().lower() for s in items if s and s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; known: {', '.join(SCOPES)}")
    if not wanted:
        raise ValueError(f"at least one scope is required ({', '.join(SCOPES)})")
    return tuple(s for s in SCOPES if s in wanted)


def create_token(
    session: Session,
    name: str,
    scopes: str | Iterable[str],
    *,
    expires_in_days: int | None = None,
    expires_at: datetime | None = None,
    user_id: int | None = None,
    now: datetime | None = None,
) -> NewToken:
    """Store a new token and return it with its secret (the only time the secret exists)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise ValueError(f"the token name must be 1 to {MAX_NAME_CHARS} characters")
    checked = parse_scopes(scopes)
    now = now or utcnow()
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise ValueError(f"expiry must be between 1 and {MAX_EXPIRY_DAYS} days")
        expires_at = now + timedelta(days=expires_in_days)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        token_hash=hash_token(secret),
        prefix=secret[:PREFIX_CHARS],
        scopes=list(checked),
        user_id=user_id,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return NewToken(info=token_info(row), secret=secret)


def verify_token(
    session: Session, secret: str, *, now: datetime | None = None, touch: bool = True
) -> TokenInfo:
    """The token's info if it is known, not revoked and not expired; else TokenError."""
    if not TOKEN_RE.match(secret):
        raise TokenError("invalid_token", "The token is malformed.")
    row = _by_secret(session, secret)
    if row is None:
        raise TokenError("invalid_token", "The token is not known.")
    now = now or utcnow()
    info = token_info(row)
    status = info.status(now)
    if status == "revoked":
        raise TokenError("token_revoked", "The token has been revoked.")
    if status == "expired":
        raise TokenError("token_expired", "The token has expired.")
    if touch and (info.last_used_at is None or now - info.last_used_at >= TOUCH_INTERVAL):
        row.last_used_at = now
        session.flush()
    return info


def revoke_token(
    session: Session, id_or_prefix: str | int, *, now: datetime | None = None
) -> TokenInfo:
    """Revoke the token with this id, prefix or secret. Revoking twice keeps the first time."""
    row = _find(session, str(id_or_prefix).strip())
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
        session.flush()
    return token_info(row)


def get_token(session: Session, token_id: int) -> TokenInfo | None:
    row = session.get(ApiToken, token_id)
    return token_info(row) if row is not None else None


def list_tokens(
    session: Session, *, include_revoked: bool = True, user_id: int | None = None
) -> list[TokenInfo]:
    """Tokens, newest first."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return [token_info(row) for row in session.scalars(query)]


def token_info(row: ApiToken) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(s for s in SCOPES if s in (row.scopes or [])),
        user_id=row.user_id,
        expires_at=_aware(row.expires_at),
        revoked_at=_aware(row.revoked_at),
        last_used_at=_aware(row.last_used_at),
        created_at=_aware(row.created_at) or utcnow(),
    )


def _by_secret(session: Session, secret: str) -> ApiToken | None:
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))


def _find(session: Session, key: str) -> ApiToken:
    if key.isdigit():
        row = session.get(ApiToken, int(key))
        if row is None:
            raise TokenLookupError(f"no token with id {key}")
        return row
    if TOKEN_RE.match(key):
        row = _by_secret(session, key)
        if row is None:
            raise TokenLookupError("no token matches that secret")
        return row
    if len(key) < 4:
        raise TokenLookupError("give a token id, or a prefix of at least 4 characters")
    prefixed = key if key.startswith(SECRET_PREFIX) else SECRET_PREFIX + key
    rows = session.scalars(
        select(ApiToken).where(
            or_(ApiToken.prefix == key, ApiToken.prefix.startswith(prefixed, autoescape=True))
        )
    ).all()
    if not rows:
        raise TokenLookupError(f"no token with prefix {key!r}")
    if len(rows) > 1:
        raise TokenLookupError(f"{len(rows)} tokens start with {key!r}; give the id instead")
    return rows[0]


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
