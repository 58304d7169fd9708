"""Make the README's report example: docs/report-example.html and its screenshots.

    python docs/example_report.py            # needs Debian's chromium for the screenshots

A seeded population of members runs through `funnels/onboarding.yaml` and a two-welcome
test funnel, through the public embedding API (`make_plugin_manager`, the hooks, a
FixedClock, the built-in fake Whop API), on a temporary SQLite database. The test
funnel's first block stands in for a `type: split` block: its draws are then recorded
with SQL the way the host records a split (interaction rows with classification
`split`), since the engine side of split blocks is being built separately. Then
`whopfunnel report` writes the page and headless Chromium photographs it.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from whopfunnel_plugin import MemberJoined, MessageReceived, make_plugin_manager  # noqa: E402
from whopfunnel_plugin.cli import cli  # noqa: E402
from whopfunnel_plugin.clock import FixedClock  # noqa: E402
from whopfunnel_plugin.storage.store import Store  # noqa: E402
from whopfunnel_plugin.whop.client import WhopClient  # noqa: E402
from whopfunnel_plugin.whop.fake import FakeWhop  # noqa: E402

AB = """\
id: welcome-test
name: Welcome test
start: pick
blocks:
  pick:
    message: "(stands in for a split block)"
    options: [{text: Short, next: short_welcome}, {text: Long, next: long_welcome}]
  short_welcome:
    message: "Welcome! Want the free course?"
    options: [{text: "Yes please", next: course, synonyms: ["yes"]},
              {text: "No thanks", next: bye, synonyms: ["no"]}]
  long_welcome:
    message: "Welcome! Members who take the course trade twice as calmly. Want it?"
    options: [{text: "Yes please", next: course, synonyms: ["yes"]},
              {text: "No thanks", next: bye, synonyms: ["no"]}]
  course: {type: end, message: "Here it is."}
  bye: {type: end, message: "No problem!"}
"""
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--hide-scrollbars"]


def population(pm, clock, rng: random.Random, members: int) -> None:
    n = 0

    def say(user, text, wait):
        nonlocal n
        n += 1
        clock.advance(seconds=wait)
        pm.hook.on_message(message=MessageReceived(experience_id="exp_demo", user_id=user,
                                                   message_id=f"demo_{n}", text=text))

    def delay():
        return rng.choice([4, 6, 9, 12, 15, 20, 30, 45, 60, 90, 180, 600])

    for i in range(members):
        user = f"member_{i}"
        clock.advance(seconds=rng.randint(30, 600))
        pm.hook.on_member_join(event=MemberJoined(experience_id="exp_demo", user_id=user,
                                                  company_id="biz_demo", user_name=f"M{i}"))
        roll = rng.random()
        if roll < 0.10:
            continue  # never answers: times out
        if roll < 0.16:
            for text in ("hello?", "what is this", "stop"):
                say(user, text, delay())  # the ladder: reprompt, notify the owner, abandon
            continue
        if roll < 0.22:
            say(user, "hmm", delay())
        trading = rng.random() < 0.65
        forms = (["1"] * 5 + ["trading"] * 2 + ["Trading & Investing", "tradng", "the first one"]
                 if trading else ["2"] * 4 + ["exploring", "just looking", "second"])
        say(user, rng.choice(forms), delay())
        if not trading:
            continue
        if rng.random() < 0.18:
            continue  # gets the guide, never gives an email
        if rng.random() < 0.12:
            say(user, "not telling", delay())
        say(user, f"{user}@example.com", delay())
        if rng.random() < 0.08:
            continue
        say(user, rng.choice(["1", "yes", "sure", "Yes, book me"] if rng.random() < 0.4
                             else ["2", "no", "No thanks", "nope"]), delay())


def split_population(pm, clock, rng: random.Random, per_branch: dict[int, float]) -> None:
    for i in range(120):
        branch = i % 2
        user = f"tester_{i}"
        clock.advance(seconds=rng.randint(30, 300))
        pm.hook.on_member_join(event=MemberJoined(experience_id="exp_demo", user_id=user,
                                                  product_id="prod_test", company_id="biz_demo"))
        for j, text in enumerate([str(branch + 1), "yes" if rng.random() < per_branch[branch]
                                  else "no"]):
            clock.advance(seconds=rng.randint(5, 120))
            pm.hook.on_message(message=MessageReceived(
                experience_id="exp_demo", user_id=user, message_id=f"t_{i}_{j}", text=text))
    store = pm.runtime.store
    p = store.db.param
    (text,) = store.db.execute_sql(f"SELECT definition FROM funnels WHERE funnel_id = {p}",
                                   ("welcome-test",)).fetchone()
    definition = json.loads(text)
    definition["blocks"]["pick"].update(type="split", options=[], message="", branches=[
        {"weight": 50, "next": "short_welcome"}, {"weight": 50, "next": "long_welcome"}])
    with store.db.atomic():
        store.db.execute_sql(f"UPDATE funnels SET definition = {p} WHERE funnel_id = {p}",
                             (json.dumps(definition), "welcome-test"))
        store.db.execute_sql("UPDATE interactions SET classification = 'split', how = ''"
                             f" WHERE block = {p}", ("pick",))


def screenshot(chromium: str, page: Path, png: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                        f"--screenshot={png}", f"--window-size={width},{height}",
                        page.as_uri()], check=True, capture_output=True, timeout=120)
    print(f"wrote {png.relative_to(ROOT)} ({width}x{height})")


def main() -> None:
    out = ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "funnels").mkdir()
        shutil.copy(ROOT / "funnels" / "onboarding.yaml", tmp / "funnels")
        (tmp / "funnels" / "welcome-test.yaml").write_text(AB)
        url = f"sqlite:///{tmp / 'demo.db'}"
        (tmp / "plugin.yaml").write_text(
            f"database: {url}\nfunnels: funnels/\nroutes:\n"
            "  - {product: prod_test, funnel: welcome-test}\n  - {default: true, funnel: onboarding}\n")
        store = Store(url)
        store.upgrade()
        store.close()
        clock = FixedClock(datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc))
        fake = FakeWhop(owners={"biz_demo": "user_owner"}, clock=clock)
        client = WhopClient(fake.api_key, base_url="http://whop.test/api/v1",
                            transport=httpx.WSGITransport(app=fake), sleep=lambda s: None)
        pm = make_plugin_manager(tmp / "plugin.yaml", environ={}, clock=clock, client=client,
                                 entrypoints=False)
        rng = random.Random(13)
        population(pm, clock, rng, 240)
        split_population(pm, clock, rng, {0: 0.3, 1: 0.6})
        clock.advance(hours=30)
        pm.runtime.host.sweep()
        pm.runtime.close()
        page = out / "report-example.html"
        cli.main(["report", "--db", url, "--experience", "exp_demo", "--since", "2026-03-01",
                  "--until", "2026-03-31", "--out", str(page)], standalone_mode=False)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium is not installed (Debian: apt-get install -y chromium)")
    screenshot(chromium, page, out / "report-phone.png", 390, 1500)
    screenshot(chromium, page, out / "report-desktop.png", 900, 3900)


if __name__ == "__main__":
    main()
