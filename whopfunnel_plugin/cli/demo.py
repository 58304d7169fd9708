"""`whopfunnel serve --demo`: the whole service, offline, against the built-in fake Whop API.

Everything is real but Whop: the webhook server on loopback, signed webhooks over
HTTP, the SQLite database, the outbox, the Whop client talking HTTP to the fake. A
scripted member joins, stumbles twice (the owner gets told), then finishes the funnel.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import threading
import time
from pathlib import Path

import httpx

from ..clock import SystemClock
from ..config import Config, Route
from ..plugins import make_plugin_manager
from ..service.server import build_service
from ..storage import Store
from ..whop.fake import FakeWhop, serve_in_thread

MEMBER = "user_ada"
SCRIPT = ("I'm not sure yet", "what?", "1", "ada@example.com", "no thanks")


def demo_funnel() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        path = base / "funnels" / "onboarding.yaml"
        if path.is_file():
            return path
    raise FileNotFoundError("funnels/onboarding.yaml not found; run the demo from the project")


class Transcript:
    """Prints what the fake Whop API received, in order, as it arrives."""

    def __init__(self, fake: FakeWhop, say):
        self.fake = fake
        self.say = say
        self.seen: set[str] = set()
        self.notifications = 0

    def show_new(self) -> int:
        shown = 0
        for message in self.fake.sent_messages():
            if message["id"] in self.seen:
                continue
            self.seen.add(message["id"])
            to = "owner" if message["channel_id"] == self.fake.channel_for("user_owner") else "Ada"
            lines = message["content"].splitlines() or [""]
            self.say(f"  bot -> {to}: {lines[0]}")
            for line in lines[1:]:
                self.say(f"  {' ' * (len(to) + 9)}{line}")
            shown += 1
        for note in self.fake.notifications[self.notifications:]:
            self.say(f"  Whop notification -> owner: {note['title']}: {note['content']}")
            self.notifications += 1
        return shown

    def wait(self, timeout: float = 10.0, settle: float = 0.4) -> int:
        """Show new messages until none arrive for `settle` seconds (or the timeout)."""
        deadline = time.monotonic() + timeout
        shown, quiet_since = 0, None
        while time.monotonic() < deadline:
            new = self.show_new()
            shown += new
            if new or not shown:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                break
            time.sleep(0.05)
        return shown


def run_demo(say) -> int:
    clock = SystemClock()
    secret, api_key = f"ws_demo_{secrets.token_hex(16)}", f"demo_{secrets.token_hex(12)}"
    fake = FakeWhop(api_key, owners={"biz_demo": {"id": "user_owner", "username": "olivia",
                                                  "name": "Olivia Owner"}})
    fake_url, stop_fake = serve_in_thread(fake)
    with tempfile.TemporaryDirectory(prefix="whopfunnel-demo-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.db'}"
        store = Store(url)
        store.upgrade()
        store.close()
        config = Config(database=url, funnels=(str(demo_funnel()),), base_url=f"{fake_url}/api/v1",
                        routes=(Route(funnel="onboarding", product="prod_demo",
                                      experience="exp_demo"),), poll_every=0)
        environ = {"WHOP_API_KEY": api_key, "WHOP_WEBHOOK_SECRET": secret,
                   "WHOP_BOT_USER_ID": fake.bot_user["id"]}
        pm = make_plugin_manager(config, environ=environ, entrypoints=False, delivery="dispatcher")
        service = build_service(pm, host="127.0.0.1", port=0)
        thread = threading.Thread(target=service.run, name="whopfunnel-serve", daemon=True)
        thread.start()
        say(f"whopfunnel demo: webhook server on {service.url}, fake Whop API on {fake_url}, "
            "SQLite in a temporary folder")
        transcript = Transcript(fake, say)
        try:
            with httpx.Client(base_url=service.url, timeout=10) as web:
                def deliver(envelope: dict, what: str) -> None:
                    body = json.dumps(envelope).encode()
                    headers = fake.sign(body, secret, envelope["id"], int(clock.now().timestamp()))
                    answer = web.post("/webhooks/whop", content=body, headers=headers)
                    say(f"{what}  [webhook {envelope['type']}: HTTP {answer.status_code} "
                        f"{answer.json().get('status')}]")

                # Today's membership webhook names no user, so the funnel greets a "friend".
                deliver(fake.membership_activated(MEMBER, "prod_demo", "biz_demo"),
                        "Ada joins the product")
                transcript.wait()
                for text in SCRIPT:
                    deliver(fake.member_says(MEMBER, text, company_id="biz_demo", username="ada"),
                            f"Ada: {text}")
                    transcript.wait()
            conv = pm.runtime.store.tenant("exp_demo").latest(MEMBER)
            say(f"conversation {conv.id}: {conv.status} ({conv.end_reason}); captured "
                f"{conv.variables}")
            ok = conv.status != "active"
        finally:
            service.stop()
            thread.join(15)
            stop_fake()
    return 0 if ok else 1
