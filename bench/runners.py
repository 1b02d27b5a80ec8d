"""Experiments at default parameters in the real sandbox: wall, CPU, peak memory; the
latency of serving a cached result over HTTP (Flask test client, in-process); and, with
a real worker on the SQLite queue left idle first, the queue's overhead on a fresh run
(time from the POST to ``succeeded`` minus the run's own duration) and click to figure,
with the consumer's idle polling as before (Huey's default, up to 10 s apart) and now,
and with a cold child per run against a warm one (started ahead, torch imported).

    .venv/bin/python -m bench.runners [--idle 12] [--runs 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, percentile, seeded_sqlite

BIN = Path(sys.executable).parent


def queue_overhead(
    max_delay: float, warm: bool, idle_s: float, runs: int
) -> tuple[list[float], list[float]]:
    """(overhead s, click-to-figure s) per fresh run, each after ``idle_s`` of idling;
    click to figure ends when the run's first figure has been fetched."""
    from service import create_app

    url = seeded_sqlite()
    queue_url = f"sqlite:///{tempfile.mkdtemp(prefix='ra-bench-queue-')}/queue.db"
    env = {**os.environ, "DATABASE_URL": url, "QUEUE_URL": queue_url}
    log = Path(tempfile.mkdtemp(prefix="ra-bench-worker-")) / "worker.log"
    argv = [str(BIN / "flask"), "--app", "service", "worker", "--poll-max-delay", str(max_delay),
            "--warm" if warm else "--no-warm"]  # fmt: skip
    with log.open("wb") as out:
        worker = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        while "worker: recovered" not in log.read_text(errors="ignore"):
            if worker.poll() is not None:
                raise RuntimeError(log.read_text()[-2000:])
            time.sleep(0.2)
        app = create_app({"DATABASE_URL": url, "QUEUE_URL": queue_url, "SERVER_NAME": "localhost",
                          "RATELIMIT_ENABLED": False})  # fmt: skip
        client = app.test_client()
        overhead, click = [], []
        for i in range(runs):
            time.sleep(idle_s)  # the consumer backs off while idle
            started = time.monotonic()
            res = client.post(
                "/api/v1/entries/attention-sqrt-d-scaling/runs", json={"seed": 500 + i}
            )
            assert res.status_code == 202, res.json
            run = res.json
            while run["status"] not in ("succeeded", "failed", "timed_out"):
                time.sleep(0.02)
                run = client.get(run["url"]).json
            assert run["status"] == "succeeded", run["error"]
            figure = client.get(run["figures"][0])
            assert figure.status_code == 200 and figure.data.startswith(b"\x89PNG")
            elapsed = time.monotonic() - started
            click.append(elapsed)
            overhead.append(elapsed - run["provenance"]["duration_s"])
        return overhead, click
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=12.0, help="seconds idle before each run")
    parser.add_argument("--runs", type=int, default=4, help="fresh runs per setting")
    args = parser.parse_args()
    from runners import registry, result_store
    from runners.sandbox import execute, sandbox_info

    print(f"isolation: {sandbox_info().get('isolation')}")
    print(f"{'experiment':<22} {'status':<10} {'wall s':>7} {'CPU s':>7} {'peak MB':>8}  claim")
    for name in registry.names():
        params = result_store.canonical_params(name, {})
        outcome = execute(registry.EXPERIMENTS[name], params, 0, result_store.limits_for(name))
        claim = outcome.result.supports_claim if outcome.result else None
        peak = f"{outcome.peak_rss_mb:.0f}" if outcome.peak_rss_mb else "?"
        print(
            f"{name:<22} {outcome.status:<10} {outcome.duration_s:>7.2f} {outcome.cpu_s:>7.2f} "
            f"{peak:>8}  {claim}"
        )

    # Cached result: run once through the store (as a worker would), then time the API.
    from service import create_app

    url = seeded_sqlite()
    app = create_app({"DATABASE_URL": url, "SERVER_NAME": "localhost", "RATELIMIT_ENABLED": False})
    sessions = app.extensions["core"].sessions
    requested = result_store.request_run(sessions, "attention_scaling", {}, 0, entry_slug="x")
    result_store.execute_run(sessions, requested.run.id)
    client = app.test_client()
    timings = []
    for _ in range(200):
        t = time.perf_counter()
        res = client.post("/api/v1/entries/attention-sqrt-d-scaling/runs", json={})
        timings.append((time.perf_counter() - t) * 1000)
        assert res.status_code == 200 and res.json["cached"], res.json
    print(
        f"cached result over HTTP: p50 {statistics.median(timings):.2f} ms  "
        f"p99 {percentile(timings, 99):.2f} ms  (n={len(timings)})"
    )

    print(f"fresh runs after {args.idle:g} s idle, SQLite queue, {args.runs} per setting:")
    settings = (
        ("Huey's default, cold child", 10.0, False),
        ("cold child", 0.25, False),
        ("now: warm child", 0.25, True),
    )
    for label, max_delay, warm in settings:
        overhead, click = queue_overhead(max_delay, warm, args.idle, args.runs)
        print(
            f"  {label:<26} (polls <= {max_delay:g} s apart): queue overhead median "
            f"{statistics.median(overhead):.2f} s (max {max(overhead):.2f}), click to figure "
            f"median {statistics.median(click):.2f} s (max {max(click):.2f})"
        )


if __name__ == "__main__":
    main()
