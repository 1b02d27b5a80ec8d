"""Command line: ``flask --app service db upgrade`` and ``kb import|export|reindex``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click
from click._termui_impl import ProgressBar
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from knowledge import accounts, entry_store, importer, index_sync, migrate, queue_groups
from knowledge.db import transaction
from knowledge.embedders import vector_names
from knowledge.entry_store import (
    DEFAULT_MODELS,
    Progress,
    drop_vectors,
    refresh_index,
    unused_vectors,
)
from knowledge.entryfile import EntryFileError
from knowledge.settings import settings
from runners import registry
from service.extensions import core

db_cli = AppGroup("db", help="Database schema.")
kb_cli = AppGroup("kb", help="Knowledge base: import, export, reindex, snapshot.")


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


# Vectors still in use: the retrieval models' and those of the TAs' question grouping.
MODELS_IN_USE = (*vector_names(DEFAULT_MODELS), queue_groups.MODEL)
drop_old_option = click.option(
    "--drop-old-vectors/--keep-old-vectors",
    default=lambda: settings().DROP_OLD_VECTORS,
    show_default="keep",
    help="Delete stored vectors of models no longer in use (env DROP_OLD_VECTORS=1). Kept "
    "by default, so the previous release can still serve after a rollback.",
)


class ProgressBars:
    """Progress bars on stderr for the long steps of an import or reindex."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._bars: dict[str, ProgressBar[int]] = {}

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def bar(self, label: str) -> Progress:
        def update(done: int, total: int) -> None:
            if label not in self._bars:
                self._bars[label] = self._stack.enter_context(
                    click.progressbar(length=total, label=label, file=sys.stderr)
                )
            bar = self._bars[label]
            bar.update(done - bar.pos)

        return update

    def embedding(self, model: str) -> Progress:
        return self.bar(f"embedding with {model}")


def _vectors_note(session: Session, drop: bool) -> str:
    if drop:
        dropped = drop_vectors(session, MODELS_IN_USE)
        return "".join(f"; dropped {n} old {model} vectors" for model, n in dropped.items())
    kept = unused_vectors(session, MODELS_IN_USE)
    if not kept:
        return ""
    listed = ", ".join(f"{n} {model}" for model, n in kept.items())
    return f"; kept {listed} vectors no longer used (--drop-old-vectors deletes them)"


@kb_cli.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@drop_old_option
def kb_import(path: Path, drop_old_vectors: bool) -> None:
    """Upsert every entry file under PATH, then bring the index up to date.

    Invalid files import nothing. After an upgrade, existing entries get the units and
    vectors the new release uses (progress is shown).
    """
    started = time.monotonic()
    try:
        with ProgressBars() as bars:
            counts = importer.import_path(
                core().sessions,
                path,
                registry.names(),
                units_progress=bars.bar("rebuilding index units"),
                embed_progress=bars.embedding,
            )
    except importer.InvalidEntryFiles as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        click.echo(f"nothing imported ({len(exc.errors)} invalid file(s))", err=True)
        sys.exit(1)
    except (FileNotFoundError, EntryFileError) as exc:
        raise click.ClickException(str(exc)) from exc
    extra = ""
    if counts["rebuilt"]:
        extra += f", rebuilt the units of {counts['rebuilt']} entries"
    if counts["embedded"]:
        extra += f", embedded {counts['embedded']} missing vectors"
    with transaction(core().sessions) as session:
        extra += _vectors_note(session, drop_old_vectors)
    click.echo(
        f"created {counts['created']}, updated {counts['updated']}, "
        f"unchanged {counts['unchanged']}{extra} ({time.monotonic() - started:.1f} s)"
    )


@kb_cli.command("course")
@click.argument("code")
@click.option("--title", help="The course's name.")
@click.option("--help-url", help="Where other questions go (course page, forum); '' clears.")
@click.option("--help-en", help="A sentence for questions outside the Q&A, in English.")
@click.option("--help-ja", help="The same in Japanese.")
def kb_course(
    code: str, title: str | None, help_url: str | None, help_en: str | None, help_ja: str | None
) -> None:
    """Set a course's title and where questions outside its Q&A belong."""
    try:
        course = entry_store.set_course(
            core().sessions, code, title=title, help_url=help_url, help_en=help_en, help_ja=help_ja
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    help_text = ", ".join(f"{k}: {v}" for k, v in (course.help_text or {}).items()) or "none"
    link = course.help_url or "none"
    click.echo(f"{course.code} ({course.title}): help {help_text}; link {link}")


@kb_cli.command("export")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False))
def kb_export(path: Path) -> None:
    """Write every entry to PATH/<course>/<slug>.md (re-imports to the same state)."""
    count = importer.export_path(core().sessions, path)
    click.echo(f"exported {count} entries to {path}")


@kb_cli.command("reindex")
@drop_old_option
def kb_reindex(drop_old_vectors: bool) -> None:
    """Rebuild every entry's index units and embed text not embedded before."""
    started = time.monotonic()
    with ProgressBars() as bars, transaction(core().sessions) as session:
        stats = refresh_index(
            session,
            DEFAULT_MODELS,
            rebuild=True,
            units_progress=bars.bar("rebuilding index units"),
            embed_progress=bars.embedding,
        )
        note = _vectors_note(session, drop_old_vectors)
    click.echo(
        f"reindexed {stats['entries']} entries, {stats['units']} units, "
        f"{stats['embedded']} new embeddings{note} ({time.monotonic() - started:.1f} s)"
    )


@kb_cli.command("snapshot")
def kb_snapshot() -> None:
    """Write the index snapshot the web processes map at start (with its graph when the
    index is large): run after a deploy or a large import, so no web process reads the
    whole index from the database."""
    retriever = core().retriever
    options = retriever.options
    if options.snapshot_dir is None:
        raise click.ClickException("no INDEX_SNAPSHOT_DIR is set")
    started = time.monotonic()

    def say(message: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f} s] {message}", err=True)

    path = index_sync.build_snapshot(core().sessions, retriever.models, options, say)
    size = sum(f.stat().st_size for f in path.iterdir()) / 1e6
    click.echo(
        f"snapshot {path.name}: {size:,.0f} MB in {options.snapshot_dir} "
        f"({time.monotonic() - started:.1f} s)"
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
