"""Experiments at default parameters in the real sandbox: wall, CPU, peak memory; and the
latency of serving a cached result over HTTP (Flask test client, in-process).

    .venv/bin/python -m bench.runners
"""

from __future__ import annotations

import statistics
import time

from bench.common import percentile, seeded_sqlite


def main() -> None:
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


if __name__ == "__main__":
    main()
