"""The command line as a user sees it: output, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from whopfunnel_plugin.cli import cli
from whopfunnel_plugin.storage import SCHEMA_VERSION

from ..conftest import FUNNELS, ROOT


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WHOPFUNNEL_CONFIG", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def invoke(*args, input=None):
        return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


def test_validate_the_examples(run):
    result = run("validate", FUNNELS)
    assert result.exit_code == 0
    assert f"{FUNNELS / 'onboarding.yaml'}: ok (onboarding, 6 blocks)" in result.output
    assert "4 files: 0 errors, 0 warnings" in result.output


@pytest.mark.parametrize("name, content, message", [
    ("binary.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "1:1: not a text file (NUL byte at offset 8)"),
    ("empty.yaml", b"", "1:1: the file is empty; expected a funnel mapping with id, start and blocks"),
    ("list.yaml", b"- id: x\n- id: y\n", "1:1: a funnel must be a mapping with id, start and blocks, "
     "not a list"),
    ("huge.yaml", b"# " + b"x" * (5 * 1024 * 1024), "1:1: the file is 5.0 MiB; funnel files are "
     "limited to 1 MiB"),
    ("tag.yaml", b"id: x\nstart: !!python/object:os.system {}\n", "2:8: unsafe or unknown YAML tag "
     "'tag:yaml.org,2002:python/object:os.system'; only plain YAML is allowed"),
])
def test_validate_malformed_files_without_a_traceback(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "whopfunnel_plugin", "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"{path}:{message}"]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "1 file: 1 error, 0 warnings"


def test_validate_reports_every_file_and_fails(run, tmp_path):
    (tmp_path / "good.yaml").write_bytes((FUNNELS / "onboarding.yaml").read_bytes())
    (tmp_path / "bad.yaml").write_text("id: bad\nstart: nowhere\nblocks:\n  a: {type: end}\n")
    result = run("validate", tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path / 'bad.yaml'}:2:8: start block 'nowhere' does not exist" in result.output
    assert f"{tmp_path / 'good.yaml'}: ok" in result.output


def test_strict_turns_warnings_into_errors(run, tmp_path):
    text = (FUNNELS / "onboarding.yaml").read_text() + "  spare: unused\n"
    (tmp_path / "w.yaml").write_text(text)
    assert run("validate", tmp_path / "w.yaml").exit_code == 0
    strict = run("validate", "--strict", tmp_path / "w.yaml")
    assert strict.exit_code == 1
    assert "warning: variable 'spare' in vars is never used" in strict.output


def test_validate_rejects_duplicate_funnel_ids_across_files(run, tmp_path):
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_bytes((FUNNELS / "onboarding.yaml").read_bytes())
    result = run("validate", tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path / 'b.yaml'}:1:1: funnel id 'onboarding' is already used by " \
           f"{tmp_path / 'a.yaml'}" in result.output


def test_chat_from_a_pipe_shows_escalation_and_the_ending(run):
    result = run("chat", FUNNELS / "onboarding.yaml", input="1\nfoo\nbar\nbaz\n")
    assert result.exit_code == 0
    out = result.output
    assert "bot> Welcome, friend! What brings you here?" in out
    assert "     1. Trading & Investing\n     2. Just exploring for now" in out
    assert "bot> Here is the free guide: https://example.com/guide" in out
    order = ["you> foo", "[invalid reply 1: reprompt]",
             "bot> That doesn't look like an email address. Please check it and send it again.",
             "you> bar", "bot> I'll inform the Whop owner about your request. Please wait for "
             "assistance.", "[owner notified: notify_owner at block 'email']",
             "you> baz", "bot> I'm unable to help you further. Please contact the Whop owner "
             "directly.", "(conversation abandoned; end reason: max_invalid_responses)"]
    positions = [out.index(piece) for piece in order]
    assert positions == sorted(positions)


def test_chat_resumes_with_the_same_db_and_identity(run, tmp_path):
    db = tmp_path / "chat.db"
    first = run("chat", FUNNELS / "onboarding.yaml", "--db", db, "--as", "ada", input="1\n")
    assert "the conversation stays open" in first.output
    other = run("chat", FUNNELS / "onboarding.yaml", "--db", db, "--as", "bob", input="")
    assert "resuming" not in other.output
    again = run("chat", FUNNELS / "onboarding.yaml", "--db", db, "--as", "ada",
                input="ada@example.com\nno\n")
    assert "(resuming conversation 1 at block 'email')" in again.output
    assert "bot> Thanks! We'll send extra material to ada@example.com." in again.output
    assert "(conversation completed; end reason: completed)" in again.output


def test_chat_refuses_an_invalid_funnel(run, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nstart: nowhere\nblocks:\n  a: {type: end}\n")
    result = run("chat", bad, input="")
    assert result.exit_code == 1
    assert f"{bad}:2:8: start block 'nowhere' does not exist" in result.output


def test_db_upgrade_then_sweep(run, tmp_path):
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    (tmp_path / "plugin.yaml").write_text(f"database: {url}\n")
    refused = run("sweep")
    assert refused.exit_code == 1
    assert "has no whopfunnel schema" in refused.output
    assert "run `whopfunnel db upgrade`" in refused.output
    up = run("db", "upgrade")
    assert up.exit_code == 0
    assert f"schema upgraded from version 0 to {SCHEMA_VERSION}" in up.output
    assert f"schema is up to date (version {SCHEMA_VERSION})" in run("db", "upgrade").output
    swept = run("sweep", "--now", "2030-01-01T00:00:00Z")
    assert swept.exit_code == 0
    assert "total: ended 0 conversations" in swept.output


def test_sweep_ends_expired_chat_conversations_per_tenant(run, tmp_path):
    db = tmp_path / "c.db"
    for user, exp in (("u1", "exp_a"), ("u2", "exp_a"), ("u3", "exp_b")):
        run("chat", FUNNELS / "onboarding.yaml", "--db", db, "--experience", exp, "--as", user,
            input="")
    (tmp_path / "p.yaml").write_text(f"database: sqlite:///{db}\n")
    result = run("--config", tmp_path / "p.yaml", "sweep", "--now", "2099-01-01T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert "exp_a: ended 2 conversations" in result.output
    assert "exp_b: ended 1 conversation\n" in result.output
    # --config after the subcommand name works too
    again = run("sweep", "--config", tmp_path / "p.yaml", "--now", "2099-01-01T00:00:00Z")
    assert "total: ended 0 conversations" in again.output


def test_bad_config_is_one_line_per_problem(run, tmp_path):
    (tmp_path / "plugin.yaml").write_text("databse: x\ntimeouts:\n  conversation: soon\n")
    result = run("sweep")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: plugin.yaml:1:1: unknown key 'databse' at the top level; did you mean 'database'?",
        "error: plugin.yaml:3:17: timeouts.conversation: expected a duration like 90s, 15m, 24h "
        "or 7d, got 'soon'",
    ]


def test_sweep_rejects_a_bad_now(run):
    result = run("sweep", "--now", "yesterday")
    assert result.exit_code == 2
    assert "'yesterday' is not an ISO 8601 time" in result.output


def test_readme_set_up_is_the_two_commands_this_suite_checks():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Set-up: two commands", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert block.splitlines() == ["pip install -e . && whopfunnel serve --demo",
                                  "pip install -e '.[test]' && pytest"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[test]'" in ci and "\npytest\n" in ci


def test_serve_demo_runs_a_whole_funnel_offline(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "whopfunnel_plugin", "serve", "--demo"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for piece in ["[webhook membership.activated: HTTP 200 started]",
                  "bot -> Ada: Welcome, friend! What brings you here?",
                  "bot -> Ada: Please choose from the provided options above.",
                  "bot -> owner: whopfunnel: member user_ada (user_ada) needs help",
                  "bot -> Ada: I'll inform the Whop owner about your request.",
                  "Whop notification -> owner: Member needs help",
                  "bot -> Ada: Thanks for stopping by!",
                  "conversation 1: completed (completed); captured {'email': 'ada@example.com'}"]:
        assert piece in out
    assert "Traceback" not in proc.stderr


def test_an_unreachable_database_is_one_line(run, tmp_path):
    (tmp_path / "plugin.yaml").write_text(
        "database: postgresql://postgres:hunter2@127.0.0.1:1/nope\n")
    result = run("sweep")
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1
    assert result.output.startswith("error: cannot connect to the database "
                                    "postgresql://postgres:***@127.0.0.1:1/nope: ")
    assert "hunter2" not in result.output


def _servable(tmp_path, monkeypatch):
    """plugin.yaml with a route and a funnel, and every environment variable serve needs."""
    (tmp_path / "funnels").mkdir()
    (tmp_path / "funnels" / "onboarding.yaml").write_bytes((FUNNELS / "onboarding.yaml").read_bytes())
    (tmp_path / "plugin.yaml").write_text(
        f"database: sqlite:///{tmp_path / 'x.db'}\nfunnels: funnels/\n"
        "routes:\n  - {default: true, experience: exp_1, funnel: onboarding}\n")
    for name, value in (("WHOP_API_KEY", "k"), ("WHOP_WEBHOOK_SECRET", "ws_x"),
                        ("WHOP_BOT_USER_ID", "user_bot")):
        monkeypatch.setenv(name, value)


def test_serve_on_a_port_in_use_is_one_line(run, tmp_path, monkeypatch):
    import socket

    _servable(tmp_path, monkeypatch)
    assert run("db", "upgrade").exit_code == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--port", port)
    assert result.exit_code == 1
    assert result.output == (f"error: cannot listen on 127.0.0.1:{port}: Address already in use "
                             "(server.host/server.port in plugin.yaml, or --host/--port)\n")


def test_serve_without_the_webhook_secret_names_the_variable(run, tmp_path, monkeypatch):
    _servable(tmp_path, monkeypatch)
    run("db", "upgrade")
    monkeypatch.delenv("WHOP_WEBHOOK_SECRET", raising=False)
    result = run("serve")
    assert result.exit_code == 1
    assert result.output == ("error: environment variable is not set: WHOP_WEBHOOK_SECRET "
                             "(whop.webhook_secret_env); set it, or name another in plugin.yaml\n")


def test_strict_never_says_ok_for_a_file_it_fails(run, tmp_path):
    text = (FUNNELS / "onboarding.yaml").read_text() + "  spare: unused\n"
    (tmp_path / "warn.yaml").write_text(text)
    strict = run("validate", "--strict", tmp_path / "warn.yaml")
    assert strict.exit_code == 1
    assert f"{tmp_path / 'warn.yaml'}: ok" not in strict.output
    assert (f"{tmp_path / 'warn.yaml'}: fails with --strict (onboarding, 6 blocks, 1 warning)"
            in strict.output)


def test_validate_counts_blocks_in_good_english(run, tmp_path):
    (tmp_path / "one.yaml").write_text("id: one\nstart: bye\nblocks:\n  bye: {type: end, message: Bye}\n")
    assert f"{tmp_path / 'one.yaml'}: ok (one, 1 block)" in run("validate", tmp_path).output


def test_a_missing_funnels_folder_is_reported_at_its_key_in_plugin_yaml(run, tmp_path, monkeypatch):
    (tmp_path / "plugin.yaml").write_text(f"database: sqlite:///{tmp_path / 'x.db'}\n"
                                          "funnels: funnelz/\n")
    assert run("db", "upgrade").exit_code == 0
    monkeypatch.setenv("WHOP_API_KEY", "k")
    monkeypatch.setenv("WHOP_WEBHOOK_SECRET", "ws_x")
    result = run("serve")
    assert result.exit_code == 1
    assert result.output == "error: plugin.yaml:2:10: funnels: funnelz/ does not exist\n"
