"""`whopfunnel stats`: funnel analytics per funnel version and tenant, as a table, JSON or CSV."""

from __future__ import annotations

import click

from .options import config_option
from .scope import Progress, describe, scope_options


def gather(url: str, scope):
    """Every figure for the scope, with a progress bar on a terminal if it takes a while.
    Only reads: a missing SQLite file is an error, not a new empty database."""
    from ..storage.stats import funnel_stats, open_existing

    store = open_existing(url)
    progress = Progress("aggregating")
    try:
        return funnel_stats(store, scope, progress=progress)
    finally:
        progress.close()
        store.close()


@click.command()
@config_option  # outermost: --config is known before the database URL is looked up
@scope_options
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
def stats(url, scope, fmt) -> None:
    """Funnel analytics per funnel version and tenant: conversations and how they ended,
    per block in funnel order (reach, answers, drop-off, invalid and ambiguous replies,
    escalation steps, owner notifications, time to answer), per option, and split tests."""
    from . import stats_format

    report = gather(url, scope)
    filters = describe(scope)
    if fmt == "json":
        click.echo(stats_format.as_json(report, filters, scope), nl=False)
    elif fmt == "csv":
        click.echo(stats_format.as_csv(report), nl=False)
    else:
        click.echo(stats_format.table(report, filters), nl=False)
