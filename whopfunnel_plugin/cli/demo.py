"""`whopfunnel serve --demo`: the whole service, offline, against the built-in fake Whop API.

Everything is real but Whop: the webhook server on loopback, signed webhooks over
HTTP, the SQLite database, the outbox, the Whop client talking HTTP to the fake. A
scripted member joins, stumbles twice (the owner gets told), then finishes the funnel.

Events print in true order: after each webhook the demo waits until the service has
nothing left to do for it (no unsent message, no hook call owed: the owner's DM is
queued by a hook after the member's reply is sent), so every DM shows under the member
line that caused it. Each reply is labelled with what it was, from the interaction the
service stored: valid, invalid with the escalation step taken, ambiguous.
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
                self.say(f"  {' ' * (len(to) + 9)}{line}".rstrip())
            shown += 1
        for note in self.fake.notifications[self.notifications:]:
            self.say(f"  Whop notification -> owner: {note['title']}: {note['content']}")
            self.notifications += 1
        return shown

    def wait(self, store, timeout: float = 10.0) -> int:
        """Wait until the service is idle (nothing unsent, no hook call owed), then show
        what the fake received meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not _idle(store):
            time.sleep(0.02)
        return self.show_new()


def _idle(store) -> bool:
    backlog = store.outbox.backlog(store_now())
    return backlog["pending"] == 0 and backlog["failed"] == 0 and store.effects.pending() == 0


def store_now():
    return SystemClock().now()


def label(store, experience_id: str) -> str:
    """What the member's last reply was taken as, from its stored interaction."""
    conv = store.tenant(experience_id).latest(MEMBER)
    seen = store.tenant(experience_id).interactions(conv.id)[-1:] if conv else []
    if not seen:
        return ""
    i = seen[0]
    if i.classification == "invalid":
        return f"; reply invalid (attempt {i.attempt}): {i.action}"
    if i.classification == "valid" and i.option_index is not None:
        return f"; reply valid: option {i.option_index + 1}"
    return f"; reply {i.classification}"


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
                store = pm.runtime.store

                def deliver(envelope: dict, what: str) -> None:
                    body = json.dumps(envelope).encode()
                    headers = fake.sign(body, secret, envelope["id"], int(clock.now().timestamp()))
                    answer = web.post("/webhooks/whop", content=body, headers=headers)
                    reply = label(store, "exp_demo") if envelope["type"].startswith("chat.") else ""
                    say(f"{what}  [webhook {envelope['type']}: HTTP {answer.status_code} "
                        f"{answer.json().get('status')}{reply}]")

                # Today's membership webhook names no user, so the funnel greets a "friend".
                deliver(fake.membership_activated(MEMBER, "prod_demo", "biz_demo"),
                        "Ada joins the product")
                transcript.wait(store)
                for text in SCRIPT:
                    deliver(fake.member_says(MEMBER, text, company_id="biz_demo", username="ada"),
                            f"Ada: {text}")
                    transcript.wait(store)
            conv = pm.runtime.store.tenant("exp_demo").latest(MEMBER)
            say(f"conversation {conv.id}: {conv.status} ({conv.end_reason}); captured "
                f"{conv.variables}")
            ok = conv.status != "active"
        finally:
            service.stop()
            thread.join(15)
            stop_fake()
    return 0 if ok else 1
