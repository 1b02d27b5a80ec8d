"""Command line: ``flask --app service db upgrade`` and ``kb import|export|reindex``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from knowledge import accounts, importer, migrate
from knowledge.db import transaction
from knowledge.entryfile import EntryFileError
from knowledge.store import DEFAULT_MODELS, reindex
from runners import registry
from service.extensions import core

db_cli = AppGroup("db", help="Database schema.")
kb_cli = AppGroup("kb", help="Knowledge base: import, export, reindex.")


@db_cli.command("upgrade")
@click.option("--retries", default=0, show_default=True, help="Retry while the database is down.")
def db_upgrade(retries: int) -> None:
    """Apply all migrations (safe to run again)."""
    url = core().engine.url.render_as_string(hide_password=False)
    for attempt in range(retries + 1):
        try:
            migrate.upgrade(url)
            break
        except Exception as exc:  # the database may still be starting at deploy time
            if attempt == retries:
                raise click.ClickException(f"migration failed: {exc}") from exc
            click.echo(f"database not ready ({exc.__class__.__name__}); retrying in 2 s", err=True)
            time.sleep(2)
    click.echo(f"database at revision {migrate.current_revision(url)}")


@db_cli.command("downgrade")
@click.argument("revision", default="base")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (default: an empty schema)."""
    migrate.downgrade(core().engine.url.render_as_string(hide_password=False), revision)
    click.echo(f"database at revision {revision}")


@kb_cli.command("import")
@click.argument("path", type=click.Path(path_type=Path))
def kb_import(path: Path) -> None:
    """Upsert every entry file under PATH. Invalid files import nothing."""
    started = time.monotonic()
    try:
        counts = importer.import_path(core().sessions, path, registry.names())
    except importer.InvalidEntryFiles as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        click.echo(f"nothing imported ({len(exc.errors)} invalid file(s))", err=True)
        sys.exit(1)
    except (FileNotFoundError, EntryFileError) as exc:
        raise click.ClickException(str(exc)) from exc
    backfill = f", embedded {counts['embedded']} missing vectors" if counts["embedded"] else ""
    click.echo(
        f"created {counts['created']}, updated {counts['updated']}, "
        f"unchanged {counts['unchanged']}{backfill} ({time.monotonic() - started:.1f} s)"
    )


@kb_cli.command("export")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False))
def kb_export(path: Path) -> None:
    """Write every entry to PATH/<course>/<slug>.md (re-imports to the same state)."""
    count = importer.export_path(core().sessions, path)
    click.echo(f"exported {count} entries to {path}")


@kb_cli.command("reindex")
def kb_reindex() -> None:
    """Rebuild every entry's index units and embed text not embedded before."""
    started = time.monotonic()
    with core().sessions() as session, session.begin():
        stats = reindex(session, DEFAULT_MODELS)
    click.echo(
        f"reindexed {stats['entries']} entries, {stats['units']} units, "
        f"{stats['embedded']} new embeddings ({time.monotonic() - started:.1f} s)"
    )


users_cli = AppGroup("users", help="TA accounts for the /ta workspace.")


def _password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@contextmanager
def _account_change() -> Iterator[Session]:
    """A transaction for an account change; an AccountError rolls it back and becomes a
    one-line CLI error."""
    try:
        with transaction(core().sessions) as session:
            yield session
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(accounts.ROLES), default="ta", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(username: str, role: str, password_stdin: bool) -> None:
    """Create a TA account (the password is asked for twice, and stored hashed)."""
    password = _password(password_stdin)
    with _account_change() as session:
        name = accounts.create_user(session, username, password, role).username
    click.echo(f"created {role} account {name!r}")


@users_cli.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_set_password(username: str, password_stdin: bool) -> None:
    """Replace an account's password."""
    password = _password(password_stdin)
    with _account_change() as session:
        accounts.set_password(session, username, password)
    click.echo(f"password of {accounts.normalize_username(username)!r} changed")


@users_cli.command("deactivate")
@click.argument("username")
def users_deactivate(username: str) -> None:
    """Block an account from logging in (its open sessions stop working at once)."""
    _set_active(username, False)


@users_cli.command("activate")
@click.argument("username")
def users_activate(username: str) -> None:
    """Let a deactivated account log in again."""
    _set_active(username, True)


def _set_active(username: str, active: bool) -> None:
    with _account_change() as session:
        accounts.set_active(session, username, active)
    state = "activated" if active else "deactivated"
    click.echo(f"{accounts.normalize_username(username)!r} {state}")


@users_cli.command("list")
def users_list() -> None:
    """List the accounts (no passwords, of course)."""
    with core().sessions() as session:
        for user in accounts.list_users(session):
            state = "active" if user.is_active else "inactive"
            click.echo(f"{user.username}\t{user.role}\t{state}\t{user.created_at:%Y-%m-%d}")


def init_app(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(kb_cli)
    app.cli.add_command(users_cli)
