"""Runs over HTTP with a real Huey queue and a real worker process (SQLite and Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from flask.testing import FlaskClient

from knowledge.db import transaction
from knowledge.entry_store import upsert_entry
from knowledge.schema import EntryData
from runners.child import descendants
from tests.conftest import start_worker

PNG = b"\x89PNG\r\n\x1a\n"
FINAL = {"succeeded", "failed", "timed_out"}


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)


@pytest.fixture
def worker(app: Flask) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        config = {"DATABASE_URL": app.config["DATABASE_URL"], "QUEUE_URL": app.config["QUEUE_URL"]}
        procs.append(start_worker(config))
        return procs[-1]

    yield spawn
    for proc in procs:
        stop(proc, signal.SIGKILL)


def wait_for(client: FlaskClient, run_id: str, statuses: set[str], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/runs/{run_id}").json
        if body["status"] in statuses:
            return body
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {body['status']} after {timeout} s")


def test_run_succeeds_then_is_served_from_cache(client: FlaskClient, worker: Callable) -> None:
    res = client.post("/api/v1/entries/attention-sqrt-d-scaling/runs", json={"seed": 1})
    assert res.status_code == 202, res.json
    run_id = res.json["id"]
    assert res.headers["Location"].endswith(f"/api/v1/runs/{run_id}")
    assert res.json["status"] == "queued"
    worker()
    body = wait_for(client, run_id, FINAL)
    assert body["status"] == "succeeded", body["error"]
    assert body["supports_claim"] is True
    assert body["as_expected"] is True  # the default settings: the answer predicts the effect
    assert body["finding"]["en"] and body["finding"]["ja"]
    assert body["metrics"] and all(isinstance(v, int | float) for v in body["metrics"].values())
    prov = body["provenance"]
    assert prov["code_hash"] and prov["torch_version"].startswith("2.13")
    assert prov["duration_s"] > 0 and prov["finished_at"]
    figure = client.get(body["figures"][0])
    assert figure.status_code == 200 and figure.mimetype == "image/png"
    assert figure.data.startswith(PNG)
    # The identical request is answered from the cache, at once.
    again = client.post("/api/v1/entries/attention-sqrt-d-scaling/runs", json={"seed": 1})
    assert again.status_code == 200 and again.json["cached"] is True
    assert again.json["id"] == run_id and again.json["metrics"] == body["metrics"]


def test_identical_concurrent_requests_share_one_run(app: Flask) -> None:
    def post(_: int) -> str:
        with app.test_client() as c:
            res = c.post("/api/v1/entries/double-descent/runs", json={"params": {"ridge": 0.0}})
            assert res.status_code == 202
            return res.json["id"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = set(pool.map(post, range(12)))
    assert len(ids) == 1


@pytest.mark.parametrize(
    "params",
    [{"n_train": "100"}, {"n_train": " 100 "}, {"n_train": 100.5}, {"n_train": True}],
)
def test_parameters_are_typed_strictly(client: FlaskClient, params: dict[str, object]) -> None:
    res = client.post("/api/v1/entries/double-descent/runs", json={"params": params})
    assert res.status_code == 400 and res.json["error"]["code"] == "invalid_params"
    assert res.json["error"]["field"] == "params.n_train"


def test_equal_parameters_share_one_cache_key(client: FlaskClient) -> None:
    runs = [
        client.post("/api/v1/entries/double-descent/runs", json={"params": params})
        for params in (
            {"ridge": 0.0},
            {"ridge": -0.0},
            {"ridge": 0},
            {"ridge": 0, "n_train": 100.0},  # JSON's whole 100.0 is the integer 100
        )
    ]
    assert {r.status_code for r in runs} <= {200, 202}
    assert len({r.json["id"] for r in runs}) == 1
    assert runs[0].json["params"]["ridge"] == 0.0


def test_queued_runs_survive_without_a_consumer_then_run(
    client: FlaskClient, worker: Callable
) -> None:
    first = worker()
    time.sleep(1)
    stop(first)  # the consumer stops; the run is queued while nobody listens
    res = client.post("/api/v1/entries/batchnorm-in-vae/runs", json={})
    assert res.status_code == 202
    time.sleep(1)
    assert client.get(res.json["url"]).json["status"] == "queued"
    worker()
    assert wait_for(client, res.json["id"], FINAL)["status"] == "succeeded"


def test_worker_killed_mid_run_never_leaves_it_running(
    client: FlaskClient, worker: Callable
) -> None:
    res = client.post("/api/v1/entries/local-minima-demo-does-not-exist/runs", json={})
    assert res.status_code == 404
    res = client.post("/api/v1/entries/backprop-controversy/runs", json={"seed": 7})
    run_id = res.json["id"]
    proc = worker()
    wait_for(client, run_id, {"running"} | FINAL, timeout=60)
    children = _run_children(proc.pid)  # its run, and the child started for the next one
    assert children
    stop(proc, signal.SIGKILL)  # the worker dies mid-run
    # ... and its children with it, not left running as orphans (setpriv --pdeathsig).
    deadline = time.monotonic() + 10
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(children)
    worker()  # a new worker notices the dead one and retries the run once
    body = wait_for(client, run_id, FINAL)
    assert body["status"] in FINAL
    assert body["provenance"]["attempts"] in (1, 2)


def _run_children(worker: int) -> list[int]:
    """The worker's processes running an experiment's child (other tests' workers may
    keep children of their own)."""
    pids = []
    for pid in descendants(worker):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"runners.child" in f.read():
                    pids.append(pid)
        except OSError:
            continue
    return pids


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"params": {"ridge": -1}}, "params.ridge"),
        ({"params": {"ridge": "a lot"}}, "params.ridge"),
        ({"params": {"rm_rf": True}}, "params.rm_rf"),
        ({"params": [1, 2]}, "params"),
        ({"seed": -5}, "seed"),
        ({"seed": "1"}, "seed"),
        ({"code": "import os"}, "code"),
    ],
)
def test_bad_run_requests_name_the_field(client: FlaskClient, payload: dict, field: str) -> None:
    res = client.post("/api/v1/entries/double-descent/runs", json=payload)
    assert res.status_code == 400, res.json
    assert res.json["error"]["field"] == field


def test_entries_without_experiments_and_unknown_runs(app: Flask, client: FlaskClient) -> None:
    res = client.post("/api/v1/entries/agi/runs", json={})
    assert res.status_code == 409 and res.json["error"]["code"] == "no_experiment"
    assert client.post("/api/v1/entries/nope/runs", json={}).status_code == 404
    assert client.get(f"/api/v1/runs/{uuid.uuid4()}").status_code == 404
    assert client.get("/api/v1/runs/../../etc/passwd").status_code == 404
    assert client.get(f"/api/v1/runs/{uuid.uuid4()}/figures/0.png").status_code == 404


def test_full_queue_answers_503_with_retry_after(app: Flask, client: FlaskClient) -> None:
    app.config["MAX_QUEUED_RUNS"] = 1
    assert client.post("/api/v1/entries/double-descent/runs", json={"seed": 1}).status_code == 202
    res = client.post("/api/v1/entries/double-descent/runs", json={"seed": 2})
    assert res.status_code == 503
    assert res.json["error"]["code"] == "queue_full"
    assert int(res.headers["Retry-After"]) > 0


def test_experiments_are_listed_with_bounded_params(client: FlaskClient) -> None:
    items = client.get("/api/v1/experiments").json["items"]
    assert len(items) == 7
    for item in items:
        for name, prop in item["params_schema"]["properties"].items():
            bounded = (
                {"minimum", "maximum"} <= set(prop)
                or "enum" in prop
                or "const" in prop
                or prop.get("type") == "boolean"
                or "maxItems" in prop
            )
            assert bounded, f"{item['name']}.{name} is unbounded: {prop}"


@pytest.mark.redis
def test_runs_through_redis(app: Flask, client: FlaskClient, worker: Callable) -> None:
    app.config["QUEUE_URL"] = f"redis://127.0.0.1:6379/{7}"
    from runners.jobs import get_queue

    get_queue(app.config["QUEUE_URL"]).huey.flush()
    res = client.post("/api/v1/entries/embedding-dimension/runs", json={"seed": 3})
    assert res.status_code == 202
    worker()
    assert wait_for(client, res.json["id"], FINAL)["status"] == "succeeded"


def test_entry_defaults_are_merged_with_request_params(app: Flask, client: FlaskClient) -> None:
    data = EntryData.model_validate(
        {
            "slug": "ridge-demo",
            "course": "nyu-dl-f20",
            "question": {"en": "Does a ridge penalty remove the double-descent peak?"},
            "answer": {"en": "Yes."},
            "runner": {"name": "double_descent", "params": {"ridge": 0.1}},
        }
    )
    with transaction(app.extensions["core"].sessions) as session:
        upsert_entry(session, data, author="test")
    res = client.post("/api/v1/entries/ridge-demo/runs", json={})
    assert res.json["params"]["ridge"] == 0.1
    res = client.post("/api/v1/entries/ridge-demo/runs", json={"params": {"ridge": 0.0}})
    assert res.json["params"]["ridge"] == 0.0


def test_recovery_enqueues_only_the_runs_the_queue_lost(app: Flask) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from runners import result_store
    from runners.jobs import get_queue
    from runners.run_tables import Run, utcnow

    queue = get_queue(app.config["QUEUE_URL"])
    sessions = app.extensions["core"].sessions
    for seed in (11, 12, 13):
        run = result_store.request_run(sessions, "double_descent", {}, seed).run
        queue.enqueue(run.id)
    with transaction(sessions) as session:  # queued a minute ago
        session.execute(update(Run).values(created_at=utcnow() - timedelta(minutes=1)))
    assert queue.pending() == 3

    def recover() -> int:
        stats = result_store.recover_stale(sessions, queue.enqueue, pending=queue.pending_run_ids)
        return stats["requeued"]

    assert [recover() for _ in range(3)] == [0, 0, 0]  # nothing was lost
    assert queue.pending() == 3
    queue.huey.flush()  # the broker lost every message
    assert recover() == 3 and queue.pending() == 3
    assert recover() == 0 and queue.pending() == 3
    # A run queued a moment ago is its web process's to enqueue, not recovery's.
    fresh = result_store.request_run(sessions, "double_descent", {}, 14).run
    assert recover() == 0 and fresh.id not in queue.pending_run_ids()
