"""Hot reload of funnels (service/reload.py): new joins take the new version, conversations
in flight keep theirs, a broken edit keeps the old funnels, several workers on one database."""

from __future__ import annotations

import logging
import os
import uuid
from types import SimpleNamespace

import pytest

from whopfunnel_plugin import MemberJoined, MessageReceived, make_plugin_manager
from whopfunnel_plugin.service.reload import FunnelWatcher, Reloader

from ..conftest import whop_client

OLD_WELCOME = "What brings you here?"
NEW_WELCOME = "What are you here for?"
OLD_OFFER = "Thanks! We'll send"
NEW_OFFER = "Great! We'll send"


def join(pm, user, exp="exp_1"):
    return pm.hook.on_member_join(event=MemberJoined(experience_id=exp, user_id=user,
                                                     company_id="biz_1", user_name=user.title()))


def say(pm, user, text, exp="exp_1"):
    return pm.hook.on_message(message=MessageReceived(
        experience_id=exp, user_id=user, message_id=f"m_{uuid.uuid4().hex}", text=text))


def dms(fake, user):
    return [m["content"] for m in fake.sent_messages(fake.channel_for(user, "biz_1"))]


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture
def pm(make_pm):
    return make_pm(funnels=("onboarding.yaml",), routes=["{default: true, funnel: onboarding}"])


def test_new_joins_take_the_new_version_and_conversations_in_flight_keep_theirs(pm, fake, tmp_path):
    funnel = tmp_path / "funnels" / "onboarding.yaml"
    reloader = Reloader(pm.runtime)
    before = pm.runtime.host.funnels["onboarding"].version
    join(pm, "user_ada")
    say(pm, "user_ada", "1")  # ada is at the email question
    edit(funnel, OLD_WELCOME, NEW_WELCOME)
    edit(funnel, OLD_OFFER, NEW_OFFER)
    assert reloader.reload() is True
    after = pm.runtime.host.funnels["onboarding"].version
    assert after != before

    join(pm, "user_bob")
    assert NEW_WELCOME in dms(fake, "user_bob")[0]
    say(pm, "user_ada", "ada@example.com")
    assert dms(fake, "user_ada")[-1].startswith(OLD_OFFER)  # ada finishes on the old version
    say(pm, "user_bob", "1")
    say(pm, "user_bob", "bob@example.com")
    assert dms(fake, "user_bob")[-1].startswith(NEW_OFFER)
    f = pm.runtime.store.models.funnel
    assert sorted(r.version for r in f.select()) == sorted([before, after])


def test_a_broken_edit_keeps_the_old_funnels_and_logs_each_problem(pm, fake, tmp_path, caplog):
    funnel = tmp_path / "funnels" / "onboarding.yaml"
    good = pm.runtime.host.funnels
    text = funnel.read_text()
    funnel.write_text(text.replace("next: email", "next: emial").replace("start: welcome",
                                                                            "start: welcom"))
    with caplog.at_level(logging.ERROR, logger="whopfunnel.reload"):
        assert Reloader(pm.runtime).reload() is False
    assert pm.runtime.host.funnels is good
    errors = [r.getMessage() for r in caplog.records if r.name == "whopfunnel.reload"]
    assert errors[0] == ("funnel reload (asked) rejected: the previous funnels keep running; "
                         f"{len(errors) - 1} problems:")
    assert len(errors) >= 3
    assert all(e.startswith(f"{funnel}:") and e.split(":")[1].isdigit() and e.split(":")[2].isdigit()
               for e in errors[1:])
    assert any("'emial'" in e for e in errors) and any("'welcom'" in e for e in errors)
    join(pm, "user_ada")
    assert OLD_WELCOME in dms(fake, "user_ada")[0]


def test_a_reload_that_would_leave_a_route_without_its_funnel_is_refused(pm, tmp_path, caplog):
    funnel = tmp_path / "funnels" / "onboarding.yaml"
    edit(funnel, "id: onboarding", "id: renamed")
    with caplog.at_level(logging.ERROR, logger="whopfunnel.reload"):
        assert Reloader(pm.runtime).reload() is False
    assert list(pm.runtime.host.funnels) == ["onboarding"]
    assert "route 1 names unknown funnel 'onboarding'" in caplog.text


def test_the_watcher_notices_changes_by_mtime_and_size(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.yaml").write_text("x")
    stats = {}

    def stat(path):
        real = os.stat(path)
        return SimpleNamespace(st_mtime_ns=stats.get(path.name, real.st_mtime_ns), st_size=real.st_size)

    watcher = FunnelWatcher(lambda: [folder], stat=stat)
    assert watcher.changed() is False
    stats["a.yaml"] = 1  # touched
    assert watcher.changed() is True and watcher.changed() is False
    (folder / "b.yml").write_text("y")  # a new file
    assert watcher.changed() is True
    (folder / "b.yml").unlink()
    assert watcher.changed() is True
    (folder / "notes.txt").write_text("z")  # not a funnel
    assert watcher.changed() is False


def test_run_once_reloads_on_request_or_when_watching_a_change(pm, tmp_path):
    funnel = tmp_path / "funnels" / "onboarding.yaml"
    changed = []
    watcher = SimpleNamespace(changed=lambda: bool(changed and changed.pop()))
    reloader = Reloader(pm.runtime, watcher=watcher)
    assert reloader.run_once() is None  # nothing asked, nothing changed
    reloader.request()  # what SIGHUP does
    assert reloader.run_once() is True
    assert reloader.run_once() is None
    edit(funnel, OLD_WELCOME, NEW_WELCOME)
    changed.append(True)
    assert reloader.run_once() is True
    assert NEW_WELCOME in pm.runtime.host.funnels["onboarding"].blocks["welcome"].message
    text = pm.runtime.activity.metrics.render().decode()
    assert 'whopfunnel_funnel_reloads_total{result="unchanged"} 1.0' in text
    assert 'whopfunnel_funnel_reloads_total{result="loaded"} 1.0' in text


@pytest.mark.server_db
@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_several_workers_on_one_database_reload_independently(make_pm, fake, clock, tmp_path, engine):
    first = make_pm(engine=engine, funnels=("onboarding.yaml",),
                    routes=["{default: true, funnel: onboarding}"])
    second = make_plugin_manager(tmp_path / "plugin.yaml", environ={}, clock=clock,
                                 client=whop_client(fake), entrypoints=False)
    try:
        join(first, "user_ada")
        edit(tmp_path / "funnels" / "onboarding.yaml", OLD_WELCOME, NEW_WELCOME)
        for pm in (first, second):
            assert Reloader(pm.runtime).reload() is True
        join(second, "user_bob")
        join(first, "user_cy")
        assert [NEW_WELCOME in dms(fake, u)[0] for u in ("user_ada", "user_bob", "user_cy")] == [
            False, True, True]
        say(second, "user_ada", "1")  # ada's conversation, on the other worker: still the old one
        assert dms(fake, "user_ada")[-1] == "What's the best email to send it to?"
        f = first.runtime.store.models.funnel
        assert f.select().count() == 2  # one snapshot per version, whichever worker made it
    finally:
        second.close()
