"""`whopfunnel graph FUNNEL.yaml`: the funnel as SVG (or Mermaid, DOT), optionally with
counts from `whopfunnel test --coverage-out` or from a database."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ConfigError
from ..funnel import render
from ..funnel.graph import build
from ..funnel.model import load_funnel
from ..funnel.traffic import Traffic
from .options import config_option, current_config, plugin_context


def _coverage_traffic(path: str, funnel) -> Traffic:
    try:
        data = json.loads(Path(path).read_text())
        entry = data["funnels"][funnel.id]
        return Traffic.from_json(entry["traffic"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = f"no funnel {funnel.id!r} in it" if isinstance(exc, KeyError) else str(exc)
        raise ConfigError(f"{path}: not a coverage file from `whopfunnel test --coverage-out` "
                          f"({reason})") from None


@click.command()
@click.argument("funnel_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["svg", "mermaid", "dot"]), default="svg",
              show_default=True)
@click.option("-o", "--out", "out_path", type=click.Path(dir_okay=False),
              help="Write here (default: FUNNEL.svg / .mmd / .dot beside the funnel; - for stdout).")
@click.option("--coverage", "coverage_path", type=click.Path(exists=True, dir_okay=False),
              help="Counts from `whopfunnel test --coverage-out FILE`.")
@click.option("--stats", is_flag=True, help="Counts from the database (--db, else plugin.yaml's).")
@click.option("--db", "db_url", default=None, help="Database URL for --stats.")
@click.option("--experience", "experience_id", default=None, help="With --stats: one tenant only.")
@config_option
def graph(funnel_file, fmt, out_path, coverage_path, stats, db_url, experience_id) -> None:
    """Draw a funnel: block types, options on the edges, escalation gotos dashed."""
    if coverage_path and stats:
        raise click.UsageError("use --coverage or --stats, not both")
    config = current_config()
    extra = plugin_context(config)
    funnel = load_funnel(funnel_file, ladders=config.ladders, validators=extra["validators"],
                         template_vars=extra["template_vars"])
    traffic = None
    if coverage_path:
        traffic = _coverage_traffic(coverage_path, funnel)
    elif stats:
        from .graphstats import traffic_from_db

        traffic = traffic_from_db(db_url or config.database_url(), funnel, experience_id)
    text = getattr(render, fmt)(build(funnel, traffic))
    suffix = {"svg": ".svg", "mermaid": ".mmd", "dot": ".dot"}[fmt]
    target = out_path or str(Path(funnel_file).with_suffix(suffix))
    if target == "-":
        click.echo(text, nl=False)
    else:
        Path(target).write_text(text, encoding="utf-8")
        click.echo(f"wrote {target}", err=True)
