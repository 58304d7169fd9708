"""Hot reload end to end: a real `whopfunnel serve`, the funnel file edited while members are
mid-conversation. New joins get the new text; the conversations in flight finish on the old."""

from __future__ import annotations

import re
import signal

import pytest

from .serving import Served, wait_for

OLD_WELCOME = "Welcome, {name}! What brings you here?\n\n1. Trading & Investing\n2. Just exploring for now"
NEW_WELCOME = "Welcome, {name}! What are you here for?\n\n1. Trading & Investing\n2. Just exploring for now"
OLD_OFFER = ("Thanks! We'll send extra material to {email}. Want a 1:1 strategy session?\n\n"
             "1. Yes, book me\n2. No thanks")
NEW_OFFER = OLD_OFFER.replace("Thanks! We'll send", "Great! We'll send")


@pytest.fixture
def served(tmp_path):
    s = Served(tmp_path)
    yield s
    s.close()


def edit(s: Served, old: str, new: str) -> None:
    text = s.funnel.read_text()
    assert old in text
    s.funnel.write_text(text.replace(old, new))


def version(s: Served) -> str:
    return s.get("/readyz").json()["funnels"]["onboarding"]


def test_sighup_reloads_while_members_are_mid_conversation(served):
    s = served
    proc = s.start()
    v1 = version(s)
    s.join("user_ada", name="Ada")
    s.say("user_ada", "1")  # ada: guide sent, waiting at the email question
    wait_for(lambda: len(s.dms("user_ada")) == 3, what="ada's guide and email question")
    s.join("user_cy", name="Cy")  # cy: still at the welcome question

    edit(s, "What brings you here?", "What are you here for?")
    edit(s, "Thanks! We'll send", "Great! We'll send")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: version(s) != v1, what="the reload")
    v2 = version(s)

    s.join("user_bob", name="Bob")  # a new join: the new version
    wait_for(lambda: s.dms("user_bob"), what="bob's welcome")
    assert s.dms("user_bob") == [NEW_WELCOME.format(name="Bob")]
    s.say("user_bob", "1")
    s.say("user_bob", "bob@example.com")
    s.say("user_ada", "ada@example.com")  # in flight: the old version, to the end
    s.say("user_cy", "1")
    s.say("user_cy", "cy@example.com")
    wait_for(lambda: len(s.dms("user_bob")) == 4 and len(s.dms("user_ada")) == 4
             and len(s.dms("user_cy")) == 4, what="the offers")
    assert s.dms("user_bob")[-1] == NEW_OFFER.format(email="bob@example.com")
    assert s.dms("user_ada")[0] == OLD_WELCOME.format(name="Ada")
    assert s.dms("user_ada")[-1] == OLD_OFFER.format(email="ada@example.com")
    assert s.dms("user_cy")[0] == OLD_WELCOME.format(name="Cy")
    assert s.dms("user_cy")[-1] == OLD_OFFER.format(email="cy@example.com")
    s.say("user_ada", "no thanks")
    wait_for(lambda: s.dms("user_ada")[-1:] == ["Thanks for stopping by!"], what="ada's goodbye")

    # A broken edit: the last good funnels keep running, every problem logged with its place.
    text = s.funnel.read_text()
    s.funnel.write_text(text.replace("next: email", "next: emial").replace("start: welcome",
                                                                            "start: welcom"))
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "rejected" in s.log(), what="the rejected reload")
    assert version(s) == v2
    log = s.log()
    assert "funnel reload (SIGHUP) rejected: the previous funnels keep running" in log
    problems = re.findall(r"ERROR +whopfunnel.reload: (funnels/onboarding.yaml:\d+:\d+: .*)", log)
    assert len(problems) >= 2
    assert any("'emial'" in p for p in problems) and any("'welcom'" in p for p in problems)
    s.join("user_dee", name="Dee")
    wait_for(lambda: s.dms("user_dee"), what="dee's welcome")
    assert s.dms("user_dee") == [NEW_WELCOME.format(name="Dee")]
    assert s.stop(proc) == 0


def test_serve_reload_watches_the_funnel_files(served):
    s = served
    proc = s.start("--reload")
    v1 = version(s)
    s.join("user_ada", name="Ada")
    wait_for(lambda: s.dms("user_ada"), what="ada's welcome")
    edit(s, "What brings you here?", "What are you here for?")
    wait_for(lambda: version(s) != v1, what="the reload after the edit")
    s.join("user_bob", name="Bob")
    s.say("user_ada", "2")  # "Just exploring": the goodbye, on ada's version
    wait_for(lambda: s.dms("user_bob") and len(s.dms("user_ada")) == 2, what="the replies")
    assert s.dms("user_bob") == [NEW_WELCOME.format(name="Bob")]
    assert s.dms("user_ada") == [OLD_WELCOME.format(name="Ada"), "Thanks for stopping by!"]
    assert "funnels reloaded (funnel files changed): onboarding " in s.log()
    assert s.stop(proc) == 0
