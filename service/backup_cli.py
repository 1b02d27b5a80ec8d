"""``flask --app service backup create PATH`` and ``backup restore PATH``."""

from __future__ import annotations

import time
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from knowledge.backup import BackupError, create_backup, read_header, restore_backup
from service.extensions import core

backup_cli = AppGroup("backup", help="Back up the whole database, or restore a backup.")


def _url() -> str:
    return core().engine.url.render_as_string(hide_password=False)


def _summary(counts: dict[str, int]) -> str:
    shown = ("entries", "entry_revisions", "ask_log", "feedback", "runs", "run_figures")
    return ", ".join(f"{name} {counts.get(name, 0)}" for name in shown)


@backup_cli.command("create")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def backup_create(path: Path) -> None:
    """Write every table to PATH (gzip'd JSON lines; SQLite and PostgreSQL alike)."""
    started = time.monotonic()
    try:
        counts = create_backup(_url(), path)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"backed up {sum(counts.values())} rows from {len(counts)} tables to {path} "
        f"({_summary(counts)}; {time.monotonic() - started:.1f} s)"
    )


@backup_cli.command("restore")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
def backup_restore(path: Path) -> None:
    """Load PATH into this app's database, which must be empty (run `db upgrade` after)."""
    started = time.monotonic()
    try:
        header = read_header(path)
        counts = restore_backup(_url(), path)
    except BackupError as exc:
        raise click.ClickException(f"restore refused: {exc}") from exc
    click.echo(
        f"restored {sum(counts.values())} rows into {core().engine.dialect.name} "
        f"({_summary(counts)}; from a {header['dialect']} backup of {header['created_at']}, "
        f"revision {header['revision']}; {time.monotonic() - started:.1f} s)"
    )


def init_app(app: Flask) -> None:
    app.cli.add_command(backup_cli)
