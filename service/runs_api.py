"""Experiment runs over HTTP: start (or reuse) a run, poll it, fetch its figures."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, url_for
from pydantic import ValidationError

from knowledge.entry_store import find_entry
from runners import registry, result_store
from runners.jobs import Queue, get_queue
from runners.labels import labelled
from runners.run_tables import Run, utcnow
from service import api_models as m
from service.auth_tokens import require_read, require_scope
from service.errors import ApiError
from service.extensions import core
from service.openapi import api, responses

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
@api.validate(
    resp=responses({200: m.ExperimentList}, 401), tags=["runs"], operation_id="listExperiments"
)
def list_experiments() -> Response:
    """The registered experiments and their parameter schemas"""
    return jsonify({"items": [experiment_json(name) for name in registry.names()]})


@bp.post("/entries/<slug>/runs")
@require_scope("run", anonymous=True)
@api.validate(
    resp=responses(
        {
            200: (m.RunStarted, "An identical run already succeeded: its result."),
            202: (m.RunStarted, "Queued (or shared with an identical run in flight)."),
        },
        401,
        403,
        404,
        413,
        429,
        503,
        HTTP_409="The entry has no experiment (no_experiment).",
    ),
    tags=["runs"],
    operation_id="startRun",
)
def start_run(
    slug: str, json: m.RunRequest
) -> tuple[Response, int, dict[str, str]] | tuple[Response, int]:
    """Run the entry's experiment (or get the cached result)"""
    params, seed = json.params, json.seed
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
            result_store.fail_unqueued(core().sessions, run.id)
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


@bp.get("/runs/<run_id>")
@require_read
@api.validate(resp=responses({200: m.Run}, 401, 404), tags=["runs"], operation_id="getRun")
def get_run(run_id: str) -> Response:
    """A run's status, metrics, finding and provenance"""
    with core().sessions() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise ApiError(404, "unknown_run", "No run with that id.")
        return jsonify(run_json(run))


@bp.get("/runs/<run_id>/figures/<int(min=0, max=999):number>.png")  # a 32-bit column
@require_read
@api.validate(
    resp=responses({200: (None, "The PNG.")}, 401, 404), tags=["runs"], operation_id="getFigure"
)
def get_figure(run_id: str, number: int) -> Response:
    """One figure of a finished run"""
    with core().sessions() as session:
        figure = result_store.figure_png(session, run_id, number)
    if figure is None:
        raise ApiError(404, "unknown_figure", "No such figure for this run.")
    response = Response(figure, mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def figure_urls(run_id: str, count: int, langs: list[str] | None) -> dict[str, Any]:
    """``figures`` (the English set) and ``figures_by_lang``: a run draws its figures
    once per language, stored one language after the other (older runs: English only)."""
    langs = langs or ["en"]
    per_lang = count // len(langs)
    by_lang = {
        lang: [
            url_for("runs.get_figure", run_id=run_id, number=k * per_lang + i)
            for i in range(per_lang)
        ]
        for k, lang in enumerate(langs)
    }
    return {"figures": by_lang.get("en", []), "figures_by_lang": by_lang}


def words_for(name: str, metric_keys: list[str]) -> dict[str, Any]:
    """The labels of a run's metrics and the ones its verdict rests on."""
    if name not in registry.EXPERIMENTS:
        return {"metric_labels": {}, "verdict_metrics": []}
    module = registry.spec(name)
    return {
        "metric_labels": labelled(module.METRICS, metric_keys),
        "verdict_metrics": [k for k in module.VERDICT_METRICS if k in metric_keys],
    }


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
        "as_expected": registry.as_expected(
            run.runner_name, run.params or {}, result.get("supports_claim")
        )
        if run.status == "succeeded"
        else None,
        **figure_urls(run.id, int(result.get("figure_count", 0)), result.get("figure_langs")),
        **words_for(run.runner_name, list(result.get("metrics") or {})),
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
