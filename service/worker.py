"""The worker role: ``flask --app service worker`` consumes the run queue."""

from __future__ import annotations

import logging
import threading

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from knowledge.settings import settings
from runners import registry, result_store
from runners.jobs import get_queue
from runners.sandbox import remove_stale_dirs, sandbox_info
from service.extensions import core

# A run directory older than the longest wall limit plus this belongs to no live run.
STALE_MARGIN_S = 60.0
# Huey's consumer backs off to 10 s between polls of an idle SQLite queue, so a fresh run
# waited seconds with the worker idle; polling at most this far apart costs one indexed
# read per thread, and a run starts within it. (Redis is read with a blocking pop.)
POLL_MAX_DELAY_S = 0.25


@click.command("worker")
@click.option("--threads", default=1, show_default=True, help="Runs executed at once.")
@click.option(
    "--recover-every",
    default=30.0,
    show_default=True,
    help="Seconds between checks for runs lost by dead workers.",
)
@click.option(
    "--poll-max-delay",
    default=POLL_MAX_DELAY_S,
    show_default=True,
    type=click.FloatRange(0.01, 60),
    help="SQLite queue: the longest wait between polls while idle (Redis blocks instead).",
)
@click.option(
    "--warm/--no-warm",
    default=True,
    show_default=True,
    help="Start each thread's next sandboxed child ahead of its run (torch already "
    "imported): a fresh run starts about 2 s sooner, for one idle child's memory per thread.",
)
@with_appcontext
def worker_command(threads: int, recover_every: float, poll_max_delay: float, warm: bool) -> None:
    """Execute queued experiment runs in the sandbox (Ctrl-C stops)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    required = settings().REQUIRE_SANDBOX
    info = sandbox_info()
    if required and info["isolation"] != "bubblewrap":
        raise click.ClickException(
            f"REQUIRE_SANDBOX is set but bubblewrap cannot run here ({info['reason']}); "
            "install bubblewrap and allow user namespaces, or unset REQUIRE_SANDBOX"
        )
    queue = get_queue(current_app.config["QUEUE_URL"])
    factory = queue.factory = core().sessions
    queue.isolation = "bubblewrap" if required else "auto"
    queue.warm_children = warm
    isolation = f"{info['isolation']}{' (required)' if required else ''}"
    click.echo(
        f"worker: queue {queue.backend}, isolation {isolation}, {threads} thread(s)"
        f"{', warm children' if warm else ''}"
    )
    click.echo(f"worker: removed {remove_stale_dirs(stale_after_s())} stale run directories")
    stats = result_store.recover_stale(queue.factory, queue.enqueue, pending=queue.pending_run_ids)
    click.echo(f"worker: recovered {stats}")

    stop = threading.Event()

    def recover_loop() -> None:
        while not stop.wait(recover_every):
            try:
                result_store.recover_stale(factory, queue.enqueue, pending=queue.pending_run_ids)
            except Exception:  # the database or broker may be briefly away
                logging.getLogger(__name__).exception("recovering stale runs failed")

    threading.Thread(target=recover_loop, daemon=True).start()
    consumer = queue.consumer(threads, poll_max_delay)
    try:
        consumer.run()
    finally:
        stop.set()


def stale_after_s() -> float:
    """The age past which a run directory cannot belong to a live run."""
    longest = max(result_store.limits_for(name).wall_s for name in registry.names())
    return longest + STALE_MARGIN_S


def init_app(app: Flask) -> None:
    app.cli.add_command(worker_command)
