"""``flask --app service kb mine EXPORT --format ... --course CODE``: a forum export into
candidate entries for TAs to review (``knowledge.forum.mining``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from knowledge.forum import mining
from knowledge.forum.importers import ExportError
from knowledge.forum.model import FORMATS
from service.cli import ProgressBars, kb_cli
from service.extensions import core

STAGES = {
    "reading": "reading posts",
    "encoding": "encoding questions",
    "grouping": "grouping",
    "storing": "storing candidates",
    "matching": "matching with the entries",
}


@click.command("mine")
@click.argument("export", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), required=True, help="The export's format."
)
@click.option("--course", required=True, help="The course the candidates are for.")
@click.option(
    "--staff",
    default="",
    help="Comma-separated user names, ids or emails who answer for the course (needed "
    "where the export carries no roles; added to its roles where it does).",
)
@click.option(
    "--base-url",
    default=None,
    help="The forum's address (https://forum.example.edu), for exports that give thread "
    "links as paths (Discourse).",
)
@with_appcontext
def kb_mine(export: Path, fmt: str, course: str, staff: str, base_url: str | None) -> None:
    """Mine a forum or chat export into candidate entries (nothing is published).

    Mining the same export again adds nothing; a newer one adds only what is new.
    """
    started = time.monotonic()
    with ProgressBars() as bars:
        reading = bars.bar(STAGES["reading"])

        def progress(stage: str, done: int, total: int | None) -> None:
            if stage == "reading":
                if total is not None:  # the count is known only at the end
                    reading(done, max(total, 1))
                return
            if total:
                bars.bar(STAGES[stage])(done, total)

        try:
            summary = mining.mine(
                core().sessions,
                export,
                fmt,
                course,
                staff=staff.split(","),
                asker=core().retriever,
                progress=progress,
                base_url=base_url,
            )
        except (ExportError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    elapsed = time.monotonic() - started
    skipped = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in summary.skipped.items())
    removed = ", ".join(
        f"{n} {kind.replace('_', ' ')}" for kind, n in summary.removed.as_dict().items() if n
    )
    lines = [
        f"threads {summary.threads} ({summary.posts} posts; {summary.already_mined} mined before)",
        f"questions {summary.questions}" + (f" (not kept: {skipped})" if skipped else ""),
        f"groups {summary.groups}: {summary.new_candidates} new candidates, "
        f"{summary.updated_candidates} earlier ones updated",
        f"already answered by an entry: {summary.matched_existing} (proposed as aliases)",
        f"asked at least twice without a staff answer: {summary.unanswered_frequent}",
        f"repeats of rejected candidates: {summary.joined_rejected}",
        f"unreadable rows skipped: {summary.unreadable_rows}",
        f"personal data removed: {removed or 'none'}",
        f"done in {elapsed:.1f} s; review at /ta/candidates",
    ]
    click.echo("\n".join(lines), file=sys.stdout)


def init_app(app: Flask) -> None:
    kb_cli.add_command(kb_mine)
