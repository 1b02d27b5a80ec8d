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
accesslog = "-"


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    """Load the models and the index before taking traffic, so the first ask is fast."""
    started = time.monotonic()
    worker.wsgi.extensions["core"].retriever.warm_up()
    worker.log.info("index and models ready in %.1f s", time.monotonic() - started)
