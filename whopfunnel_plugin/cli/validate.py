"""`whopfunnel validate PATH...`: every problem of every funnel file, with file:line:column."""

from __future__ import annotations

import sys

import click

from ..funnel.catalog import check_paths
from ..preflight import reminder_problems
from .options import config_option, current_config, plugin_context, plural


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@config_option
def validate(paths: tuple[str, ...], strict: bool) -> None:
    """Validate funnel files (a directory means every *.yaml in it)."""
    config = current_config()
    extra = plugin_context(config)
    results = check_paths(paths, ladders=config.ladders, validators=extra["validators"],
                          template_vars=extra["template_vars"])
    if not results:
        raise click.ClickException(f"no *.yaml files in {', '.join(paths)}")
    errors = warnings = 0
    for result in results:
        for problem in result.problems:
            click.echo(str(problem))
            errors += problem.severity == "error"
            warnings += problem.severity == "warning"
        warned = len(result.problems) - len(result.errors)
        if result.funnel is None or result.errors:
            continue
        what = f"{result.funnel.id}, {plural(len(result.funnel.blocks), 'block')}"
        if strict and warned:
            click.echo(f"{result.path}: fails with --strict ({what}, {plural(warned, 'warning')})")
        else:
            click.echo(f"{result.path}: ok ({what})")
    # plugin.yaml's reminder against each funnel's own timeout (preflight.py)
    for problem in reminder_problems(config, [r.funnel for r in results if r.funnel is not None]):
        click.echo(str(problem))
        warnings += 1
    click.echo(f"{plural(len(results), 'file')}: {plural(errors, 'error')}, "
               f"{plural(warnings, 'warning')}", err=True)
    if errors or (strict and warnings):
        sys.exit(1)
