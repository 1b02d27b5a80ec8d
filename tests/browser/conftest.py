"""A real server (werkzeug, threaded, on a free port), a real worker process and headless
Chromium, shared by the browser tests of one session. Screenshots go to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from werkzeug.serving import BaseWSGIServer, make_server

from knowledge import accounts
from knowledge.db import transaction
from service import create_app
from tests.browser.helpers import DESKTOP, TA_PASSWORD, TA_USER, Live
from tests.conftest import REDIS_URL, SETUP, _pg, _pg_url, start_worker, stop_process_group

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextmanager
def _storage(template: str, workdir: Path) -> Iterator[dict[str, str]]:
    """A copy of the seeded database and a queue, on the setup the suite runs on."""
    if SETUP == "scaled":  # PostgreSQL + Redis
        name = f"ra_browser_{uuid.uuid4().hex[:10]}"
        _pg(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        try:
            yield {"DATABASE_URL": _pg_url(name), "QUEUE_URL": f"{REDIS_URL}?name={name}"}
        finally:
            _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    shutil.copy(template, workdir / "app.db")
    yield {
        "DATABASE_URL": f"sqlite:///{workdir / 'app.db'}",
        "QUEUE_URL": f"sqlite:///{workdir / 'queue.db'}",
    }


@pytest.fixture(scope="session")
def live(seeded_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app on a real HTTP server, with a TA account and a worker consuming its queue."""
    with _storage(seeded_template, tmp_path_factory.mktemp("browser")) as config:
        # The worker starts while the app below warms up.
        worker = start_worker(config)
        app = create_app(config)
        with transaction(app.extensions["core"].sessions) as session:
            accounts.create_user(session, TA_USER, TA_PASSWORD)
        app.extensions["core"].retriever.warm_up()
        server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Live(app, f"http://127.0.0.1:{server.server_port}")
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
            stop_process_group(worker, timeout=20)
            app.extensions["core"].engine.dispose()


@pytest.fixture(scope="session")
def chromium() -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="ra-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium: WebDriver, live: Live) -> Iterator[WebDriver]:
    """The shared browser, reset to a fresh desktop-sized visitor for each test."""
    chromium.set_window_size(*DESKTOP)
    chromium.get(live.url + "/static/favicon.svg")
    chromium.delete_all_cookies()
    chromium.execute_script("window.sessionStorage.clear()")  # the kept conversation
    yield chromium
    errors = [
        entry
        for entry in chromium.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
    ]
    assert not errors, errors  # no script errors, no failed requests the page made
