"""Command-line tools: ``flask --app cacheservice <command>``."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from cacheservice.auth import mint_token
from cacheservice.migrations import upgrade
from cacheservice.services import services


@click.command("token")
@click.option("--sub", "subject", required=True, help="The token's subject (user or service).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    default=("cache:write",),
    show_default=True,
    help='Scopes, space-separated or repeated: --scope "cache:write stats:read".',
)
@click.option("--ttl", default=3600, show_default=True, help="Seconds until the token expires.")
@click.option(
    "--private-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM private key, for RS256/ES256 setups (HS256 uses CACHE_JWT_SECRET).",
)
# ``flask`` pushes an app context itself; ``app.test_cli_runner()`` and other callers of the
# bare command group do not.
@with_appcontext
def token_command(
    subject: str, scopes: tuple[str, ...], ttl: int, private_key: Path | None
) -> None:
    """Mint a development token signed with the configured key."""
    settings = services().settings
    flat = [scope for group in scopes for scope in group.split()]
    key = private_key.read_bytes() if private_key else None
    click.echo(mint_token(settings, subject, flat, ttl, private_key=key))


@click.group("db")
def db_group() -> None:
    """Postgres schema."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade_command() -> None:
    """Create the database if needed and apply pending sql/ scripts (safe to run anywhere)."""
    applied = upgrade(services().settings.database_url)
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


def register_cli(app: Flask) -> None:
    app.cli.add_command(token_command)
    app.cli.add_command(db_group)
