"""`whopfunnel sweep [--now ISO]`: end expired conversations once."""

from __future__ import annotations

import click

from .options import config_option, current_config, parse_now, plural


@click.command()
@click.option("--now", "now_text", default=None, metavar="ISO",
              help="Pretend it is this time (ISO 8601, UTC if no offset).")
@config_option
def sweep(now_text) -> None:
    """End expired conversations once and print how many per tenant."""
    from ..plugins import make_plugin_manager

    now = parse_now(now_text) if now_text else None
    # The real manager: plugins' on_timeout / on_conversation_end and the owner notifier
    # run for what this sweep ends, as they would inside `whopfunnel serve`. A pretended
    # --now decides only what is swept: what the sweep queues is due at the real time.
    pm = make_plugin_manager(current_config())
    try:
        result = pm.runtime.host.sweep(now)
    finally:
        pm.close()
    for experience_id, count in sorted(result.ended.items()):
        click.echo(f"{experience_id}: ended {plural(count, 'conversation')}")
    click.echo(f"total: ended {plural(result.total, 'conversation')}, "
               f"{plural(result.reminded, 'reminder')} sent")
