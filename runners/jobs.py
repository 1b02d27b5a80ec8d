"""The job queue: Huey with SQLite storage by default, Redis when QUEUE_URL is redis://.

The web process only enqueues run ids; a consumer (``flask --app service worker``)
executes them. Huey persists queued tasks, so a consumer restart loses nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer
from sqlalchemy.orm import Session, sessionmaker

from runners import result_store
from runners.sandbox import IsolationRequest

DEFAULT_NAME = "runnable-answers"
_queues: dict[str, Queue] = {}
_lock = threading.Lock()


class Queue:
    """A Huey instance for one QUEUE_URL, with the run task registered on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.huey = make_huey(url)
        self.factory: sessionmaker[Session] | None = None  # set in the worker process
        # The isolation runs ask for; the worker sets "bubblewrap" when it is required.
        self.isolation: IsolationRequest = "auto"
        # The worker turns this on: each consumer thread starts its next child ahead.
        self.warm_children = False

        @self.huey.task(retries=0, name="execute_run")
        def execute_run(run_id: str) -> None:
            if self.factory is None:
                raise RuntimeError("the worker has no database configured")
            result_store.execute_run(self.factory, run_id, isolation=self.isolation)

        self._execute_run = execute_run

        @self.huey.on_startup(name="warm_child")
        def warm_child() -> None:  # in each consumer thread, as it comes online
            if self.warm_children:
                result_store.start_warm_child(self.isolation)

    def enqueue(self, run_id: str) -> None:
        self._execute_run(run_id)

    def consumer(self, threads: int, max_delay: float) -> Consumer:
        """Huey's consumer of this queue: ``threads`` runs at once; an idle SQLite queue is
        polled at most ``max_delay`` seconds apart (Redis pops block, so never wait)."""
        return self.huey.create_consumer(
            workers=threads,
            worker_type="thread",
            periodic=False,
            initial_delay=min(0.05, max_delay),
            backoff=1.5,
            max_delay=max_delay,
        )

    def pending(self) -> int:
        return self.huey.pending_count()

    def pending_run_ids(self) -> set[str]:
        """The run ids waiting in the queue (read without taking them)."""
        return {
            str(task.args[0])
            for task in self.huey.pending()
            if task.name.endswith("execute_run") and task.args
        }

    def ping(self) -> dict[str, Any]:
        """Queue health for /healthz (never raises)."""
        try:
            return {"ok": True, "backend": self.backend, "pending": self.pending()}
        except Exception as exc:  # the broker may be down; report, don't crash
            return {"ok": False, "backend": self.backend, "error": exc.__class__.__name__}

    @property
    def backend(self) -> str:
        return "redis" if self.url.startswith(("redis://", "rediss://")) else "sqlite"


def make_huey(url: str) -> Huey:
    """SqliteHuey for sqlite:///PATH, RedisHuey for redis://HOST:PORT/DB[?name=QUEUE]."""
    if url.startswith(("redis://", "rediss://")):
        # ?name= separates queues sharing one Redis (e.g. test runs); redis-py must not see it.
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        name = query.pop("name", [DEFAULT_NAME])[0]
        clean = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
        return RedisHuey(name, url=clean, results=False)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(DEFAULT_NAME, filename=str(path), results=False)
    raise ValueError(f"QUEUE_URL must be sqlite:///PATH or redis://HOST:PORT/DB, got {url!r}")


def get_queue(url: str) -> Queue:
    """One Queue per URL and process."""
    with _lock:
        if url not in _queues:
            _queues[url] = Queue(url)
        return _queues[url]
