"""`whopfunnel db upgrade`: create or migrate the schema."""

from __future__ import annotations

import click

from .options import config_option, current_config


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command()
@config_option
def upgrade() -> None:
    """Create or migrate the database schema."""
    from ..storage import Store, redact_url

    config = current_config()
    store = Store(config.database_url())
    try:
        before, after = store.upgrade(reminder=config.reminder)
    finally:
        store.close()
    url = redact_url(config.database_url())
    if before == after:
        click.echo(f"{url}: schema is up to date (version {after})")
    else:
        click.echo(f"{url}: schema upgraded from version {before} to {after}")
