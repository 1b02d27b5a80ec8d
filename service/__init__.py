"""Flask app: HTTP only. Parses requests, calls knowledge/ and runners/, renders."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix

from service import (
    api,
    backup_cli,
    candidates_api,
    cli,
    errors,
    extensions,
    limits,
    mine_cli,
    openapi,
    runs_api,
    ta,
    ta_candidates,
    ta_tokens,
    tokens_cli,
    web,
    worker,
    write_api,
)
from service.config import default_settings


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(default_settings(app.instance_path))
    app.config.from_prefixed_env("RA")
    if config:
        app.config.update(config)
    if app.config["DATABASE_URL"].startswith("sqlite:///"):
        os.makedirs(app.instance_path, exist_ok=True)
    assert isinstance(app.json, DefaultJSONProvider)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops:  # the client address and scheme as the proxies in front saw them
        # (Flask documents this wrapping; mypy sees a method replaced)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    extensions.init_app(app)
    errors.init_app(app)
    api.init_app(app)
    runs_api.init_app(app)
    write_api.init_app(app)
    candidates_api.init_app(app)
    limits.init_app(app)  # after the API blueprints: it wraps ask and run
    openapi.init_app(app)
    web.init_app(app)
    ta.init_app(app)
    ta_tokens.init_app(app)
    ta_candidates.init_app(app)
    cli.init_app(app)
    tokens_cli.init_app(app)
    worker.init_app(app)
    backup_cli.init_app(app)
    mine_cli.init_app(app)
    return app
