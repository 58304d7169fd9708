"""`whopfunnel report --out FILE.html`: the analytics as one self-contained page with charts."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import click

from ..clock import SystemClock
from ..errors import ConfigError
from .options import config_option
from .scope import describe, scope_options
from .stats import gather


@click.command()
@config_option  # outermost: --config is known before the database URL is looked up
@scope_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True),
              metavar="FILE.html", help="Where to write the page.")
def report(url, scope, out) -> None:
    """Write the funnel analytics as one HTML page: reach, endings, end reasons, options,
    escalation and split tests per funnel, with inline SVG charts (works offline)."""
    from .report_html import page

    data = gather(url, scope)
    generated = SystemClock().now().strftime("%Y-%m-%d %H:%M UTC")
    try:
        version = package_version("whopfunnel")
    except PackageNotFoundError:  # running from a source tree that was never installed
        version = "(source)"
    html = page(data, describe(scope), generated, version)
    try:
        Path(out).write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {out}: {len(data)} funnel version{'' if len(data) == 1 else 's'}")
