"""The worker role: ``flask --app service worker`` consumes the run queue."""

from __future__ import annotations

import logging
import threading

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from runners import result_store
from runners.jobs import get_queue
from runners.sandbox import sandbox_info
from service.extensions import core


@click.command("worker")
@click.option("--threads", default=1, show_default=True, help="Runs executed at once.")
@click.option(
    "--recover-every",
    default=30.0,
    show_default=True,
    help="Seconds between checks for runs lost by dead workers.",
)
@with_appcontext
def worker_command(threads: int, recover_every: float) -> None:
    """Execute queued experiment runs in the sandbox (Ctrl-C stops)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    queue = get_queue(current_app.config["QUEUE_URL"])
    factory = queue.factory = core().sessions
    info = sandbox_info()
    click.echo(
        f"worker: queue {queue.backend}, isolation {info.get('isolation')}, {threads} thread(s)"
    )
    stats = result_store.recover_stale(queue.factory, queue.enqueue)
    click.echo(f"worker: recovered {stats}")

    stop = threading.Event()

    def recover_loop() -> None:
        while not stop.wait(recover_every):
            try:
                result_store.recover_stale(factory, queue.enqueue)
            except Exception:  # the database or broker may be briefly away
                logging.getLogger(__name__).exception("recovering stale runs failed")

    threading.Thread(target=recover_loop, daemon=True).start()
    consumer = queue.huey.create_consumer(workers=threads, worker_type="thread", periodic=False)
    try:
        consumer.run()
    finally:
        stop.set()


def init_app(app: Flask) -> None:
    app.cli.add_command(worker_command)
