"""HTTP load on real gunicorn (2 workers): distinct asks, entry reads, cached run results.

    .venv/bin/python -m bench.load [--setup embedded|scaled|both] [--clients 16]
        [--duration 30] [--warmup 5] [--py-spy PATH]
        [--env NAME=VALUE ...]

For each setup: a fresh database (embedded: SQLite file + SQLite queue; scaled: a new
PostgreSQL database + Redis queue and Redis rate-limit storage), seeded with the real CLI
(``db upgrade``, ``kb import``), one experiment result computed in-process so the run
requests are cache hits, then gunicorn with ``service/gunicorn_conf.py`` on a free
loopback port. N client threads (one keep-alive http.client connection each) send, for a
bounded time and count:

- asks, every question distinct (templates over the seed topics, English and Japanese,
  some off-topic ones that abstain, plus a counter), 60 %;
- entry reads, the list and one entry's detail, 25 %;
- run requests for the precomputed experiment (``200 cached``), 15 %.

Prints per setup: throughput (requests/s, asks/s), p50/p99 per kind, errors, the CPU
the server used per request (a figure other processes on the machine do not skew much),
on the scaled setup the CPU PostgreSQL and Redis used, and the load average.
``--py-spy`` samples the workers and prints where their time goes.
Targets at 16 clients, zero errors: embedded >= 200 distinct asks/s with ask p99 <= 150 ms;
scaled >= 100 asks/s with p99 <= 250 ms.
Loopback only; the client threads share the machine's cores with the server.

First, the query encoder alone is timed in this process on the bench's own questions (one
thread, as a worker's request runs it): its milliseconds per question bound what the
cores can serve, whatever the rest costs, and let runs on different CPUs be compared.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import ROOT, percentile

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
QUEUE_DB, LIMITS_DB = 12, 13  # Redis databases the bench uses (the tests use others)
RUN_SLUG = "attention-sqrt-d-scaling"
MAX_REQUESTS_PER_CLIENT = 100_000
# Per setup: distinct asks per second at least, ask p99 in ms at most (2-core machine).
TARGETS = {"embedded": (200, 150), "scaled": (100, 250)}
REQUEST_TIMEOUT_S = 10.0
BIN = Path(sys.executable).parent

# Distinct asks: opener x topic phrasing x closer, made unique by a counter.
TOPICS_EN = [
    "why attention logits are divided by the square root of the key dimension",
    "why dot-product attention scales the scores by sqrt(d)",
    "why backpropagation was controversial when it is only the chain rule",
    "whether online SGD beats minibatch SGD",
    "why batch norm is used instead of normalizing the dataset once",
    "why batch normalization hurts a VAE",
    "how to pick the embedding dimension of a semi-supervised VAE",
    "how BERT's position embedding size was chosen",
    "how double descent fits with the bias-variance trade-off",
    "whether we will ever build artificial general intelligence",
]
TOPICS_JA = [
    "アテンションのスコアを√dで割る理由",
    "バックプロパゲーションが物議を醸した理由",
    "オンラインSGDとミニバッチSGDのどちらが良いか",
    "VAEでバッチ正規化が問題になる理由",
    "二重降下とバイアス・バリアンスの関係",
]
OFF_TOPIC = [
    "when the final exam takes place",
    "where the lecture room for week",
    "how to get a parking permit for lot",
]
OPENERS_EN = ["Can you explain", "I don't get", "Quick question about", "Could someone clarify"]
CLOSERS_EN = ["?", " - the lecture went fast.", ", in simple terms?", " for homework"]


def question(n: int) -> str:
    """The n-th distinct question (about 70 % English, 20 % Japanese, 10 % off-topic)."""
    kind = n % 10
    if kind < 7:
        topic = TOPICS_EN[n % len(TOPICS_EN)]
        opener = OPENERS_EN[(n // 7) % len(OPENERS_EN)]
        closer = CLOSERS_EN[(n // 3) % len(CLOSERS_EN)]
        return f"{opener} {topic}{closer} (#{n})"
    if kind < 9:
        return f"{TOPICS_JA[n % len(TOPICS_JA)]}を教えてください（質問{n}）"
    return f"Does anyone know {OFF_TOPIC[n % len(OFF_TOPIC)]} {n} is?"


@dataclass
class Sample:
    kind: str
    seconds: float
    ok: bool


@dataclass
class Report:
    setup: str
    duration_s: float
    samples: list[Sample] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    services_cpu_s: float | None = None  # PostgreSQL + Redis, scaled setup only
    load: tuple[float, float] = (0.0, 0.0)
    worker_peak_rss_mb: list[int] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)


# --- environments ---------------------------------------------------------------------------


def server_cpu_s(master: int) -> float:
    """CPU time (user + system) used so far by gunicorn's master and workers."""
    pids = [str(master), *Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    ticks = sum(_ticks(Path(f"/proc/{pid}/stat").read_text()) for pid in pids)
    return ticks / os.sysconf("SC_CLK_TCK")


def workers_peak_rss_mb(master: int) -> list[int]:
    """Peak resident memory (VmHWM) of each gunicorn worker so far, in MB."""
    peaks = []
    for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        status = Path(f"/proc/{pid}/status").read_text()
        peaks.append(int(status.split("VmHWM:")[1].split()[0]) // 1024)
    return peaks


def _ticks(stat: str) -> int:
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def services_ticks() -> dict[int, int]:
    """CPU ticks so far of this machine's PostgreSQL and Redis processes, by pid."""
    ticks = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = path.read_text()
        except OSError:  # exited meanwhile
            continue
        if stat[stat.index("(") + 1 : stat.rindex(")")] in ("postgres", "redis-server"):
            ticks[int(path.parent.name)] = _ticks(stat)
    return ticks


def services_cpu_s(before: dict[int, int]) -> float:
    """CPU seconds PostgreSQL and Redis used since ``before`` (processes alive now)."""
    after = services_ticks()
    used = sum(t - before.get(pid, 0) for pid, t in after.items())
    return used / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def embedded() -> Iterator[dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="ra-load-") as tmp:
        yield {
            "DATABASE_URL": f"sqlite:///{tmp}/app.db",
            "QUEUE_URL": f"sqlite:///{tmp}/queue.db",
            "RATELIMIT_STORAGE_URI": "memory://",
        }


@contextmanager
def scaled() -> Iterator[dict[str, str]]:
    import psycopg

    name = f"ra_load_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield {
            "DATABASE_URL": f"{base}/{name}",
            "QUEUE_URL": f"{REDIS_URL}/{QUEUE_DB}",
            "RATELIMIT_STORAGE_URI": f"{REDIS_URL}/{LIMITS_DB}",
        }
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def app_env(settings: dict[str, str], port: int, workers: int) -> dict[str, str]:
    return {
        **os.environ,
        **settings,
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_WORKERS": str(workers),
        "SECRET_KEY": secrets.token_hex(32),
        # One client address sends everything: lift the per-address limits (the limiter
        # itself still runs, against its real storage).
        "RATELIMIT_ASK": "1000000 per minute",
        "RATELIMIT_RUN": "1000000 per minute",
    }


def seed(env: dict[str, str]) -> None:
    """The deploy steps an operator runs: migrate, import the seed knowledge."""
    flask = [str(BIN / "flask"), "--app", "service"]
    for args in (["db", "upgrade", "--retries", "5"], ["kb", "import", "knowledge/content"]):
        subprocess.run([*flask, *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def precompute_run(database_url: str) -> str:
    """Run the entry's experiment once in-process, so run requests are cache hits."""
    from knowledge.db import make_engine, make_sessionmaker
    from knowledge.entry_store import find_entry
    from runners import result_store

    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    try:
        with factory() as session:
            entry = find_entry(session, RUN_SLUG)
            assert entry is not None and entry.runner_name
            name, params = entry.runner_name, dict(entry.runner_params or {})
        requested = result_store.request_run(
            factory, name, params, result_store.DEFAULT_SEED, entry_slug=RUN_SLUG
        )
        if not requested.cached:
            status = result_store.execute_run(factory, requested.run.id)
            if status != "succeeded":
                raise RuntimeError(f"the experiment run ended {status}")
        return requested.run.id
    finally:
        engine.dispose()


@contextmanager
def gunicorn(
    env: dict[str, str], workers: int, log: Path, config: str = "service/gunicorn_conf.py"
) -> Iterator[tuple[str, int]]:
    port = int(env["WEB_BIND"].rsplit(":", 1)[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "--no-control-socket", "--config", config, "service.wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while log.read_text(errors="ignore").count("index and models ready") < workers:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start; see {log}")
                time.sleep(0.25)
            yield f"http://127.0.0.1:{port}", proc.pid
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# --- profiling (optional) -------------------------------------------------------------------


@contextmanager
def profiled(py_spy: str | None, master: int, seconds: float, out: Path) -> Iterator[list[Path]]:
    """Sample every gunicorn worker with py-spy while the body runs (collapsed stacks)."""
    if not py_spy:
        yield []
        return
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    files = [out / f"worker-{pid}.txt" for pid in children]
    procs = [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                pid,
                "--duration",
                str(int(seconds)),
                "--rate",
                "50",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, path in zip(children, files, strict=True)
    ]
    try:
        yield files
    finally:
        for proc in procs:
            try:
                proc.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# Frames worth naming in the summary: (function, file) -> what it stands for.
HOTSPOTS = {
    ("ask", "knowledge/ask.py"): "the ask pipeline (retrieval + log)",
    ("encode", "knowledge/onnx_e5.py"): "query embedding (multilingual-e5-small)",
    ("_log", "knowledge/ask.py"): "ask-log write",
    ("lexical_scores", "knowledge/index.py"): "BM25 scoring",
    ("coverage", "knowledge/index.py"): "term coverage",
    ("confidence_of", "knowledge/ranking.py"): "confidence",
    ("answer_json", "service/presenters.py"): "answer rendering",
    ("_load_entry", "service/api.py"): "entry load for the answer",
    ("list_entries", "service/api.py"): "entry list",
    ("start_run", "service/runs_api.py"): "run request (cache hit)",
}
IDLE = {("wait", "threading.py"), ("select", "selectors.py"), ("accept", "socket.py")}


def _frame(raw: str) -> tuple[str, str]:
    """``func (path/to/file.py:123)`` -> (func, path)."""
    name, _, rest = raw.partition(" (")
    return name, rest.rsplit(":", 1)[0]


def summarize(files: list[Path], top: int = 12) -> list[str]:
    """Where the workers' busy samples go: named hot spots (inclusive) and top self frames."""
    total = busy = 0
    inclusive: dict[tuple[str, str], int] = defaultdict(int)
    own: dict[str, int] = defaultdict(int)
    for path in files:
        lines = path.read_text(errors="ignore").splitlines() if path.exists() else []
        for line in lines:
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            total += int(count)
            name, file = _frame(frames[-1])
            if (name.rsplit(".", 1)[-1], file.rsplit("/", 1)[-1]) in IDLE:
                continue
            busy += int(count)
            own[frames[-1]] += int(count)
            for name, file in {_frame(f) for f in frames}:
                for key in HOTSPOTS:
                    if name.rsplit(".", 1)[-1] == key[0] and file.endswith(key[1]):
                        inclusive[key] += int(count)
    if not files:
        return []
    if not busy:
        return ["profile: no samples (py-spy needs ptrace permission)"]
    out = [f"profile: {busy} busy samples of {total} (all threads); inclusive share of busy:"]
    for key, label in HOTSPOTS.items():
        out.append(f"  {inclusive[key] / busy:6.1%}  {label}")
    out.append("  top self frames:")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {n / busy:6.1%}  {frame[:110]}")
    return out


# --- load -----------------------------------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection on http.client.

    The clients share the server's two cores, so they should cost little: with requests
    they used 1.7 ms of CPU per call (0.31 cores at 185 requests/s); with http.client,
    0.5 ms (0.10 cores at 199 requests/s).
    """

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        """(status, decoded JSON body); reconnects once if the server closed an idle connection."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=REQUEST_TIMEOUT_S
                )
            try:
                self.conn.request(method, path, body=data, headers=headers)
                res = self.conn.getresponse()
                payload = res.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()  # no response came back: the request was not handled
                if attempt == 2:
                    raise
                continue
            if res.will_close:
                self.close()
            return res.status, json.loads(payload) if payload else None
        raise AssertionError("unreachable")


def client(
    base: str, until: float, counter: Iterator[int], rng: random.Random, out: Report
) -> None:
    slugs = ["double-descent", "agi", "backprop-controversy", "batchnorm-in-vae", RUN_SLUG]
    http_ = Http(base)
    try:
        for i in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= until:
                return
            roll = rng.random()
            started = time.perf_counter()
            try:
                if roll < 0.60:
                    kind = "ask"
                    status, body = http_.call(
                        "POST", "/api/v1/ask", {"question": question(next(counter))}
                    )
                    ok = status == 200 and "abstained" in body
                elif roll < 0.85:
                    if i % 2:
                        kind = "entry_list"
                        status, body = http_.call("GET", "/api/v1/entries?per_page=20")
                        ok = status == 200 and len(body["items"]) == 8
                    else:
                        kind = "entry_detail"
                        slug = slugs[i % len(slugs)]
                        status, body = http_.call("GET", f"/api/v1/entries/{slug}")
                        ok = status == 200 and body["slug"] == slug
                else:
                    kind = "run_cached"
                    status, body = http_.call("POST", f"/api/v1/entries/{RUN_SLUG}/runs", {})
                    ok = status == 200 and body.get("cached") is True
                detail = f"{kind} {status}"
            except Exception as exc:  # a refused or timed-out request is an error, not a crash
                ok, detail = False, f"{kind} {exc.__class__.__name__}"
                http_.close()
            out.samples.append(Sample(kind, time.perf_counter() - started, ok))
            if not ok:
                out.errors[detail] += 1
    finally:
        http_.close()


def drive(base: str, clients: int, seconds: float, counter: Iterator[int], report: Report) -> None:
    until = time.monotonic() + seconds
    parts = [Report(report.setup, seconds) for _ in range(clients)]  # one per thread
    threads = [
        threading.Thread(target=client, args=(base, until, counter, random.Random(i), part))
        for i, part in enumerate(parts)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + REQUEST_TIMEOUT_S + 5)
    for part in parts:
        report.samples += part.samples
        for detail, n in part.errors.items():
            report.errors[detail] += n


def run_setup(
    name: str,
    clients: int,
    duration: float,
    warmup: float,
    workers: int,
    extra: dict[str, str],
    py_spy: str | None,
) -> Report:
    maker = embedded if name == "embedded" else scaled
    with maker() as settings, tempfile.TemporaryDirectory(prefix="ra-load-log-") as logs:
        env = {**app_env(settings, free_port(), workers), **extra}
        t0 = time.monotonic()
        seed(env)
        t1 = time.monotonic()
        precompute_run(env["DATABASE_URL"])
        t2 = time.monotonic()
        print(f"[{name}] seeded in {t1 - t0:.0f} s, experiment precomputed in {t2 - t1:.0f} s")
        counter = itertools.count()
        with gunicorn(env, workers, Path(logs) / "gunicorn.log") as (base, master):
            print(f"[{name}] gunicorn ready ({workers} workers) in {time.monotonic() - t2:.0f} s")
            drive(base, clients, warmup, counter, Report(name, warmup))  # not counted
            report = Report(name, duration)
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            load0, server0 = os.getloadavg()[0], server_cpu_s(master)
            services0 = services_ticks() if name == "scaled" else {}
            with profiled(py_spy, master, duration, Path(logs)) as profiles:
                drive(base, clients, duration, counter, report)
            report.profile = summarize(profiles)
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            report.client_cpu_s = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
            report.load = (load0, os.getloadavg()[0])
            report.server_cpu_s = server_cpu_s(master) - server0
            report.worker_peak_rss_mb = workers_peak_rss_mb(master)
            if name == "scaled":
                report.services_cpu_s = services_cpu_s(services0)
    return report


def encoder_ms_per_question(questions: int = 150) -> float:
    """Median milliseconds of one core the e5 encoder takes for one of the bench's asks
    (one thread, one question per call, as a web worker runs it)."""
    from knowledge.onnx_e5 import OnnxE5

    encoder = OnnxE5(threads=1)
    texts = [question(n) for n in range(questions)]
    for text in texts[:10]:  # warm up
        encoder.encode_with_tokens([text], "query")
    timings = []
    for text in texts:
        started = time.perf_counter()
        encoder.encode_with_tokens([text], "query")
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def print_encoder(ms: float) -> None:
    cores = os.cpu_count() or 1
    print(
        f"query encoder alone: {ms:.2f} ms of one core per bench question (median, one "
        f"thread); {cores} cores could encode at most ~{cores * 1000 / ms:.0f} questions/s, "
        "the ceiling on distinct asks/s if nothing else cost anything"
    )


def print_report(r: Report, clients: int) -> None:
    ok = [s for s in r.samples if s.ok]
    asks_per_s = sum(s.kind == "ask" for s in ok) / r.duration_s
    errors = sum(r.errors.values())
    all_ms = [s.seconds * 1000 for s in r.samples] or [0.0]
    p99 = percentile(all_ms, 99)
    print(f"\n== {r.setup}: {clients} clients, {r.duration_s:.0f} s ==")
    print(
        f"throughput {len(ok) / r.duration_s:7.1f} req/s   distinct asks {asks_per_s:6.1f}/s   "
        f"errors {errors}   requests {len(r.samples)}"
    )
    p50 = statistics.median(all_ms)
    print(f"{'all':<12} n={len(all_ms):6d}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
    for kind in ("ask", "entry_list", "entry_detail", "run_cached"):
        ms = [s.seconds * 1000 for s in r.samples if s.kind == kind]
        if ms:
            print(
                f"{kind:<12} n={len(ms):6d}  p50 {statistics.median(ms):7.1f} ms  "
                f"p99 {percentile(ms, 99):7.1f} ms  max {max(ms):7.1f} ms"
            )
    for detail, n in sorted(r.errors.items()):
        print(f"error: {detail} x{n}")
    print(
        f"client CPU {r.client_cpu_s:.1f} s ({r.client_cpu_s / r.duration_s:.2f} cores); "
        f"load average {r.load[0]:.1f} -> {r.load[1]:.1f} on {os.cpu_count()} cores"
    )
    if ok:
        per_request = r.server_cpu_s / len(ok)
        print(
            f"server CPU {r.server_cpu_s:.1f} s ({r.server_cpu_s / r.duration_s:.2f} cores): "
            f"{per_request * 1000:.1f} ms per request; {os.cpu_count()} idle cores would serve "
            f"at most ~{(os.cpu_count() or 1) / per_request:.0f} req/s of this mix"
        )
    if r.worker_peak_rss_mb:
        print(f"peak RSS per gunicorn worker: {', '.join(map(str, r.worker_peak_rss_mb))} MB")
    if r.services_cpu_s is not None:
        print(
            f"PostgreSQL + Redis CPU {r.services_cpu_s:.1f} s "
            f"({r.services_cpu_s / r.duration_s:.2f} cores), on the same cores"
        )
    for line in r.profile:
        print(line)
    asks_min, p99_max = TARGETS[r.setup]
    met = asks_per_s >= asks_min and p99 <= p99_max and errors == 0
    print(
        f"target (>= {asks_min} asks/s, p99 <= {p99_max} ms, 0 errors): "
        f"{'met' if met else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--setup", choices=["embedded", "scaled", "both"], default="both")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--py-spy",
        metavar="PATH",
        help="sample the gunicorn workers with this py-spy binary and print where time goes",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for gunicorn (e.g. OMP_NUM_THREADS=1); repeatable",
    )
    args = parser.parse_args()
    if not (1 <= args.clients <= 256 and 1 <= args.duration <= 600):
        parser.error("--clients must be 1..256 and --duration 1..600 s")
    extra = dict(item.split("=", 1) for item in args.env)
    if extra:
        print(f"extra gunicorn environment: {extra}")
    setups = ["embedded", "scaled"] if args.setup == "both" else [args.setup]
    encoder_ms = encoder_ms_per_question()
    print_encoder(encoder_ms)
    reports = [
        run_setup(
            s,
            args.clients,
            args.duration,
            args.warmup,
            args.workers,
            extra,
            args.py_spy,
        )
        for s in setups
    ]
    print()
    print_encoder(encoder_ms)
    for report in reports:
        print_report(report, args.clients)


if __name__ == "__main__":
    main()
