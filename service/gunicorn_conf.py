"""gunicorn settings for the web role (override with WEB_* environment variables)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from knowledge.settings import settings

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.http.message import Request
    from gunicorn.workers.base import Worker

# Each request's encoder call runs on one thread: the web role gets its parallelism from
# processes x threads, and more inference threads than cores only contend. (Set before
# the settings are first read, which the workers inherit.)
# So do numpy's matrix products (the token recall's): OpenBLAS threads of concurrent
# requests oversubscribed the cores (bench.load: 33 distinct asks/s so, 81 with one).
# Read when numpy is first imported, which is after this file in every process.
os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.setdefault("EMBED_THREADS", "1"))
_settings = settings()

bind = _settings.WEB_BIND
workers = _settings.WEB_WORKERS
threads = _settings.WEB_THREADS
worker_class = "gthread"
timeout = 60
graceful_timeout = 20
keepalive = 5
# Headers up to 32 KiB reach the app, which answers anything over 8 KiB with its own
# JSON 431 under /api (gunicorn's own refusal is an HTML page).
limit_request_field_size = 32768
accesslog = _settings.WEB_ACCESS_LOG


def on_starting(server: Arbiter) -> None:
    """Several workers must share one real secret, or sessions break between them."""
    if server.cfg.workers > 1 and not _settings.SECRET_KEY:
        raise SystemExit(
            "refusing to start several web workers without SECRET_KEY: set it to a long "
            "random value shared by every web process (e.g. python -c "
            "'import secrets; print(secrets.token_urlsafe(48))')"
        )


def pre_request(worker: Worker, req: Request) -> None:
    """A body over the app's limit gets a 413 (service/errors.py): close the connection
    after it, or the unread rest of the body would be taken for the next request."""
    limit = worker.wsgi.config.get("MAX_CONTENT_LENGTH")
    length = next((v for k, v in req.headers if k == "CONTENT-LENGTH"), "")
    if limit and length.isdigit() and int(length) > limit:
        req.must_close = True


def post_worker_init(worker: Worker) -> None:
    """Load the models and the index before taking traffic, so the first ask is fast."""
    started = time.monotonic()
    worker.wsgi.extensions["core"].retriever.warm_up()
    worker.log.info("index and models ready in %.1f s", time.monotonic() - started)
