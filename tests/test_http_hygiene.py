"""HTTP behaviour through the real web server (gunicorn): oversized bodies and headers."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, free_port, stop_process_group

BIN = Path(os.sys.executable).parent  # type: ignore[attr-defined]


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "QUEUE_URL": f"sqlite:///{tmp_path / 'queue.db'}",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_WORKERS": "1",
    }
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "--no-control-socket", "-c", "service/gunicorn_conf.py",
             "service.wsgi:app"],
            cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "index and models ready" not in log.read_text(errors="ignore"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(proc)


def test_a_too_large_body_gets_a_readable_413_and_the_next_requests_work(server: str) -> None:
    body = b'{"question": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    with requests.Session() as http:
        res = http.post(
            f"{server}/api/v1/ask", data=body, headers={"Content-Type": "application/json"}
        )
        assert res.status_code == 413 and res.json()["error"]["code"] == "body_too_large"
        # The same client goes on, on the same connection.
        for _ in range(30):
            ok = http.post(f"{server}/api/v1/ask", json={"question": "What is double descent?"})
            assert ok.status_code == 200


def test_a_413_closes_the_connection_whatever_the_client_sends(server: str) -> None:
    """A client may stop sending once it sees the 413. The answer says the connection
    closes, and it does: the next request is not swallowed as the rest of the body."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000000\r\n\r\n" + b"x" * 100_000
        )
        reply = b""
        while b"body_too_large" not in reply and (chunk := sock.recv(65536)):
            reply += chunk
        head = reply.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 413") and b"connection: close" in head, head
        started = time.monotonic()
        while sock.recv(65536):  # the server closes its side
            pass
        assert time.monotonic() - started < 5


def test_a_huge_header_gets_json_under_the_api(server: str) -> None:
    res = requests.get(
        f"{server}/api/v1/entries", headers={"Authorization": "Bearer " + "a" * 10_000}
    )
    assert res.status_code == 431
    assert res.json()["error"]["code"] == "header_too_large"
