"""`whopfunnel stats`: funnel reach, drop-off and end reasons."""

from __future__ import annotations

import click

from .options import config_option, current_config, plural


@click.command()
@click.option("--experience", "experience_id", default=None, help="Only this tenant.")
@config_option
def stats(experience_id) -> None:
    """Per-block reach, drop-off and end reasons per funnel and tenant."""
    from ..storage import Store
    from ..storage.stats import funnel_stats

    store = Store(current_config().database_url())
    try:
        store.check_schema()
        report = funnel_stats(store, experience_id)
    finally:
        store.close()
    if not report:
        click.echo("no conversations yet")
    for f in report:
        ends = ", ".join(f"{k} {v}" for k, v in sorted(f.end_reasons.items())) or "none yet"
        click.echo(f"{f.experience_id} / {f.funnel_id}: {plural(f.started, 'conversation')}, "
                   f"{f.statuses.get('active', 0)} active; ended: {ends}")
        click.echo(f"  {'block':<28} {'reached':>8} {'waiting':>8} {'dropped':>8} {'invalid':>8}")
        for b in sorted(f.blocks.values(), key=lambda b: (-b.reached, b.block)):
            click.echo(f"  {b.block:<28} {b.reached:>8} {b.here_now:>8} {b.dropped:>8} {b.invalid:>8}")
