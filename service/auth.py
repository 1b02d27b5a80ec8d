"""TA login sessions, CSRF tokens, a failed-login throttle and security headers for pages.

Sessions are Flask's signed cookies holding the user id; every request re-reads the user
so a deactivated account loses access at once. CSRF: one random token per session, sent
back in a hidden ``csrf_token`` field (forms) or an ``X-CSRF-Token`` header (fetch), and
compared in constant time on every unsafe request to the TA pages.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from knowledge.accounts import authenticate
from knowledge.tables import User
from service.auth_tokens import Principal, register_session_principal
from service.extensions import core
from service.i18n import translate

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
STAFF_ROLES = frozenset({"ta", "admin"})
# Content-Security-Policy of every page: scripts, styles and images only from this app.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


# -- CSRF -----------------------------------------------------------------
def csrf_token() -> str:
    """This session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_valid() -> bool:
    """True when the request carries this session's token (form field or header)."""
    expected = session.get("csrf")
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not expected or not sent:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode())


# -- sessions -------------------------------------------------------------
def current_user() -> User | None:
    """The logged-in active staff user, loaded once per request."""
    if "user" not in g:
        g.user = None
        user_id = session.get("uid")
        if isinstance(user_id, int):
            with core().sessions() as db:
                user = db.get(User, user_id)
                if user is not None and user.is_active and user.role in STAFF_ROLES:
                    db.expunge(user)
                    g.user = user
    return g.user


def log_in(user: User) -> None:
    """Start a fresh session for ``user`` (a new session id and CSRF token: no fixation)."""
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    csrf_token()
    g.user = user


def log_out() -> None:
    session.clear()
    g.user = None


def check_login(username: str, password: str) -> User | None:
    with core().sessions() as db:
        user = authenticate(db, username, password)
        if user is not None:
            db.expunge(user)
        return user


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path on this site, else ``default`` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target.rstrip("?") or default


# -- failed-login throttle --------------------------------------------------
class LoginThrottle:
    """At most ``limit`` failed logins per client address and username in ``window_s``."""

    def __init__(self, limit: int = 5, window_s: float = 600.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures[key]
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def blocked(self, address: str, username: str) -> bool:
        with self._lock:
            return len(self._recent((address, username.lower()), time.monotonic())) >= self.limit

    def failed(self, address: str, username: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent((address, username.lower()), now).append(now)
            if len(self._failures) > 10_000:  # forget idle keys
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._failures.pop((address, username.lower()), None)


def throttle() -> LoginThrottle:
    return current_app.extensions["login_throttle"]


# -- staff blueprints -------------------------------------------------------
def wants_json() -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


def refuse(status: int, code: str, title: str, message: str) -> Response:
    """A JSON error for scripts, an error page for people."""
    if wants_json():
        response = jsonify({"error": {"code": code, "message": message}})
        response.status_code = status
        return response
    page = render_template("error.html", title=title, message=message)
    return Response(page, status=status, mimetype="text/html")


def guard_staff_blueprint(bp: Blueprint, public_endpoints: frozenset[str] = frozenset()) -> None:
    """Every request to ``bp`` needs a logged-in TA, and unsafe ones the CSRF token."""

    @bp.before_request
    def _require_staff_and_csrf() -> BaseResponse | None:
        if request.endpoint not in public_endpoints and current_user() is None:
            if wants_json():
                return refuse(401, "unauthorized", "Log in", "Log in to use the TA workspace.")
            return redirect(url_for("ta.login", next=local_path(request.full_path)))
        if request.method not in SAFE_METHODS and not csrf_valid():
            return refuse(
                400, "csrf_failed", translate("error.csrf_title"), translate("error.csrf")
            )
        return None

    @bp.after_request
    def _private_page(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        return harden(response)


# -- headers ----------------------------------------------------------------
def harden(response: Response) -> Response:
    """Security headers for HTML pages (an ``after_request`` hook of the page blueprints)."""
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def session_principal() -> Principal | None:
    """A logged-in TA acting on the JSON API (all scopes), for ``service.auth_tokens``."""
    user = current_user()
    if user is None:
        return None
    return Principal(
        kind="session",
        name=user.username,
        scopes=frozenset({"ask", "run", "write"}),
        user_id=user.id,
    )


def init_app(app: Flask) -> None:
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if app.config.get("PERMANENT_SESSION_LIFETIME") == timedelta(days=31):  # Flask's default
        app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=12)
    app.extensions["login_throttle"] = LoginThrottle()
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user
    register_session_principal(app, session_principal)
