"""Faults on the scaled setup: real gunicorn (2 workers) + a real worker, PostgreSQL + Redis.

- Redis stops and restarts under light load: asks keep being answered, run requests get
  503 with Retry-After while it is down, and succeed again once it is back.
- Every connection to the database is terminated under load: the pools reconnect and
  later requests succeed.
- Every write acknowledged with a 2xx (asks, feedback, run requests) is stored.

Redis here is the machine's shared server: it is always restarted (in ``finally``) with
the exact command CI uses.
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from knowledge.backup import create_backup, restore_backup
from tests.conftest import PG_ADMIN_URL, SETUP, _pg_url, free_port, stop_process_group

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS = "redis://127.0.0.1:6379"
QUEUE_DB, LIMITS_DB = 9, 10  # Redis databases of this file (test_runs_api uses 7)
REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
    "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip
RUN_SLUG = "attention-sqrt-d-scaling"
FINAL = {"succeeded", "failed", "timed_out"}
TIMEOUT = 20.0  # per request


@dataclass
class Ledger:
    """Writes the service acknowledged with a 2xx, to be found in the database at the end."""

    asks: dict[int, str] = field(default_factory=dict)  # ask id -> question sent
    feedback: dict[int, tuple[int, bool]] = field(default_factory=dict)  # id -> (ask, helpful)
    runs: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Stack:
    base: str
    db_url: str
    env: dict[str, str]
    logs: Path
    ledger: Ledger
    seeds: Iterator[int]
    procs: list[subprocess.Popen[bytes]]
    worker: subprocess.Popen[bytes] | None = None

    def start(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with (self.logs / log).open("ab") as out:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def start_worker(self) -> subprocess.Popen[bytes]:
        argv = [str(BIN / "flask"), "--app", "service", "worker", "--recover-every", "2"]
        self.worker = self.start(argv, "worker.log")
        return self.worker


# --- processes ---------------------------------------------------------------------------


def _redis_up() -> bool:
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True).stdout == (
        b"PONG\n"
    )


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(seeded_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import psycopg

    logs = tmp_path_factory.mktemp("faults")
    name = f"ra_faults_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # The seeded knowledge base, moved over with the backup tool (no re-embedding).
        # (The template is a SQLite file, or a PostgreSQL database when RA_TEST_SETUP=scaled.)
        source = _pg_url(seeded_template) if SETUP == "scaled" else f"sqlite:///{seeded_template}"
        create_backup(source, logs / "seed.jsonl.gz")
        restore_backup(db_url, logs / "seed.jsonl.gz")
        for db in (QUEUE_DB, LIMITS_DB):
            subprocess.run(["redis-cli", "-n", str(db), "flushdb"], check=True, capture_output=True)
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "QUEUE_URL": f"{REDIS}/{QUEUE_DB}",
            "RATELIMIT_STORAGE_URI": f"{REDIS}/{LIMITS_DB}",
            "SECRET_KEY": secrets.token_hex(32),
            "WEB_BIND": f"127.0.0.1:{port}",
            "WEB_WORKERS": "2",
            "RATELIMIT_ASK": "100000 per minute",  # one client address sends everything
            "RATELIMIT_RUN": "100000 per minute",
        }
        stack = Stack(
            f"http://127.0.0.1:{port}", db_url, env, logs, Ledger(), itertools.count(1000), procs
        )
        web = stack.start(
            [
                str(BIN / "gunicorn"),
                "--no-control-socket",
                "-c",
                "service/gunicorn_conf.py",
                "service.wsgi:app",
            ],
            "gunicorn.log",
        )
        stack.start_worker()
        web_log = logs / "gunicorn.log"

        def ready() -> bool:
            assert web.poll() is None, web_log.read_text()[-3000:]
            return web_log.read_text(errors="ignore").count("index and models ready") == 2

        _wait(ready, 180, "both gunicorn workers")
        yield stack
    finally:
        for proc in procs:
            stop_process_group(proc)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- clients -----------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    started: float
    status: int  # 0: no response (connection error or timeout)


class Load:
    """Light load in background threads: ask, rate the answer, read an entry; bounded."""

    def __init__(self, stack: Stack, clients: int = 2, max_rounds: int = 500) -> None:
        self.stack, self.max_rounds = stack, max_rounds
        self.stop = threading.Event()
        self.outcomes: list[Outcome] = []
        self.threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(clients)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=TIMEOUT * 4)

    def _call(self, http: requests.Session, kind: str, method: str, path: str, **kw: Any) -> Any:
        started = time.monotonic()
        try:
            res = http.request(method, self.stack.base + path, timeout=TIMEOUT, **kw)
        except requests.RequestException:
            self.outcomes.append(Outcome(kind, started, 0))
            return None
        self.outcomes.append(Outcome(kind, started, res.status_code))
        return res

    def _loop(self, client: int) -> None:
        ledger = self.stack.ledger
        with requests.Session() as http:
            for n in range(self.max_rounds):
                if self.stop.is_set():
                    return
                question = f"Why divide attention logits by sqrt(d)? (client {client}, #{n})"
                res = self._call(http, "ask", "POST", "/api/v1/ask", json={"question": question})
                if res is not None and res.status_code == 200:
                    ask_id = res.json()["question_id"]
                    with ledger.lock:
                        ledger.asks[ask_id] = question
                    helpful = n % 2 == 0
                    body = {"question_id": ask_id, "helpful": helpful}
                    res = self._call(http, "feedback", "POST", "/api/v1/feedback", json=body)
                    if res is not None and res.status_code == 201:
                        with ledger.lock:
                            ledger.feedback[res.json()["id"]] = (ask_id, helpful)
                self._call(http, "entry", "GET", "/api/v1/entries/double-descent")

    def between(self, start: float, end: float, kind: str | None = None) -> list[Outcome]:
        return [
            o
            for o in list(self.outcomes)
            if start <= o.started <= end and (kind is None or o.kind == kind)
        ]


def request_run(stack: Stack) -> requests.Response:
    res = requests.post(
        f"{stack.base}/api/v1/entries/{RUN_SLUG}/runs",
        json={"seed": next(stack.seeds)},
        timeout=TIMEOUT,
    )
    if res.status_code in (200, 202):
        stack.ledger.runs.add(res.json()["id"])
    return res


def wait_run(stack: Stack, run_id: str, timeout: float = 90) -> dict[str, Any]:
    body: dict[str, Any] = {}

    def done() -> bool:
        nonlocal body
        body = requests.get(f"{stack.base}/api/v1/runs/{run_id}", timeout=TIMEOUT).json()
        return body["status"] in FINAL

    _wait(done, timeout, f"run {run_id} to finish")
    return body


# --- the faults ----------------------------------------------------------------------------


def test_redis_outage_asks_go_on_runs_get_503_then_recover(stack: Stack) -> None:
    before = request_run(stack)
    assert before.status_code == 202, before.text
    with Load(stack) as load:
        _wait(lambda: load.between(0, time.monotonic(), "ask"), 60, "the first asks")
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], capture_output=True)
        try:
            _wait(lambda: not _redis_up(), 10, "Redis to stop")
            down = time.monotonic()
            refused = request_run(stack)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "queue_unavailable"
            assert int(refused.headers["Retry-After"]) > 0
            _wait(lambda: len(load.between(down, time.monotonic(), "ask")) >= 3, 60, "asks")
            up = time.monotonic()
        finally:
            subprocess.run(REDIS_START, check=True, capture_output=True)
        _wait(_redis_up, 15, "Redis to restart")
        during = load.between(down, up)
    assert during and all(o.status in (200, 201) for o in during), [
        (o.kind, o.status) for o in during if o.status not in (200, 201)
    ]
    after = request_run(stack)
    assert after.status_code == 202, after.text
    # The run queued before the outage was lost with Redis' memory (nosave): the worker's
    # recovery re-enqueues it. Both finish.
    for run_id in (after.json()["id"], before.json()["id"]):
        assert wait_run(stack, run_id)["status"] == "succeeded"


def _terminate_backends(db_url: str) -> int:
    import psycopg

    name = db_url.rsplit("/", 1)[1]
    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def test_dropped_database_connections_are_replaced(stack: Stack) -> None:
    with Load(stack) as load:
        _wait(lambda: len(load.between(0, time.monotonic())) >= 6, 60, "load to start")
        assert _terminate_backends(stack.db_url) >= 1  # web workers and the worker hold some
        killed = time.monotonic()
        _wait(lambda: len(load.between(killed + 1, time.monotonic())) >= 6, 60, "more requests")
        later = load.between(killed + 1, time.monotonic())
    # Requests in flight at the moment of the kill may fail; everything after succeeds.
    assert later and all(o.status in (200, 201) for o in later), [(o.kind, o.status) for o in later]
    assert requests.get(f"{stack.base}/healthz", timeout=TIMEOUT).status_code == 200
    _terminate_backends(stack.db_url)  # the worker's connections too, while it is idle
    res = request_run(stack)
    assert res.status_code == 202, res.text
    assert wait_run(stack, res.json()["id"])["status"] == "succeeded"


def test_worker_killed_mid_run_on_the_scaled_setup(stack: Stack) -> None:
    res = request_run(stack)
    assert res.status_code == 202, res.text
    run_id = res.json()["id"]

    def running() -> bool:
        body = requests.get(f"{stack.base}/api/v1/runs/{run_id}", timeout=TIMEOUT).json()
        assert body["status"] not in FINAL, "the run finished before it could be interrupted"
        return body["status"] == "running"

    _wait(running, 60, "the run to start")
    assert stack.worker is not None
    os.killpg(stack.worker.pid, signal.SIGKILL)  # the worker dies mid-run
    stack.worker.wait()
    stack.start_worker()  # its replacement finds the orphaned run and retries it once
    body = wait_run(stack, run_id)
    assert (body["status"], body["provenance"]["attempts"]) == ("succeeded", 2)


def test_every_acknowledged_write_is_stored(stack: Stack) -> None:
    import psycopg

    ledger = stack.ledger
    if not ledger.asks:  # run alone: make some writes first
        with Load(stack, clients=1, max_rounds=3):
            _wait(lambda: len(ledger.feedback) >= 1, 60, "a write")
    assert ledger.asks and ledger.feedback and ledger.runs
    url = stack.db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        asks = dict(
            conn.execute(
                "SELECT id, question FROM ask_log WHERE id = ANY(%s)", (list(ledger.asks),)
            )
        )
        feedback = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                "SELECT id, ask_id, helpful FROM feedback WHERE id = ANY(%s)",
                (list(ledger.feedback),),
            )
        }
        runs = {
            row[0]
            for row in conn.execute("SELECT id FROM runs WHERE id = ANY(%s)", (list(ledger.runs),))
        }
    assert asks == ledger.asks
    assert feedback == ledger.feedback
    assert runs == ledger.runs
