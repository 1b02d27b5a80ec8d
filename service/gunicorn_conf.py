"""gunicorn settings for the web role (override with WEB_* environment variables)."""

from __future__ import annotations

import os
import time

bind = os.environ.get("WEB_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("WEB_WORKERS", "1"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("WEB_ACCESS_LOG", "-")
# Each request's encoder call runs on one thread: the web role gets its parallelism from
# processes x threads, and more inference threads than cores only contend.
os.environ.setdefault("EMBED_THREADS", "1")


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    """Several workers must share one real secret, or sessions break between them."""
    if server.cfg.workers > 1 and not os.environ.get("SECRET_KEY"):
        raise SystemExit(
            "refusing to start several web workers without SECRET_KEY: set it to a long "
            "random value shared by every web process (e.g. python -c "
            "'import secrets; print(secrets.token_urlsafe(48))')"
        )


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    """Load the models and the index before taking traffic, so the first ask is fast."""
    started = time.monotonic()
    worker.wsgi.extensions["core"].retriever.warm_up()
    worker.log.info("index and models ready in %.1f s", time.monotonic() - started)
