"""`whopfunnel plugins`: what is loaded, with versions and hooks."""

from __future__ import annotations

import click

from .options import config_option, current_config


@click.command()
@config_option
def plugins() -> None:
    """List loaded plugins (built-in and third-party), their versions and hooks."""
    from ..plugins import make_plugin_manager

    pm = make_plugin_manager(current_config(), check_schema=False)
    try:
        rows = []
        for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
            hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())
            version = "built-in" if name.startswith("whopfunnel.") else pm.versions.get(
                name, "plugin.yaml module")
            rows.append((name, version, ", ".join(hooks)))
        width = max(len(r[0]) for r in rows)
        vwidth = max(len(r[1]) for r in rows)
        for name, version, hooks in rows:
            click.echo(f"{name:<{width}}  {version:<{vwidth}}  {hooks}")
        for (name, hook), count in sorted(pm.errors.items()):
            click.echo(f"warning: plugin {name!r} failed {count}x in {hook}", err=True)
    finally:
        pm.close()
