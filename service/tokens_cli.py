"""``flask --app service tokens create|revoke|list``: API tokens for bots and scripts."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from knowledge import api_tokens
from knowledge.db import transaction
from service.extensions import core

tokens_cli = AppGroup("tokens", help="API tokens: create (shown once), revoke, list.")


@tokens_cli.command("create")
@click.argument("name")
@click.option(
    "--scopes",
    default="ask",
    show_default=True,
    help=f"Comma-separated scopes from: {', '.join(api_tokens.SCOPES)}.",
)
@click.option(
    "--expires-days", type=int, default=None, help="Expire after N days (default: never)."
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the token (for scripts).")
def create(name: str, scopes: str, expires_days: int | None, quiet: bool) -> None:
    """Create a token called NAME and print it. It is shown this once only."""
    try:
        with transaction(core().sessions) as session:
            new = api_tokens.create_token(session, name, scopes, expires_in_days=expires_days)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if quiet:
        click.echo(new.secret)
        return
    info = new.info
    expires = info.expires_at.isoformat(timespec="seconds") if info.expires_at else "never"
    click.echo(f"created token {info.id} {info.name!r} ({info.prefix}…)")
    click.echo(f"scopes:  {','.join(info.scopes)}")
    click.echo(f"expires: {expires}")
    click.echo(f"token:   {new.secret}")
    click.echo("Store it now: it is not shown again (only its hash is kept).", err=True)


@tokens_cli.command("revoke")
@click.argument("id_or_prefix")
def revoke(id_or_prefix: str) -> None:
    """Revoke the token with this id or prefix (e.g. 3 or ra_AbCd1234)."""
    try:
        with transaction(core().sessions) as session:
            info = api_tokens.revoke_token(session, id_or_prefix)
    except api_tokens.TokenLookupError as exc:
        raise click.ClickException(str(exc)) from exc
    revoked = info.revoked_at.isoformat(timespec="seconds") if info.revoked_at else "?"
    click.echo(f"revoked token {info.id} {info.name!r} ({info.prefix}…) at {revoked}")


@tokens_cli.command("list")
@click.option("--active", is_flag=True, help="Hide revoked tokens.")
def list_(active: bool) -> None:
    """List tokens (never their secrets), newest first."""
    with core().sessions() as session:
        items = api_tokens.list_tokens(session, include_revoked=not active)
    if not items:
        click.echo("no tokens")
        return
    click.echo(f"{'id':>4}  {'prefix':<12} {'status':<8} {'scopes':<14} {'expires':<20} name")
    for t in items:
        expires = t.expires_at.isoformat(timespec="minutes") if t.expires_at else "never"
        click.echo(
            f"{t.id:>4}  {t.prefix:<12} {t.status():<8} {','.join(t.scopes):<14} "
            f"{expires:<20} {t.name}"
        )


def init_app(app: Flask) -> None:
    app.cli.add_command(tokens_cli)
