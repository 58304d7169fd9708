"""Configuration that catches an operator's mistakes (issue 15): pasted secrets refused
without an echo, every missing environment variable at once, the bot user id required
by serve, ports checked, nothing to serve refused, reminders past a funnel's timeout,
disabled and unknown plugin names."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from whopfunnel_plugin.cli import cli
from whopfunnel_plugin.config import Config, load_config
from whopfunnel_plugin.errors import ConfigError
from whopfunnel_plugin.funnel.catalog import load_all
from whopfunnel_plugin.preflight import looks_like_secret, missing_environment, reminder_problems

from .conftest import FUNNELS

PASTED = ["ws_7f3a9b2c4d5e6f708192a3b4c5d6e7f8", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
          "apik_0123456789abcdefABCDEF", "sk_live_abc-123", "f3a9b2c7d1e4a5b6c7d8e9f0a1b2c3d4",
          "Zx81QwErTy7UiOp2AsDfGh3JkL", "a" * 64]


@pytest.mark.parametrize("value", PASTED)
@pytest.mark.parametrize("key", ["api_key_env", "webhook_secret_env", "bot_user_id_env"])
def test_a_pasted_secret_is_refused_and_never_echoed(tmp_path, key, value):
    path = tmp_path / "plugin.yaml"
    path.write_text(f"whop:\n  {key}: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2:{len(key) + 5}: whop.{key} must name an environment variable")
    assert "looks like a secret itself (not shown)" in message
    assert value not in message and value[:8] not in message


@pytest.mark.parametrize("name", ["WHOP_API_KEY", "MY_WHOP_KEY_2", "PROD_WHOP_WEBHOOK_SECRET",
                                  "whop_bot_user", "WHOPFUNNEL_STAGING_API_KEY_V2"])
def test_ordinary_variable_names_pass(name):
    assert not looks_like_secret(name)


def test_every_missing_variable_is_named_at_once():
    with pytest.raises(ConfigError) as info:
        missing_environment(Config(path="plugin.yaml"), environ={"WHOP_API_KEY": "k"})
    assert str(info.value) == (
        "environment variables are not set: WHOP_WEBHOOK_SECRET (whop.webhook_secret_env), "
        "WHOP_BOT_USER_ID (whop.bot_user_id_env); set them, or name others in plugin.yaml")
    missing_environment(Config(), environ={"WHOP_API_KEY": "k", "WHOP_WEBHOOK_SECRET": "s",
                                           "WHOP_BOT_USER_ID": "u"})


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("WHOPFUNNEL_CONFIG", "DATABASE_URL", "WHOP_API_KEY", "WHOP_WEBHOOK_SECRET",
                 "WHOP_BOT_USER_ID", "WHOPFUNNEL_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)

    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


def servable(tmp_path, extra=""):
    (tmp_path / "funnels").mkdir(exist_ok=True)
    (tmp_path / "funnels" / "onboarding.yaml").write_bytes((FUNNELS / "onboarding.yaml").read_bytes())
    (tmp_path / "plugin.yaml").write_text(
        f"database: sqlite:///{tmp_path / 'x.db'}\nfunnels: funnels/\n"
        "routes:\n  - {default: true, experience: exp_1, funnel: onboarding}\n" + extra)


def test_serve_names_every_missing_variable_before_touching_the_database(run, tmp_path):
    servable(tmp_path)
    result = run("serve")
    assert result.exit_code == 1
    assert result.output == (
        "error: environment variables are not set: WHOP_API_KEY (whop.api_key_env), "
        "WHOP_WEBHOOK_SECRET (whop.webhook_secret_env), WHOP_BOT_USER_ID (whop.bot_user_id_env); "
        "set them, or name others in plugin.yaml\n")
    assert not (tmp_path / "x.db").exists()


def test_serve_needs_the_bot_user_id(run, tmp_path, monkeypatch):
    servable(tmp_path)
    monkeypatch.setenv("WHOP_API_KEY", "k")
    monkeypatch.setenv("WHOP_WEBHOOK_SECRET", "ws_x")
    result = run("serve")
    assert (result.exit_code, result.output) == (1, (
        "error: environment variable is not set: WHOP_BOT_USER_ID (whop.bot_user_id_env); set it, "
        "or name another in plugin.yaml\n"))


def test_serve_with_nothing_to_serve_refuses_with_one_line(run, tmp_path):
    result = run("serve")
    assert result.exit_code == 1
    assert result.output == (
        "error: nothing to serve: no routes in plugin.yaml (none found here: --config or "
        "WHOPFUNNEL_CONFIG) and no funnel files (*.yaml) in ./funnels (missing)\n")
    (tmp_path / "plugin.yaml").write_text("routes:\n  - {default: true, experience: e, funnel: f}\n")
    (tmp_path / "funnels").mkdir()
    result = run("serve")
    assert result.output == "error: nothing to serve: no funnel files (*.yaml) in funnels\n"


@pytest.mark.parametrize("port", ["99999", "-5", "65536"])
def test_a_bad_port_is_one_line(run, port):
    result = run("serve", "--port", port)
    assert (result.exit_code, result.output) == (
        1, f"error: --port {port} is not a port number (0-65535)\n")


REMINDED = "timeouts:\n  conversation: 24h\n  reminder: 2h\n"
SHORT = (FUNNELS / "onboarding.yaml").read_text().replace("id: onboarding\n", "id: quick\n", 1).replace(
    "timeout: 24h\n", "timeout: 2h\n", 1)


def test_a_reminder_at_or_past_a_funnels_timeout_is_flagged(run, tmp_path):
    servable(tmp_path, REMINDED)
    (tmp_path / "funnels" / "quick.yaml").write_text(SHORT)
    config = load_config(tmp_path / "plugin.yaml")
    funnels = load_all(config.funnel_paths())
    (problem,) = reminder_problems(config, funnels.values())
    line = SHORT.splitlines().index("timeout: 2h") + 1
    assert str(problem) == (
        f"{tmp_path / 'funnels' / 'quick.yaml'}:{line}:10: warning: funnel 'quick' times out after "
        f"2h, at or before timeouts.reminder (2h in {tmp_path / 'plugin.yaml'}): its reminder "
        "is never sent")
    result = run("validate", "funnels")
    assert result.exit_code == 0
    assert (f"funnels/quick.yaml:{line}:10: warning: funnel 'quick' times out after 2h, at or "
            "before timeouts.reminder (2h in plugin.yaml): its reminder is never sent") in result.output
    assert "2 files: 0 errors, 1 warning" in result.output
    assert run("validate", "--strict", "funnels").exit_code == 1


PLUG = "from whopfunnel_plugin import hookimpl\n\n@hookimpl\ndef on_timeout(conversation):\n    pass\n"


def plugins_cli(tmp_path, disabled: str):
    (tmp_path / "myplug.py").write_text(PLUG)
    (tmp_path / "plugin.yaml").write_text(f"database: sqlite:///{tmp_path / 'x.db'}\nplugins: [myplug]\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "WHOPFUNNEL_DISABLE_PLUGINS": disabled}
    env.pop("WHOPFUNNEL_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "whopfunnel_plugin", "plugins"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=60)


def test_plugins_marks_disabled_and_unknown_names(tmp_path):
    shown = plugins_cli(tmp_path, "")
    assert ["myplug", "plugin.yaml", "module", "on_timeout"] in [r.split() for r in shown.stdout.splitlines()]
    proc = plugins_cli(tmp_path, "myplug, myplgu")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in proc.stdout.splitlines()}
    assert rows["myplug"] == "plugin.yaml module disabled (WHOPFUNNEL_DISABLE_PLUGINS)"
    assert rows["myplgu"] == ("unknown no such plugin; did you mean 'myplug'? "
                              "(WHOPFUNNEL_DISABLE_PLUGINS)")
    assert ("WHOPFUNNEL_DISABLE_PLUGINS names 'myplgu', which is no installed or configured "
            "plugin; did you mean 'myplug'?; nothing was disabled for it") in proc.stderr
    assert "on_timeout" not in proc.stdout
