"""Shared fixtures: a seeded SQLite template copied per test, the app, clients, PostgreSQL;
helpers for worker and server processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from knowledge import importer, migrate
from knowledge.db import make_engine, make_sessionmaker
from runners import registry
from service import create_app

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "knowledge" / "content"
PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


# RA_TEST_SETUP=scaled runs the whole suite on PostgreSQL + a Redis queue (as deployed at
# scale); the default is the embedded setup (SQLite + SQLite queue).
SETUP = os.environ.get("RA_TEST_SETUP", "embedded")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


# --- processes (worker, servers) ---------------------------------------------------------


def start_worker(config: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A ``flask worker`` process in its own session, with ``config`` added to the env."""
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "service", "worker"],
        cwd=ROOT,
        env={**os.environ, **config},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM the process's group; SIGKILL it if it has not exited after ``timeout`` s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- databases ---------------------------------------------------------------------------


def _seed(url: str) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    importer.import_path(make_sessionmaker(engine), SEED, registry.names())
    engine.dispose()


def _pg(sql: str) -> None:
    import psycopg

    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


def _pg_url(name: str) -> str:
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def derived_template(source: str | None, directory: Path, prepare: Callable[[str], None]) -> str:
    """A template database (a PostgreSQL template's name, or a SQLite file's path) made
    from ``source`` (another template, or nothing) by ``prepare(url)``; drop it with
    ``drop_template``."""
    if SETUP == "scaled":
        name = f"ra_tpl_{uuid.uuid4().hex[:10]}"
        _pg(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{source}"' if source else ""))
        prepare(_pg_url(name))
        return name
    path = directory / "template.db"
    if source:
        shutil.copy(source, path)
    prepare(f"sqlite:///{path}")
    return str(path)


def drop_template(template: str) -> None:
    if SETUP == "scaled":
        _pg(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


@contextmanager
def database_from(template: str, directory: Path) -> Iterator[str]:
    """A fresh database for one test, copied from ``template``; its URL."""
    if SETUP == "scaled":
        name = f"ra_t_{uuid.uuid4().hex[:12]}"
        _pg(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        yield _pg_url(name)
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    target = directory / "app.db"
    shutil.copy(template, target)
    yield f"sqlite:///{target}"


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database with the seed imported, built once per test session.

    Embedded: a SQLite file copied per test. Scaled: a PostgreSQL template database.
    """
    template = derived_template(None, tmp_path_factory.mktemp("template"), _seed)
    yield template
    drop_template(template)


@pytest.fixture
def db_url(seeded_template: str, tmp_path: Path) -> Iterator[str]:
    """A fresh seeded database for one test."""
    with database_from(seeded_template, tmp_path) as url:
        yield url


@pytest.fixture
def queue_url(tmp_path: Path) -> Iterator[str]:
    if SETUP != "scaled":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
        return
    suffix = uuid.uuid4().hex[:12]
    yield f"{REDIS_URL}?name=ra-test-{suffix}"
    # Huey keeps a test's queue under keys named after it; runs left queued stay behind.
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"*{suffix}*"):
            client.delete(key)
    except redis.RedisError:
        pass  # the fault tests may have left Redis stopped; nothing to clean then
    finally:
        client.close()


@pytest.fixture
def make_app(db_url: str, queue_url: str) -> Iterator[Callable[..., Flask]]:
    """Builds test apps on this test's database and queue (config overrides as keywords)."""
    apps: list[Flask] = []

    def build(**config: Any) -> Flask:
        app = create_app(
            {
                "TESTING": True,
                "DATABASE_URL": db_url,
                "QUEUE_URL": queue_url,
                "SERVER_NAME": "localhost",
                **config,
            }
        )
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["core"].engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"ra_test_{uuid.uuid4().hex[:12]}"
    _pg(f'CREATE DATABASE "{name}"')
    yield _pg_url(name)
    _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
