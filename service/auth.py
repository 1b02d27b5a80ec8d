"""TA login sessions, CSRF tokens, a failed-login throttle and security headers for pages.

Sessions are Flask's signed cookies holding the user id; every request re-reads the user
so a deactivated account loses access at once. CSRF: one random token per session, sent
back in a hidden ``csrf_token`` field (forms) or an ``X-CSRF-Token`` header (fetch), and
compared in constant time on every unsafe request to the TA pages.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    has_request_context,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from limits import RateLimitItem, parse
from werkzeug.wrappers import Response as BaseResponse

from knowledge.accounts import authenticate
from knowledge.tables import User
from service.auth_tokens import Principal, register_session_principal
from service.extensions import core
from service.i18n import translate
from service.limits import limiter

log = logging.getLogger(__name__)

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
    """Failed TA logins, counted in the rate limiter's storage (shared by every web process
    when it is Redis): per client address and username, and per address whatever the
    username (password spraying). A username locked from one address can still log in
    from another, so no one can lock a TA out for everyone. Checked before the password
    hash is computed."""

    def _limits(self) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        return [
            (parse(current_app.config["LOGIN_LIMIT_PER_USER"]), ("user",)),
            (parse(current_app.config["LOGIN_LIMIT_PER_ADDRESS"]), ()),
        ]

    @staticmethod
    def _key(scope: tuple[str, ...], address: str, username: str) -> tuple[str, ...]:
        prefix = str(current_app.config.get("RATELIMIT_KEY_PREFIX", ""))
        return (prefix, "login", address, *(username.lower() for _ in scope))

    def blocked(self, address: str, username: str) -> bool:
        strategy = limiter().limiter
        try:
            return any(
                not strategy.test(limit, *self._key(scope, address, username))
                for limit, scope in self._limits()
            )
        except Exception:  # storage down: the password check still stands
            log.warning("login throttle storage unavailable", exc_info=True)
            return False

    def failed(self, address: str, username: str) -> None:
        strategy = limiter().limiter
        try:
            for limit, scope in self._limits():
                strategy.hit(limit, *self._key(scope, address, username))
        except Exception:
            log.warning("login throttle storage unavailable", exc_info=True)

    def succeeded(self, address: str, username: str) -> None:
        limit, scope = self._limits()[0]
        try:
            limiter().limiter.clear(limit, *self._key(scope, address, username))
        except Exception:
            log.warning("login throttle storage unavailable", exc_info=True)


def throttle() -> LoginThrottle:
    return current_app.extensions["login_throttle"]


class HttpsSessions(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over https (behind a proxy:
    with TRUSTED_PROXY_HOPS set), or always with SESSION_COOKIE_SECURE."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (
            has_request_context() and request.is_secure
        )


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
    """A logged-in TA acting on the JSON API (all scopes), for ``service.auth_tokens``.

    An unsafe request must carry the session's CSRF token (``X-CSRF-Token``, as the pages'
    scripts send it); without it the session does not count (``g.session_needs_csrf``).
    """
    user = current_user()
    if user is None:
        return None
    if request.method not in SAFE_METHODS and not csrf_valid():
        g.session_needs_csrf = True
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
    app.session_interface = HttpsSessions()
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user
    register_session_principal(app, session_principal)
