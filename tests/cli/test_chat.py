"""`whopfunnel chat` (issue 12): blank lines, Ctrl-C, honest wording, funnel changes,
line editing, and every hook firing as in `serve`."""

from __future__ import annotations

import os
import sys

import pytest
from click.testing import CliRunner

from whopfunnel_plugin.cli import cli

from ..conftest import FUNNELS


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WHOPFUNNEL_CONFIG", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def invoke(*args, input=None):
        return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


def test_blank_lines_are_ignored(run):
    out = run("chat", FUNNELS / "onboarding.yaml", input="\n   \n1\n\n").output
    assert "invalid reply" not in out
    assert "you> 1" in out and "you> \n" not in out


def test_a_temporary_database_is_called_temporary_to_the_end(run, tmp_path):
    out = run("chat", FUNNELS / "onboarding.yaml", input="1\n").output
    assert "(a temporary database, gone when chat exits; Whop is the built-in fake)" in out
    assert out.rstrip().endswith("(end of input: the conversation was in a temporary database and "
                                 "is gone; use --db FILE to keep it and resume later)")
    assert "run chat again" not in out


def test_a_resumed_conversation_on_an_edited_funnel_says_so(run, tmp_path):
    funnel = tmp_path / "f.yaml"
    funnel.write_bytes((FUNNELS / "onboarding.yaml").read_bytes())
    run("chat", funnel, "--db", tmp_path / "c.db", input="1\n")
    funnel.write_text(funnel.read_text().replace("Want a 1:1", "Fancy a 1:1"))
    out = run("chat", funnel, "--db", tmp_path / "c.db", input="ada@example.com\n").output
    assert (f"(note: {funnel} changed since this conversation began; it carries on with the "
            "version it started on, and new conversations get the edited one)") in out
    assert "Want a 1:1 strategy session?" in out  # the version it started on
    unchanged = run("chat", funnel, "--db", tmp_path / "c.db", "--as", "bob", input="").output
    assert "note:" not in unchanged


PLUGIN = '''
from whopfunnel_plugin import hookimpl

@hookimpl
def on_member_join(event):
    print(f"[plugin] join {event.user_id} {event.company_id}")

@hookimpl
def on_message(message):
    print(f"[plugin] message {message.text!r}")

@hookimpl
def on_conversation_end(conversation):
    print(f"[plugin] end {conversation.end_reason}")
'''


def test_hook_on_member_join_and_on_message_fire_in_chat(run, tmp_path, monkeypatch):
    (tmp_path / "chatplug.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "plugin.yaml").write_text("plugins: [chatplug]\n")
    out = run("chat", FUNNELS / "onboarding.yaml", input="2\n").output
    assert "[plugin] join user_local biz_local" in out
    assert "[plugin] message '2'" in out
    assert "[plugin] end completed" in out
    assert out.index("[plugin] message '2'") < out.index("bot> Thanks for stopping by!")


def test_the_owner_side_is_shown_as_the_fake_whop_received_it(run):
    out = run("chat", FUNNELS / "onboarding.yaml", input="1\nx\ny\n").output
    assert "[owner notified: notify_owner at block 'email']" in out
    assert ("[DM to the owner: whopfunnel: member user_local (user_local) needs help in funnel "
            "'onboarding' at block 'email' (experience exp_local).]") in out
    assert "[Whop notification to the owner: Member needs help]" in out


def test_chat_never_touches_database_url(run, tmp_path, monkeypatch):
    target = tmp_path / "production.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{target}")
    run("chat", FUNNELS / "onboarding.yaml", input="1\n")
    assert not target.exists()


def _pty_chat(keys: bytes, cwd) -> str:
    """Run chat on a pseudo-terminal (so it reads with input() and readline), type `keys`."""
    import fcntl
    import pty
    import select
    import subprocess
    import termios
    import time

    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "whopfunnel_plugin", "chat",
                             str(FUNNELS / "onboarding.yaml")], cwd=cwd, stdin=child,
                            stdout=child, stderr=child, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
                            env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    os.close(child)
    out = b""

    def read_until(marker: bytes, limit: float = 30) -> None:
        nonlocal out
        deadline = time.monotonic() + limit
        while marker not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    out += os.read(main, 4096)
                except OSError:
                    return

    try:
        read_until(b"you> ")
        deadline = time.monotonic() + 30
        # readline switches the terminal out of canonical mode while it reads a line: only
        # then do typed keys reach it as keys
        while termios.tcgetattr(main)[3] & termios.ICANON and time.monotonic() < deadline:
            time.sleep(0.05)
        os.write(main, keys)
        if keys.endswith(b"\x03"):
            read_until(b"(interrupted)")
            proc.wait(60)
            read_until(b"\x00", 1)
        else:
            read_until(b"Here is the free guide")  # what we came for; no need to wait for more
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    return out.decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_terminal_gets_line_editing(tmp_path):
    pytest.importorskip("readline")
    # "x1", Home (Ctrl-A), delete the character under the cursor (Ctrl-D): the line is "1"
    out = _pty_chat(b"x1\x01\x04\r", tmp_path)
    assert "Here is the free guide" in out  # the member sent "1", not "x1" or "^A"
    assert "invalid reply" not in out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_ctrl_c_ends_chat_on_a_fresh_line(tmp_path):
    out = _pty_chat(b"\x03", tmp_path)
    assert "you> \r\n(interrupted)" in out or "you> ^C\r\n(interrupted)" in out, out
    assert "Traceback" not in out
