"""Databases with known analytics figures, built through the public embedding API.

`onboarding_story` runs members through the example funnels with a FixedClock, so every
count and every time to answer is known; `split_story` runs a funnel whose first block
stands in for a `type: split` block and then records its draws the way the host will
(interaction rows with classification `split`), with SQL, as the engine cannot yet.
"""

from __future__ import annotations

import itertools
import json
import uuid

import pytest

from whopfunnel_plugin import MemberJoined, MembershipEnded, MessageReceived

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.server_db),
           pytest.param("mysql", marks=pytest.mark.server_db)]

AB_FUNNEL = """\
id: ab
name: Welcome test
start: pick
blocks:
  pick:
    message: "Which welcome?"
    options:
      - {text: Short, next: welcome_a}
      - {text: Long, next: welcome_b}
  welcome_a:
    message: "Welcome! Want the course?"
    options:
      - {text: "Yes please", next: buy, synonyms: ["yes"]}
      - {text: "No thanks", next: bye, synonyms: ["no"]}
  welcome_b:
    message: "Welcome, and here is what the course gives you... Want it?"
    options:
      - {text: "Yes please", next: buy, synonyms: ["yes"]}
      - {text: "No thanks", next: bye, synonyms: ["no"]}
  buy:
    type: end
    message: "Great, here is the link."
  bye:
    type: end
    message: "No problem!"
"""
AB_ROUTE = "{product: prod_ab, funnel: ab}"
ROUTES = ["{product: prod_q, funnel: qualification}", AB_ROUTE, "{default: true, funnel: onboarding}"]


@pytest.fixture(name="analytics_pm")
def analytics_pm_fixture(make_pm, tmp_path):
    """make(engine="sqlite"): a manager on a fresh database with the example funnels, the
    `ab` funnel and ROUTES (import this fixture into the test module to use it)."""

    def make(engine="sqlite"):
        (tmp_path / "funnels").mkdir(exist_ok=True)
        (tmp_path / "funnels" / "ab.yaml").write_text(AB_FUNNEL)
        return make_pm(engine=engine, routes=ROUTES)

    return make


class Members:
    """Joins and replies through the hooks, on the manager's FixedClock."""

    def __init__(self, pm, clock):
        self.pm, self.clock = pm, clock

    def join(self, user, exp="exp_1", **kw):
        kw.setdefault("company_id", "biz_1")  # the owner of biz_1 is notified (FakeWhop)
        self.pm.hook.on_member_join(event=MemberJoined(experience_id=exp, user_id=user, **kw))

    def say(self, user, after: float, text: str, exp="exp_1"):
        """`after` seconds later, the member replies `text`."""
        self.clock.advance(seconds=after)
        self.pm.hook.on_message(message=MessageReceived(
            experience_id=exp, user_id=user, message_id=f"m_{uuid.uuid4().hex}", text=text))


def onboarding_story(pm, clock) -> None:
    """exp_1 / onboarding: 7 conversations, every ending and reason; exp_2: 1 each on
    onboarding and qualification (one ambiguous reply). Figures in test_stats.py."""
    m = Members(pm, clock)
    m.join("u_done")                                # completed, with an invalid email first
    m.say("u_done", 10, "1")                        # welcome: number, 10 s
    m.say("u_done", 20, "nope")                     # email: invalid, step 1 reprompt
    m.say("u_done", 30, "ada@example.com")          # email: 30 s after the reprompt
    m.say("u_done", 40, "no thanks")                # offer: the option's text, 40 s
    clock.advance(minutes=1)
    m.join("u_esc")                                 # abandoned by the ladder on welcome
    m.say("u_esc", 5, "what?")                      # step 1 reprompt
    m.say("u_esc", 5, "huh")                        # step 2 notify_owner: the owner is told
    m.say("u_esc", 5, "no idea")                    # step 3 abandon
    clock.advance(minutes=1)
    m.join("u_hand")                                # handed off at the handoff block
    m.say("u_hand", 60, "trading")                  # welcome: a synonym, 60 s
    m.say("u_hand", 45, "bob@example.com")          # email: 45 s
    m.say("u_hand", 15, "yes")                      # offer: a synonym, 15 s -> handoff
    clock.advance(minutes=1)
    m.join("u_typo")
    m.say("u_typo", 8, "Tradng")                    # welcome: a typo, 8 s; waits on email
    clock.advance(minutes=1)
    m.join("u_ord")
    m.say("u_ord", 12, "the second one")            # welcome: an ordinal, 12 s -> goodbye
    clock.advance(minutes=1)
    m.join("u_left")                                # membership ended on welcome
    pm.runtime.host.end(MembershipEnded(experience_id="exp_1", user_id="u_left"))
    m.join("u_late")
    m.say("u_late", 20, "1")                        # welcome: number, 20 s; then times out
    clock.advance(hours=25)
    assert pm.runtime.host.sweep().total == 2       # u_late, and u_typo (still on email)
    m.join("u_typo2")                               # after the sweep: active on welcome
    m.join("o_1", "exp_2")
    m.say("o_1", 3, "2", exp="exp_2")               # exp_2 onboarding: completed at once
    m.join("q_1", "exp_2", product_id="prod_q")
    m.say("q_1", 5, "1 or 3", exp="exp_2")          # ambiguous
    m.say("q_1", 7, "beginner", exp="exp_2")        # a synonym, 7 s after the question again


def split_story(pm, clock, draws: dict[int, tuple[int, int, int]]) -> None:
    """For each branch index k: draws[k] = (buy, bye, still active) conversations on the
    `ab` funnel in exp_ab. Then its `pick` block becomes a 50/50 split in the stored
    definition, and the replies on it become the host's split draws."""
    m = Members(pm, clock)
    n = itertools.count()
    for branch, (buy, bye, active) in draws.items():
        for answer in ["yes"] * buy + ["no"] * bye + [None] * active:
            user = f"s_{next(n)}"
            m.join(user, "exp_ab", product_id="prod_ab")
            m.say(user, 2, str(branch + 1), exp="exp_ab")
            if answer:
                m.say(user, 3, answer, exp="exp_ab")
    store = pm.runtime.store
    db, p = store.db, store.db.param
    (definition,) = db.execute_sql(f"SELECT definition FROM funnels WHERE funnel_id = {p}",
                                   ("ab",)).fetchone()
    funnel = json.loads(definition)
    funnel["blocks"]["pick"] = {
        "type": "split", "message": "", "next": None, "input": None, "save_as": None, "url": None,
        "escalation": None, "options": [],
        "branches": [{"weight": 50, "next": "welcome_a"}, {"weight": 50, "next": "welcome_b"}]}
    with store.db.atomic():
        db.execute_sql(f"UPDATE funnels SET definition = {p} WHERE funnel_id = {p}",
                       (json.dumps(funnel), "ab"))
        db.execute_sql("UPDATE interactions SET classification = 'split', how = ''"
                       f" WHERE block = {p} AND experience_id = {p}", ("pick", "exp_ab"))
