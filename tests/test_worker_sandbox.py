"""The worker and the sandbox: REQUIRE_SANDBOX, run directories a killed worker left, and
the isolation each run asks for. Worker processes are real ``flask worker`` commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from runners import jobs, result_store
from runners.sandbox import Limits, Outcome, sandbox_info
from tests.conftest import ROOT, stop_process_group
from tests.test_compose import environment

HAS_BWRAP = sandbox_info()["isolation"] == "bubblewrap"
WORKER = [sys.executable, "-m", "flask", "--app", "service", "worker"]
FINAL = {"succeeded", "failed", "timed_out"}


def worker_env(app: Flask, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The worker's environment: this test's database and queue, its own temp dir."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return {
        **os.environ,
        "DATABASE_URL": app.config["DATABASE_URL"],
        "QUEUE_URL": app.config["QUEUE_URL"],
        "TMPDIR": str(tmp),
        **extra,
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            WORKER, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for_output(proc: subprocess.Popen[bytes], log: Path, text: str) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        output = log.read_text(errors="replace")
        if text in output:
            return output
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited ({proc.returncode}):\n{output[-2000:]}")
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} from the worker:\n{log.read_text()[-2000:]}")


def wait_for_run(client: FlaskClient, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/runs/{run_id}").json
        assert body is not None
        if body["status"] in FINAL:
            return body
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")


def old_run_dir(path: Path, age_s: float) -> Path:
    (path / "work").mkdir(parents=True)
    (path / "child.log").write_text("a run of a killed worker")
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


def test_compose_requires_the_sandbox_on_the_worker() -> None:
    assert environment("worker")["REQUIRE_SANDBOX"] == "1"
    assert "REQUIRE_SANDBOX" not in environment("web")


def test_worker_refuses_to_start_without_bubblewrap_when_required(
    app: Flask, tmp_path: Path
) -> None:
    no_bwrap = tmp_path / "bin"
    no_bwrap.mkdir()
    env = worker_env(app, tmp_path, REQUIRE_SANDBOX="1", PATH=str(no_bwrap))
    proc = subprocess.Popen(
        WORKER,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        stop_process_group(proc)
        pytest.fail("the worker started although bubblewrap cannot run")
    assert proc.returncode != 0
    assert b"REQUIRE_SANDBOX is set but bubblewrap cannot run here" in err
    assert b"bwrap is not on PATH" in err
    assert b"worker: queue" not in out  # it stopped before consuming anything


def test_worker_removes_stale_run_dirs_at_start(app: Flask, tmp_path: Path) -> None:
    env = worker_env(app, tmp_path)
    tmp = Path(env["TMPDIR"])
    stale = old_run_dir(tmp / "ra-run-killed", age_s=3600)
    live = old_run_dir(tmp / "ra-run-live", age_s=5)  # younger than any wall limit
    log = tmp_path / "worker.log"
    proc = start_worker(env, log)
    try:
        output = wait_for_output(proc, log, "stale run directories")
    finally:
        stop_process_group(proc)
    assert "worker: removed 1 stale run directories" in output
    assert not stale.exists() and live.exists()


BWRAP_BREAKING_AFTER_ONE_USE = """#!/bin/sh
# The real bwrap for the worker's start-up probe; every later call fails.
if [ -e "$0.used" ]; then echo "bwrap: broken for this test" >&2; exit 1; fi
touch "$0.used"
exec {real} "$@"
"""


@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap cannot run here")
@pytest.mark.parametrize("required", [True, False])
def test_required_sandbox_never_falls_back_to_rlimits_only(
    app: Flask, client: FlaskClient, tmp_path: Path, required: bool
) -> None:
    """bwrap works when the worker starts and breaks before the run: a required sandbox
    fails the run; otherwise it falls back to rlimits only."""
    real = shutil.which("bwrap")
    assert real is not None
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "bwrap"
    wrapper.write_text(BWRAP_BREAKING_AFTER_ONE_USE.format(real=real))
    wrapper.chmod(0o755)
    extra = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    if required:
        extra["REQUIRE_SANDBOX"] = "1"
    log = tmp_path / "worker.log"
    proc = start_worker(worker_env(app, tmp_path, **extra), log)
    try:
        output = wait_for_output(proc, log, "worker: queue")
        res = client.post("/api/v1/entries/attention-sqrt-d-scaling/runs", json={"seed": 4})
        assert res.status_code == 202 and res.json is not None, res.json
        body = wait_for_run(client, res.json["id"])
    finally:
        stop_process_group(proc)
    if required:
        assert "isolation bubblewrap (required)" in output
        assert body["status"] == "failed" and body["error"]["code"] == "sandbox_error", body
    else:
        assert body["status"] == "succeeded", body["error"]
        assert body["provenance"]["isolation"] == "rlimits-only"


def test_the_queue_passes_its_isolation_to_each_run(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def fake_execute(
        module: str, params: dict[str, Any], seed: int, limits: Limits, *, isolation: str = "auto"
    ) -> Outcome:
        asked.append(isolation)
        return Outcome("failed", error="not run", error_code="sandbox_error")

    monkeypatch.setattr(result_store, "execute", fake_execute)
    queue = jobs.Queue(app.config["QUEUE_URL"])
    queue.factory = app.extensions["core"].sessions
    for isolation, seed in (("auto", 11), ("bubblewrap", 12)):
        queue.isolation = isolation  # type: ignore[assignment]
        run = result_store.request_run(queue.factory, "attention_scaling", {}, seed).run
        queue._execute_run.call_local(run.id)
    assert asked == ["auto", "bubblewrap"]
