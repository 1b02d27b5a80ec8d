"""Requesting runs, the result cache, and recording outcomes. Framework-free.

A run is identified for caching by (experiment, canonical params, seed, code hash,
torch version). Identical requests share one run: the ``active_key`` column is unique
while a run is queued, running or succeeded.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from runners import registry, sandbox
from runners.run_tables import FINAL, Run, RunFigure, utcnow
from runners.sandbox import IsolationRequest, Limits, Outcome, execute

DEFAULT_SEED = 0
MAX_ATTEMPTS = 2  # a run whose worker died is retried once


class QueueFull(Exception):
    """Too many runs are waiting; the caller should retry later."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the run queue is full; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class RunRequest:
    run: Run
    cached: bool  # a finished identical run was found
    created: bool  # a new run was queued (the caller must enqueue it)


@cache
def code_hash(name: str) -> str:
    """Hash of the experiment's source (spec and run) and the shared code it runs with
    (result, child, and the experiments' shared helpers such as ``_optim``)."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    shared = (here / "result.py", here / "child.py", *sorted((here / "experiments").glob("_*.py")))
    for path in (*registry.source_files(name), *shared):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@cache
def torch_version() -> str:
    """The installed torch's version, read from its metadata: importing torch would add
    over 200 MB to a web process for one string."""
    return importlib.metadata.version("torch")


def canonical_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validated params with defaults filled in (raises pydantic.ValidationError), in one
    form per value: strict types as in JSON ("20", " 20 ", true and "yes" are not integers
    or booleans; an integer is a valid number; the API reads a whole 20.0 as 20), and -0.0
    is 0.0, so equal requests share a cache key."""
    model = registry.spec(name).Params.model_validate(params, strict=True)
    return _canonical(model.model_dump(mode="json"))


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        return 0.0 if value == 0 else value
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def cache_key(name: str, params: dict[str, Any], seed: int) -> str:
    blob = json.dumps(
        [name, params, seed, code_hash(name), torch_version()],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def limits_for(name: str) -> Limits:
    return Limits.for_budget(float(registry.spec(name).TIME_BUDGET_S))


def start_warm_child(isolation: IsolationRequest = "auto") -> bool:
    """Keep a started child ahead of each run of the calling thread (every registered
    experiment runs under the same sandbox command, whatever its time budget)."""
    sandbox.keep_warm_children(True)
    name = registry.names()[0]
    return sandbox.start_warm_child(
        registry.EXPERIMENTS[name], limits_for(name), isolation=isolation
    )


def request_run(
    factory: sessionmaker[Session],
    name: str,
    params: dict[str, Any],
    seed: int = DEFAULT_SEED,
    *,
    entry_slug: str | None = None,
    max_queued: int = 50,
) -> RunRequest:
    """Find a cached or in-flight identical run, or queue a new one."""
    canonical = canonical_params(name, params)
    key = cache_key(name, canonical, seed)
    with factory() as session:
        existing = session.scalar(select(Run).where(Run.active_key == key))
        if existing is not None:
            return RunRequest(existing, existing.status == "succeeded", False)
        queued = session.scalar(select(func.count()).where(Run.status == "queued")) or 0
        if queued >= max_queued:
            raise QueueFull(retry_after_s=10)
        run = Run(
            id=str(uuid.uuid4()),
            runner_name=name,
            params=canonical,
            seed=seed,
            cache_key=key,
            active_key=key,
            code_hash=code_hash(name),
            torch_version=torch_version(),
            entry_slug=entry_slug,
            status="queued",
            attempts=0,
            created_at=utcnow(),
        )
        session.add(run)
        try:
            session.commit()
        except IntegrityError:  # an identical request won the race: share its run
            session.rollback()
            existing = session.scalar(select(Run).where(Run.active_key == key))
            if existing is None:
                raise
            return RunRequest(existing, existing.status == "succeeded", False)
        return RunRequest(run, False, True)


def fail_unqueued(factory: sessionmaker[Session], run_id: str) -> None:
    """A run the queue refused: failed, so that an identical request can queue anew."""
    with factory() as session, session.begin():
        run = session.get(Run, run_id)
        if run is not None and run.status == "queued":
            run.status, run.error_code = "failed", "queue_unavailable"
            run.error, run.active_key = "The job queue was unavailable.", None


def figure_png(session: Session, run_id: str, number: int) -> bytes | None:
    return session.scalar(
        select(RunFigure.png).where(RunFigure.run_id == run_id, RunFigure.number == number)
    )


def claim(factory: sessionmaker[Session], run_id: str) -> Run | None:
    """Move a queued run to running; None if someone else has it or it is finished."""
    with factory() as session, session.begin():
        claimed = cast(
            CursorResult[Any],
            session.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "queued")
                .values(
                    status="running",
                    started_at=utcnow(),
                    attempts=Run.attempts + 1,
                    worker=worker_id(),
                )
            ),
        ).rowcount
        if not claimed:
            return None
        return session.get(Run, run_id)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _worker_gone(worker: str | None) -> bool:
    """True when ``worker`` ran on this host and its process no longer exists."""
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def record(factory: sessionmaker[Session], run_id: str, outcome: Outcome) -> None:
    with factory() as session, session.begin():
        run = session.get(Run, run_id)
        if run is None or run.status != "running":
            return
        # killed_memory and other kills are failures with a clear error_code.
        run.status = outcome.status if outcome.status in FINAL else "failed"
        run.isolation = outcome.isolation
        run.duration_s = round(outcome.duration_s, 3)
        run.cpu_s = round(outcome.cpu_s, 3)
        run.peak_rss_mb = outcome.peak_rss_mb
        run.finished_at = utcnow()
        if outcome.status == "succeeded" and outcome.result is not None:
            run.result = outcome.result.to_json()
            run.figures = [
                RunFigure(number=i, png=png) for i, png in enumerate(outcome.result.figures)
            ]
        else:
            run.error_code = outcome.error_code
            run.error = (outcome.error or "the run failed")[:2000]
            run.active_key = None  # a failed run is not a cached result


def execute_run(
    factory: sessionmaker[Session], run_id: str, *, isolation: IsolationRequest = "auto"
) -> str | None:
    """Claim, run in the sandbox (``isolation`` as for ``sandbox.execute``), record.
    Returns the final status (None if not claimed)."""
    run = claim(factory, run_id)
    if run is None:
        return None
    module = registry.EXPERIMENTS[run.runner_name]
    limits = limits_for(run.runner_name)
    outcome = execute(module, run.params, run.seed, limits, isolation=isolation)
    record(factory, run_id, outcome)
    return outcome.status


def recover_stale(
    factory: sessionmaker[Session],
    enqueue: Callable[[str], None],
    grace_s: float = 30.0,
    pending: Callable[[], set[str]] = set,
    requeue_after_s: float = 10.0,
) -> dict[str, int]:
    """Runs left 'running' by a dead worker are retried once, then marked failed.

    A run is stale when its worker process on this host is gone, or (another host) it
    has been running longer than its wall limit plus a grace. Queued runs the queue has
    lost (not among its ``pending()`` run ids, and queued at least ``requeue_after_s``
    ago, so that a web process has had time to enqueue a new one) are enqueued again;
    claim() makes a rare duplicate delivery harmless.
    """
    stats = {"retried": 0, "failed": 0, "requeued": 0}
    now = utcnow()
    with factory() as session, session.begin():
        for run in session.scalars(select(Run).where(Run.status == "running")):
            started = run.started_at
            if started is not None and started.tzinfo is None:
                started = started.replace(tzinfo=now.tzinfo)
            limit = timedelta(seconds=limits_for(run.runner_name).wall_s + grace_s)
            if not _worker_gone(run.worker) and started is not None and now - started < limit:
                continue
            if run.attempts < MAX_ATTEMPTS:
                run.status = "queued"
                stats["retried"] += 1
            else:
                run.status = "failed"
                run.error_code = "worker_lost"
                run.error = "The worker running this experiment stopped; it was tried twice."
                run.finished_at = now
                run.active_key = None
                stats["failed"] += 1
        queued = session.execute(
            select(Run.id, Run.created_at, Run.started_at).where(Run.status == "queued")
        )
        cutoff = now - timedelta(seconds=requeue_after_s)
        # A run that has started before (retried just now, or earlier) was taken off the
        # queue already; a new one is its web process's to enqueue for a few seconds.
        settled = [
            run_id
            for run_id, created, started in queued
            if started is not None
            or (created if created.tzinfo else created.replace(tzinfo=now.tzinfo)) <= cutoff
        ]
    in_queue = pending()
    for run_id in settled:
        if run_id not in in_queue:
            enqueue(run_id)
            stats["requeued"] += 1
    return stats
