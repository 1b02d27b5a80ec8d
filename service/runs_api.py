"""Experiment runs over HTTP: start (or reuse) a run, poll it, fetch its figures."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request, url_for
from pydantic import ValidationError
from sqlalchemy import select

from knowledge.entry_store import find_entry
from runners import registry, result_store
from runners.jobs import Queue, get_queue
from runners.run_tables import Run, RunFigure, utcnow
from service.auth_tokens import require_read, require_scope
from service.errors import ApiError
from service.extensions import core
from service.request_bodies import int_field, json_object, reject_unknown

bp = Blueprint("runs", __name__, url_prefix="/api/v1")


def queue() -> Queue:
    return get_queue(current_app.config["QUEUE_URL"])


def experiment_json(name: str) -> dict[str, Any]:
    module = registry.spec(name)
    return {
        "name": name,
        "title": module.TITLE,
        "claim": module.CLAIM,
        "time_budget_s": module.TIME_BUDGET_S,
        "params_schema": module.Params.model_json_schema(),
    }


@bp.get("/experiments")
@require_read
def list_experiments() -> Response:
    return jsonify({"items": [experiment_json(name) for name in registry.names()]})


@bp.post("/entries/<slug>/runs")
@require_scope("run", anonymous=True)
def start_run(slug: str) -> tuple[Response, int, dict[str, str]] | tuple[Response, int]:
    body = json_object() if _has_body() else {}
    reject_unknown(body, {"params", "seed"})
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise ApiError(400, "wrong_type", "params must be a JSON object.", field="params")
    seed = int_field(body, "seed", low=0, high=2**31 - 1, default=result_store.DEFAULT_SEED)
    with core().sessions() as session:
        entry = find_entry(session, slug)
        if entry is None:
            raise ApiError(404, "unknown_slug", f"No entry with slug {slug!r}.")
        if not entry.runner_name:
            raise ApiError(409, "no_experiment", "This entry has no experiment to run.")
        name, defaults = entry.runner_name, dict(entry.runner_params or {})
    try:
        requested = result_store.request_run(
            core().sessions,
            name,
            {**defaults, **params},
            seed,
            entry_slug=slug,
            max_queued=current_app.config["MAX_QUEUED_RUNS"],
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        field = "params." + ".".join(str(p) for p in err["loc"]) if err["loc"] else "params"
        raise ApiError(400, "invalid_params", f"{field}: {err['msg']}", field=field) from None
    except result_store.QueueFull as exc:
        raise ApiError(
            503, "queue_full", str(exc), headers={"Retry-After": str(exc.retry_after_s)}
        ) from None
    run = requested.run
    if requested.created:
        try:
            queue().enqueue(run.id)
        except Exception:
            _fail_unqueued(run.id)
            raise ApiError(
                503,
                "queue_unavailable",
                "The job queue is unavailable; please retry shortly.",
                headers={"Retry-After": "5"},
            ) from None
    if requested.cached:
        return jsonify({**run_json(run), "cached": True}), 200
    location = url_for("runs.get_run", run_id=run.id)
    return jsonify({**run_json(run), "cached": False}), 202, {"Location": location}


def _has_body() -> bool:
    return bool(request.get_data(cache=True).strip())


def _fail_unqueued(run_id: str) -> None:
    with core().sessions() as session, session.begin():
        run = session.get(Run, run_id)
        if run is not None and run.status == "queued":
            run.status, run.error_code = "failed", "queue_unavailable"
            run.error, run.active_key = "The job queue was unavailable.", None


@bp.get("/runs/<run_id>")
@require_read
def get_run(run_id: str) -> Response:
    with core().sessions() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise ApiError(404, "unknown_run", "No run with that id.")
        return jsonify(run_json(run))


@bp.get("/runs/<run_id>/figures/<int(max=999):number>.png")  # bounded: a 32-bit column
@require_read
def get_figure(run_id: str, number: int) -> Response:
    with core().sessions() as session:
        figure = session.scalar(
            select(RunFigure.png).where(RunFigure.run_id == run_id, RunFigure.number == number)
        )
    if figure is None:
        raise ApiError(404, "unknown_figure", "No such figure for this run.")
    response = Response(figure, mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def run_json(run: Run) -> dict[str, Any]:
    result = run.result or {}
    elapsed = None
    if run.status == "running" and run.started_at is not None:
        started = (
            run.started_at
            if run.started_at.tzinfo
            else run.started_at.replace(tzinfo=utcnow().tzinfo)
        )
        elapsed = round((utcnow() - started).total_seconds(), 1)
    return {
        "id": run.id,
        "status": run.status,
        "experiment": run.runner_name,
        "entry_slug": run.entry_slug,
        "params": run.params,
        "seed": run.seed,
        "elapsed_s": elapsed,
        "metrics": result.get("metrics"),
        "series": result.get("series"),
        "finding": result.get("finding"),
        "supports_claim": result.get("supports_claim"),
        "figures": [
            url_for("runs.get_figure", run_id=run.id, number=i)
            for i in range(int(result.get("figure_count", 0)))
        ],
        "error": {"code": run.error_code, "message": run.error} if run.error_code else None,
        "provenance": {
            "experiment": run.runner_name,
            "params": run.params,
            "seed": run.seed,
            "code_hash": run.code_hash,
            "torch_version": run.torch_version,
            "isolation": run.isolation,
            "attempts": run.attempts,
            "duration_s": run.duration_s,
            "cpu_s": run.cpu_s,
            "peak_rss_mb": run.peak_rss_mb,
            "created_at": run.created_at.isoformat() if run.created_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
        "url": url_for("runs.get_run", run_id=run.id),
    }


def init_app(app: Flask) -> None:
    app.config.setdefault("MAX_QUEUED_RUNS", 50)
    app.register_blueprint(bp)
