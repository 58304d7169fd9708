"""`whopfunnel plugins`: what is loaded, with versions and hooks; what is disabled, and
disabled names that match no plugin (a typo in WHOPFUNNEL_DISABLE_PLUGINS)."""

from __future__ import annotations

import importlib.metadata
import os

import click

from .options import config_option, current_config


@click.command()
@config_option
def plugins() -> None:
    """List loaded plugins (built-in and third-party), their versions and hooks."""
    from ..plugins import BLOCK_ENV, make_plugin_manager, unknown_blocked

    config = current_config()
    pm = make_plugin_manager(config, check_schema=False)
    try:
        unknown = dict(unknown_blocked(config, os.environ))  # the manager logged a warning
        dists = {ep.name: f"{ep.dist.name} {ep.dist.version}" if ep.dist else "entry point"
                 for ep in importlib.metadata.entry_points(group="whopfunnel")}
        rows = []
        for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
            if plugin is None:  # blocked: pluggy keeps the name with no plugin
                if name in unknown:
                    rows.append((name, "unknown", f"no such plugin{unknown[name]} ({BLOCK_ENV})"))
                else:
                    version = "built-in" if name.startswith("whopfunnel.") else dists.get(
                        name, "plugin.yaml module")
                    rows.append((name, version, f"disabled ({BLOCK_ENV})"))
                continue
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
