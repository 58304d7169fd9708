"""The pluggy host: every hook, built-ins as plugins, entry points, error isolation."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from whopfunnel_plugin import MemberJoined, MessageReceived, Step, hookimpl, make_plugin_manager
from whopfunnel_plugin.errors import ConfigError, FunnelError, SchemaOutOfDate

from .conftest import ROOT

WELCOME = "Welcome, Ada! What brings you here?\n\n1. Trading & Investing\n2. Just exploring for now"


def join(pm, user="user_1", exp="exp_1", **kw):
    kw.setdefault("company_id", "biz_1")
    kw.setdefault("user_name", "Ada")
    return pm.hook.on_member_join(event=MemberJoined(experience_id=exp, user_id=user, **kw))


def say(pm, text, msg_id=None, user="user_1", exp="exp_1"):
    return pm.hook.on_message(message=MessageReceived(
        experience_id=exp, user_id=user, message_id=msg_id or f"m_{uuid.uuid4().hex}", text=text))


def dms(fake, user="user_1"):
    return [m["content"] for m in fake.sent_messages(fake.channel_for(user, "biz_1"))]


class Recorder:
    def __init__(self):
        self.calls = []

    @hookimpl
    def on_member_join(self, event):
        self.calls.append(("join", event.user_id))

    @hookimpl
    def on_message(self, message):
        self.calls.append(("message", message.text))

    @hookimpl
    def on_timeout(self, conversation):
        self.calls.append(("timeout", conversation.id))

    @hookimpl
    def on_conversation_end(self, conversation):
        self.calls.append(("end", conversation.end_reason))

    @hookimpl
    def on_owner_notify(self, conversation, reason, block, last_replies):
        self.calls.append(("owner", reason, block, tuple(last_replies)))

    @hookimpl
    def on_delivery_failed(self, conversation, text, error, attempts):
        self.calls.append(("failed", text, attempts))


@pytest.fixture
def recorder(make_pm):
    pm = make_pm()
    plugin = Recorder()
    pm.register(plugin, name="recorder")
    try:
        yield pm, plugin
    finally:
        pm.unregister(name="recorder")


def test_the_embedding_api_of_the_spec(make_pm, fake):
    pm = make_pm()
    pm.hook.on_member_join(event=MemberJoined(experience_id="exp_1", user_id="user_1"))
    pm.hook.on_message(message=MessageReceived(experience_id="exp_1", user_id="user_1",
                                               message_id="msg_1", text="1"))
    channel = fake.channel_for("user_1")
    assert [m["content"] for m in fake.sent_messages(channel)] == [
        "Welcome, friend! What brings you here?\n\n1. Trading & Investing\n2. Just exploring for now",
        "Here is the free guide: https://example.com/guide",
        "What's the best email to send it to?",
    ]


def test_builtins_are_plugins(make_pm):
    pm = make_pm()
    names = {name for name, _ in pm.list_name_plugin()}
    assert {"whopfunnel.funnel", "whopfunnel.escalation", "whopfunnel.owner"} <= names


def test_hook_on_member_join_starts_delivers_and_reaches_every_plugin(recorder, fake):
    pm, plugin = recorder
    results = join(pm)
    assert [r.status for r in results if r is not None] == ["started"]
    assert dms(fake) == [WELCOME]
    assert plugin.calls == [("join", "user_1")]
    join(pm)  # a redelivered join keeps the conversation and sends nothing new
    assert dms(fake) == [WELCOME]


def test_hook_on_message_advances_exactly_once(recorder, fake):
    pm, plugin = recorder
    join(pm)
    say(pm, "1", "msg_1")
    say(pm, "1", "msg_1")
    assert dms(fake)[1:] == ["Here is the free guide: https://example.com/guide",
                             "What's the best email to send it to?"]
    assert ("message", "1") in plugin.calls


def test_hook_on_invalid_response_replaces_message_or_step(make_pm, fake):
    pm = make_pm()

    class Override:
        @hookimpl
        def on_invalid_response(self, conversation, reply, attempt, step):
            if reply == "human":
                return Step("Getting you a person.", "handoff")
            return f"Attempt {attempt} on {conversation.block}: numbers please."

    pm.register(Override(), name="override")
    try:
        join(pm)
        say(pm, "what")
        assert dms(fake)[1:] == ["Attempt 1 on welcome: numbers please.", WELCOME]
        say(pm, "human")
        assert dms(fake)[-1] == "Getting you a person."
        conv = pm.runtime.store.tenant("exp_1").latest("user_1")
        assert (conv.status, conv.end_reason) == ("handed_off", "handoff")
    finally:
        pm.unregister(name="override")


def test_hook_on_timeout_fires_once_from_the_sweep(recorder, clock):
    pm, plugin = recorder
    join(pm)
    clock.advance(hours=25)
    assert pm.runtime.host.sweep().total == 1
    assert pm.runtime.host.sweep().total == 0
    conv_id = pm.runtime.store.tenant("exp_1").latest("user_1").id
    assert [c for c in plugin.calls if c[0] in ("timeout", "end")] == [
        ("timeout", conv_id), ("end", "timeout")]


def test_hook_on_conversation_end_reports_the_reason(recorder):
    pm, plugin = recorder
    join(pm)
    say(pm, "2")
    assert ("end", "completed") in plugin.calls


def test_hook_on_owner_notify_dms_the_owner_once(recorder, fake):
    pm, plugin = recorder
    join(pm)
    say(pm, "banana")
    say(pm, "cherry")
    owner = [m["content"] for m in fake.sent_messages(fake.channel_for("user_owner", "biz_1"))]
    assert len(owner) == 1
    assert owner[0].startswith("whopfunnel: member Ada (user_1) needs help in funnel 'onboarding' "
                               "at block 'welcome' (experience exp_1).")
    assert owner[0].endswith("Last replies:\n> banana\n> cherry")
    assert [n["title"] for n in fake.notifications] == ["Member needs help"]
    assert ("owner", "notify_owner", "welcome", ("banana", "cherry")) in plugin.calls
    say(pm, "durian")  # the abandon step: no second notification
    assert len(fake.sent_messages(fake.channel_for("user_owner", "biz_1"))) == 1


PLUGIN_MODULE = '''
from whopfunnel_plugin import InvalidReply, hookimpl

def order_no(text):
    if not text.strip().upper().startswith("ORD-"):
        raise InvalidReply("Order numbers start with ORD-, like ORD-77.")
    return text.strip().upper()

@hookimpl
def register_validators(register):
    register("order_no", order_no)

@hookimpl
def register_template_vars(conversation):
    return {"support_hours": "9-17 CET",
            "member_tag": conversation.user_id.upper() if conversation else ""}
'''

ORDER_FUNNEL = """\
id: orders
start: ask
blocks:
  ask:
    message: "Hi {member_tag}! Your order number? We answer {support_hours}."
    input: order_no
    save_as: order
    next: done
  done:
    type: end
    message: "Thanks, {order} noted."
"""


@pytest.fixture
def module_plugin(tmp_path, monkeypatch):
    name = f"wf_plugin_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / f"{name}.py").write_text(PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    (tmp_path / "funnels").mkdir(exist_ok=True)
    (tmp_path / "funnels" / "orders.yaml").write_text(ORDER_FUNNEL)
    return name


def test_hook_register_validators_feeds_input_blocks(make_pm, module_plugin, fake):
    pm = make_pm(f"plugins: [{module_plugin}]\n", funnels=(),
                 routes=["{default: true, funnel: orders}"])
    join(pm)
    say(pm, "12345")
    say(pm, " ord-77 ")
    assert dms(fake) == [
        "Hi USER_1! Your order number? We answer 9-17 CET.",
        "Order numbers start with ORD-, like ORD-77.",  # the validator's own words
        "Hi USER_1! Your order number? We answer 9-17 CET.",
        "Thanks, ORD-77 noted.",
    ]


def test_hook_register_template_vars_names_are_known_to_the_validator(make_pm, tmp_path):
    (tmp_path / "funnels").mkdir(exist_ok=True)
    (tmp_path / "funnels" / "orders.yaml").write_text(ORDER_FUNNEL)
    with pytest.raises(FunnelError) as info:
        make_pm(funnels=(), routes=["{default: true, funnel: orders}"])
    text = str(info.value)
    assert "undefined template variable {member_tag}" in text
    assert "unknown input validator 'order_no'" in text


def test_hook_on_delivery_failed_fires_once_and_the_message_is_kept(recorder, fake, clock):
    pm, plugin = recorder
    fake.fail_next(1000, status=503)
    join(pm)
    dispatcher = pm.runtime.dispatcher
    for _ in range(8):
        clock.advance(hours=2)
        dispatcher.run_once()
    failed = [c for c in plugin.calls if c[0] == "failed"]
    assert failed == [("failed", WELCOME, 5)]
    outbox = list(pm.runtime.store.tenant("exp_1").messages())
    assert [(m.status, m.attempts) for m in outbox] == [("failed", 9)]
    fake.clear_faults()
    clock.advance(hours=2)
    assert dispatcher.run_once().sent == 1
    assert dms(fake) == [WELCOME]


# -- error isolation ---------------------------------------------------------------------------


class Exploding:
    """Raises in every hook."""

    @hookimpl
    def on_member_join(self, event):
        raise RuntimeError("boom in on_member_join")

    @hookimpl
    def on_message(self, message):
        raise RuntimeError("boom in on_message")

    @hookimpl
    def on_invalid_response(self, conversation, reply, attempt, step):
        raise RuntimeError("boom in on_invalid_response")

    @hookimpl
    def on_timeout(self, conversation):
        raise RuntimeError("boom in on_timeout")

    @hookimpl
    def on_conversation_end(self, conversation):
        raise RuntimeError("boom in on_conversation_end")

    @hookimpl
    def on_owner_notify(self, conversation, reason, block, last_replies):
        raise RuntimeError("boom in on_owner_notify")

    @hookimpl
    def register_template_vars(self, conversation):
        raise RuntimeError("boom in register_template_vars")


def test_a_failing_plugin_never_stops_the_funnel_or_other_plugins(recorder, fake, clock, caplog):
    pm, plugin = recorder
    pm.register(Exploding(), name="exploding")
    try:
        with caplog.at_level(logging.ERROR, logger="whopfunnel.plugins"):
            join(pm)
            say(pm, "banana")
            say(pm, "cherry")
            say(pm, "1")
            join(pm, user="user_2")
            clock.advance(hours=25)
            pm.runtime.host.sweep()
    finally:
        pm.unregister(name="exploding")
    assert dms(fake)[:3] == [WELCOME, "Please choose from the provided options above.", WELCOME]
    assert dms(fake)[-1] == "What's the best email to send it to?"
    assert len(fake.sent_messages(fake.channel_for("user_owner", "biz_1"))) == 1
    conv = pm.runtime.store.tenant("exp_1").latest("user_1")
    assert (conv.block, conv.status, conv.end_reason) == ("email", "abandoned", "timeout")
    kinds = [c[0] for c in plugin.calls]
    assert kinds.count("join") == 2 and kinds.count("message") == 3
    assert "owner" in kinds and "timeout" in kinds and "end" in kinds
    for hook in ("on_member_join", "on_message", "on_invalid_response", "on_timeout",
                 "on_conversation_end", "on_owner_notify", "register_template_vars"):
        assert f"plugin 'exploding' failed in hook {hook}" in caplog.text
        assert pm.errors[("exploding", hook)] >= 1


def test_a_misspelled_hook_name_fails_loudly(make_pm, tmp_path, monkeypatch):
    name = f"wf_typo_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from whopfunnel_plugin import hookimpl\n\n@hookimpl\ndef on_mesage(message):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        make_pm(f"plugins: [{name}]\n")
    assert str(info.value) == (f"plugin '{name}' implements unknown hook 'on_mesage'; "
                               "did you mean 'on_message'?")


def test_a_plugin_module_that_cannot_be_imported(make_pm):
    with pytest.raises(ConfigError) as info:
        make_pm("plugins: [no_such_module_here]\n")
    assert str(info.value) == ("plugins: cannot import 'no_such_module_here': "
                               "ModuleNotFoundError: No module named 'no_such_module_here'")


def test_hook_tracing_goes_to_the_log(make_pm, caplog):
    pm = make_pm(environ={"WHOPFUNNEL_TRACE_HOOKS": "1"})
    with caplog.at_level(logging.DEBUG, logger="whopfunnel.plugins"):
        join(pm)
    assert "on_member_join" in caplog.text


def test_an_out_of_date_schema_refuses_to_start(tmp_path, db_url_factory):
    url = db_url_factory("sqlite")
    (tmp_path / "plugin.yaml").write_text(f"database: {url}\nfunnels: []\n")
    with pytest.raises(SchemaOutOfDate) as info:
        make_plugin_manager(tmp_path / "plugin.yaml", environ={}, entrypoints=False)
    assert "run `whopfunnel db upgrade`" in str(info.value)


# -- the example third-party package, installed through its entry point -------------------------


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """pip-install tests/example_plugin into a private target directory (not the venv)."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "example_plugin"
    shutil.copytree(ROOT / "tests" / "example_plugin", source)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return target


@pytest.fixture
def with_example(installed_example, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_example))
    import importlib

    importlib.invalidate_caches()
    yield installed_example
    sys.modules.pop("whopfunnel_example", None)


VAT_FUNNEL = """\
id: vat
start: vat
blocks:
  vat:
    message: "Your VAT id?"
    input: vat_id
    save_as: vat
    next: done
  done:
    type: end
    message: "Saved {vat}."
"""


def test_the_example_plugin_loads_through_its_entry_point(with_example, make_pm, fake, tmp_path):
    (tmp_path / "funnels").mkdir(exist_ok=True)
    (tmp_path / "funnels" / "vat.yaml").write_text(VAT_FUNNEL)
    pm = make_pm(entrypoints=True, funnels=(), routes=["{default: true, funnel: vat}"])
    assert pm.has_plugin("example")
    assert pm.versions["example"] == "whopfunnel-example 0.3.1"
    join(pm)
    say(pm, "not a vat")
    say(pm, "de 123 456 789")
    assert dms(fake) == ["Your VAT id?", "A VAT id looks like DE123456789. Could you check it?",
                         "Your VAT id?", "Saved DE123456789."]


def test_disabled_plugins_are_not_loaded(with_example, make_pm):
    pm = make_pm(entrypoints=True, environ={"WHOPFUNNEL_DISABLE_PLUGINS": "example"})
    assert not pm.has_plugin("example")


def test_whopfunnel_plugins_lists_builtins_and_the_example(with_example, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(with_example)}
    env.pop("WHOPFUNNEL_CONFIG", None)
    proc = subprocess.run([sys.executable, "-m", "whopfunnel_plugin", "plugins"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines()]
    assert ["example", "whopfunnel-example", "0.3.1", "on_invalid_response,",
            "register_validators"] in lines
    assert ["whopfunnel.funnel", "built-in", "on_member_join,", "on_message"] in lines
    assert ["whopfunnel.escalation", "built-in", "on_invalid_response"] in lines
    assert not (tmp_path / "whopfunnel.db").exists()


def test_delivery_before_the_call_returns_keeps_failures_in_the_outbox(make_pm, fake):
    pm = make_pm()
    fake.fail_next(3, status=500)  # the client's 2 retries are used up; the message waits
    join(pm)
    assert dms(fake) == []
    pending = list(pm.runtime.store.tenant("exp_1").pending_outbound())
    assert [m.text for m in pending] == [WELCOME]
    assert pending[0].last_error.startswith("POST /dm_channels failed: HTTP 500")


def test_validate_and_chat_know_plugin_validators_and_variables(module_plugin, tmp_path):
    from click.testing import CliRunner

    from whopfunnel_plugin.cli import cli

    (tmp_path / "plugin.yaml").write_text(f"plugins: [{module_plugin}]\nfunnels: []\n")
    orders = tmp_path / "funnels" / "orders.yaml"
    runner = CliRunner()
    without = runner.invoke(cli, ["validate", str(orders)])
    assert without.exit_code == 1
    assert "unknown input validator 'order_no'" in without.output
    result = runner.invoke(cli, ["--config", str(tmp_path / "plugin.yaml"), "validate", str(orders)])
    assert result.exit_code == 0, result.output
    chat = runner.invoke(cli, ["chat", str(orders), "--config", str(tmp_path / "plugin.yaml")],
                         input="ord-5\n")
    assert chat.exit_code == 0, chat.output
    assert "bot> Hi USER_LOCAL! Your order number? We answer 9-17 CET." in chat.output
    assert "bot> Thanks, ORD-5 noted." in chat.output


def test_the_owner_dm_waits_in_the_outbox_while_whop_is_down(recorder, fake, clock):
    pm, plugin = recorder
    join(pm)
    fake.fail_next(100_000, status=503)
    say(pm, "banana")
    say(pm, "cherry")  # notify_owner: the hook fires once, the DM is queued
    assert [c for c in plugin.calls if c[0] == "owner"] == [
        ("owner", "notify_owner", "welcome", ("banana", "cherry"))]
    owner_rows = [m for m in pm.runtime.store.tenant("exp_1").messages()
                  if m.recipient == "owner"]
    assert [(m.status, m.title) for m in owner_rows] == [("pending", "Member needs help")]
    fake.clear_faults()
    for _ in range(3):
        clock.advance(hours=1)
        pm.runtime.dispatcher.run_once()
    owner = [m["content"] for m in fake.sent_messages(fake.channel_for("user_owner", "biz_1"))]
    assert len(owner) == 1 and owner[0].endswith("> banana\n> cherry")
    assert [n["title"] for n in fake.notifications] == ["Member needs help"]
    assert len([c for c in plugin.calls if c[0] == "owner"]) == 1  # never re-run for a retry


def test_a_validator_that_raises_is_an_invalid_reply(make_pm, module_plugin, fake, tmp_path):
    pm = make_pm(f"plugins: [{module_plugin}]\n", funnels=(),
                 routes=["{default: true, funnel: orders}"])
    pm.runtime.host.validators["order_no"] = lambda text: (_ for _ in ()).throw(
        ConnectionError("the order system is down"))
    pm.runtime.host._engines.clear()
    join(pm)
    out = say(pm, "ORD-1")
    assert [o.status for o in out if o is not None] == ["advanced"]
    assert dms(fake)[-1] == "Hi USER_1! Your order number? We answer 9-17 CET."


def test_a_plugin_with_a_wrong_hook_argument_is_one_clear_error(make_pm, tmp_path, monkeypatch):
    name = f"wf_badarg_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from whopfunnel_plugin import hookimpl\n\n@hookimpl\ndef on_message(msg):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        make_pm(f"plugins: [{name}]\n")
    assert str(info.value).startswith(f"plugin '{name}' cannot be loaded: ")
    assert "msg" in str(info.value)


def test_whopfunnel_sweep_runs_the_plugins_hooks(module_plugin, tmp_path, clock, db_url_factory):
    from click.testing import CliRunner

    from whopfunnel_plugin.cli import cli
    from whopfunnel_plugin.storage import Store

    url = db_url_factory("sqlite")
    store = Store(url)
    store.upgrade()
    store.close()
    log = tmp_path / "timeouts.log"
    hook = tmp_path / "mods" / "wf_timeout_log.py"
    hook.write_text("from whopfunnel_plugin import hookimpl\n\n@hookimpl\n"
                    "def on_timeout(conversation):\n"
                    f"    open({str(log)!r}, 'a').write(conversation.user_id + '\\n')\n")
    (tmp_path / "plugin.yaml").write_text(
        f"database: {url}\nplugins: [{module_plugin}, wf_timeout_log]\nroutes:\n"
        "  - {default: true, experience: exp_1, funnel: orders}\n")
    with make_plugin_manager(tmp_path / "plugin.yaml", environ={}, clock=clock,
                             entrypoints=False, delivery="dispatcher") as pm:
        join(pm)
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "plugin.yaml"), "sweep", "--now",
                                      "2099-01-01T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "exp_1: ended 1 conversation" in result.output
    assert log.read_text() == "user_1\n"
