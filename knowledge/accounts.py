"""TA accounts: creation, password checks and deactivation. Framework-free.

Passwords are stored only as salted hashes (``werkzeug.security``, scrypt). Usernames
are case-insensitive and stored lower-case.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from knowledge.tables import User

ROLES: tuple[str, ...] = ("ta", "admin")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,79}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
# Compared against when the username is unknown, so a miss costs as much as a hit.
_DUMMY_HASH = generate_password_hash("not a real password, only spends time")


class AccountError(ValueError):
    """A username, password or role that cannot be accepted."""


def normalize_username(username: str) -> str:
    return username.strip().lower()


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == normalize_username(username)))


def create_user(session: Session, username: str, password: str, role: str = "ta") -> User:
    """Add an account; raises AccountError for a bad or taken username, weak password or role."""
    name = normalize_username(username)
    if not USERNAME_RE.match(name):
        raise AccountError(
            "a username has 2-80 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if role not in ROLES:
        raise AccountError(f"the role must be one of: {', '.join(ROLES)}")
    check_new_password(password)
    if find_user(session, name) is not None:
        raise AccountError(f"the username {name!r} is taken")
    user = User(username=name, password_hash=generate_password_hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def _existing_user(session: Session, username: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise AccountError(f"no user called {normalize_username(username)!r}")
    return user


def set_password(session: Session, username: str, password: str) -> User:
    user = _existing_user(session, username)
    check_new_password(password)
    user.password_hash = generate_password_hash(password)
    session.flush()
    return user


def set_active(session: Session, username: str, active: bool) -> User:
    user = _existing_user(session, username)
    user.is_active = active
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this username and password, else None (in constant-ish time)."""
    if len(password) > MAX_PASSWORD or len(username) > 200:
        return None
    user = find_user(session, username)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.is_active:
        return None
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(func.lower(User.username))))
