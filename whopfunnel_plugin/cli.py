"""The `whopfunnel` command. The only place exceptions become messages and exit codes."""

from __future__ import annotations

import functools
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import click

from .catalog import check_paths
from .clock import FixedClock, SystemClock
from .config import Config, find_config, load_config
from .errors import ConfigError, FunnelError, WhopFunnelError


def _config_option(fn):
    """--config works before or after the subcommand name; the later one wins."""

    @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                  help="plugin.yaml to use (default: $WHOPFUNNEL_CONFIG, then ./plugin.yaml).")
    @click.pass_context
    @functools.wraps(fn)
    def wrapper(ctx, config_path, **kwargs):
        ctx.ensure_object(dict)
        if config_path:
            ctx.obj["config_path"] = config_path
        return fn(**kwargs)

    return wrapper


def current_config() -> Config:
    ctx = click.get_current_context()
    obj = ctx.find_root().obj or {}
    if "config" not in obj:
        obj["config"] = load_config(find_config(obj.get("config_path")))
    return obj["config"]


class _Group(click.Group):
    """Turns whopfunnel's own errors into one line each and exit code 1 (never a traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FunnelError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
        except WhopFunnelError as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"error: {line}", err=True)
        except KeyboardInterrupt:
            ctx.exit(130)
        ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="plugin.yaml to use (default: $WHOPFUNNEL_CONFIG, then ./plugin.yaml).")
@click.version_option(package_name="whopfunnel")
@click.pass_context
def cli(ctx, config_path) -> None:
    """DM funnels for Whop communities."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@_config_option
def validate(paths: tuple[str, ...], strict: bool) -> None:
    """Validate funnel files (a directory means every *.yaml in it)."""
    config = current_config()
    extra = _plugin_context(config)
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
        if result.funnel is not None and not result.errors:
            click.echo(f"{result.path}: ok ({result.funnel.id}, {len(result.funnel.blocks)} blocks)")
    click.echo(f"{_plural(len(results), 'file')}: {_plural(errors, 'error')}, "
               f"{_plural(warnings, 'warning')}", err=True)
    if errors or (strict and warnings):
        sys.exit(1)


@cli.command()
@click.argument("funnel_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--db", "db_path", type=click.Path(dir_okay=False),
              help="SQLite file to keep the conversation in (default: a temporary file).")
@click.option("--as", "user_id", default="user_local", show_default=True, help="Member id.")
@click.option("--name", "user_name", default=None, help="Member display name.")
@click.option("--experience", "experience_id", default="exp_local", show_default=True,
              help="Experience (tenant) id.")
@_config_option
def chat(funnel_file, db_path, user_id, user_name, experience_id) -> None:
    """Talk to a funnel in the terminal as a member (reads replies from stdin)."""
    from .chat import ChatSession, stdin_lines
    from .funnel import load_funnel
    from .store import Store

    config = current_config()
    extra = _plugin_context(config)
    funnel = load_funnel(funnel_file, ladders=config.ladders, validators=extra["validators"],
                         template_vars=extra["template_vars"])
    tmp = None
    if db_path is None:
        tmp = tempfile.TemporaryDirectory(prefix="whopfunnel-chat-")
        db_path = str(Path(tmp.name) / "chat.db")
    store = Store(f"sqlite:///{db_path}")
    try:
        store.upgrade()
        say = click.echo
        say(f"whopfunnel chat: funnel {funnel.id!r} as {user_id} in {experience_id} "
            f"(database {db_path if not tmp else 'temporary'})")
        session = ChatSession(store, funnel, extra["pm"], user_id=user_id,
                              experience_id=experience_id, user_name=user_name, say=say,
                              timeout=config.timeout, reminder=config.reminder,
                              validators=extra["validators"])
        session.run(stdin_lines(), echo=not sys.stdin.isatty())
    finally:
        store.close()
        if tmp is not None:
            tmp.cleanup()


@cli.command()
@click.option("--now", "now_text", default=None, metavar="ISO",
              help="Pretend it is this time (ISO 8601, UTC if no offset).")
@_config_option
def sweep(now_text) -> None:
    """End expired conversations once and print how many per tenant."""
    from .plugins import make_plugin_manager

    clock = FixedClock(_parse_now(now_text)) if now_text else SystemClock()
    # The real manager: plugins' on_timeout / on_conversation_end and the owner notifier
    # run for what this sweep ends, as they would inside `whopfunnel serve`.
    pm = make_plugin_manager(current_config(), clock=clock)
    try:
        result = pm.runtime.host.sweep()
    finally:
        pm.runtime.close()
    for experience_id, count in sorted(result.ended.items()):
        click.echo(f"{experience_id}: ended {_plural(count, 'conversation')}")
    click.echo(f"total: ended {_plural(result.total, 'conversation')}, "
               f"{_plural(result.reminded, 'reminder')} sent")


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command()
@_config_option
def upgrade() -> None:
    """Create or migrate the database schema."""
    from .store import Store, redact_url

    config = current_config()
    store = Store(config.database_url())
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    url = redact_url(config.database_url())
    if before == after:
        click.echo(f"{url}: schema is up to date (version {after})")
    else:
        click.echo(f"{url}: schema upgraded from version {before} to {after}")


@cli.command()
@click.option("--demo", is_flag=True, help="Run offline against a built-in fake Whop API, then exit.")
@click.option("--host", default=None, help="Listen address (default: plugin.yaml server.host).")
@click.option("--port", type=int, default=None, help="Port (default: plugin.yaml server.port).")
@_config_option
def serve(demo, host, port) -> None:
    """Run the webhook endpoint, outbox dispatcher, polling and the timeout sweep."""
    if demo:
        from .demo import run_demo

        sys.exit(run_demo(click.echo))
    from .plugins import make_plugin_manager
    from .server import build_service

    pm = make_plugin_manager(current_config())
    try:
        service = build_service(pm, host=host, port=port)
    except OSError as exc:
        pm.runtime.close()
        config = current_config()
        where = f"{host or config.host}:{config.port if port is None else port}"
        raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc} "
                          "(server.host/server.port in plugin.yaml, or --host/--port)") from None
    except BaseException:
        pm.runtime.close()
        raise
    service.install_signal_handlers()
    click.echo(f"whopfunnel serving POST {service.url}/webhooks/whop (Ctrl-C stops)", err=True)
    service.run()
    click.echo("whopfunnel stopped", err=True)


@cli.command()
@_config_option
def plugins() -> None:
    """List loaded plugins (built-in and third-party), their versions and hooks."""
    from .plugins import make_plugin_manager

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
        pm.runtime.close()


@cli.command()
@click.option("--experience", "experience_id", default=None, help="Only this tenant.")
@_config_option
def stats(experience_id) -> None:
    """Per-block reach, drop-off and end reasons per funnel and tenant."""
    from .stats import funnel_stats
    from .store import Store

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
        click.echo(f"{f.experience_id} / {f.funnel_id}: {_plural(f.started, 'conversation')}, "
                   f"{f.statuses.get('active', 0)} active; ended: {ends}")
        click.echo(f"  {'block':<28} {'reached':>8} {'waiting':>8} {'dropped':>8} {'invalid':>8}")
        for b in sorted(f.blocks.values(), key=lambda b: (-b.reached, b.block)):
            click.echo(f"  {b.block:<28} {b.reached:>8} {b.here_now:>8} {b.dropped:>8} {b.invalid:>8}")


def _plugin_context(config: Config) -> dict:
    """Validators and template variables that installed plugins provide (and the manager)."""
    from .plugins import load_plugins
    from .runtime import plugin_context

    pm = load_plugins(config)
    return {**plugin_context(pm), "pm": pm}


def _parse_now(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time like 2026-01-31T12:00:00Z",
                                 param_hint="--now") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def main() -> None:
    cli(prog_name="whopfunnel")
