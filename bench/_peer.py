"""The peer: python-telegram-bot 22.x, a `ConversationHandler` with `conversation_timeout`,
all in memory, driving the same funnel shape as the bench funnel (see `_workload.py`).

No network: the Application gets a `BaseRequest` that answers every Bot API call locally
(`getMe` at initialize, `sendMessage` for each reply) with a canned JSON result, so PTB
still builds each request and parses each answer, as it would against Telegram.
Updates are synthetic `Update` objects fed to `Application.process_update`. The
JobQueue runs (APScheduler), so every update moves its conversation's timeout job, as
`conversation_timeout` does in production.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime, timezone

from _workload import Driver, shard

NUMBER = re.compile(r"\s*[0-9]{1,3}\s*\Z")
Q1, Q2, YEARS = range(3)
PROMPTS = {Q1: "Which topic interests you?\n\n1. Trading\n2. Crypto\n3. I'm done",
           Q2: "And how experienced are you?\n\n1. Beginner\n2. Advanced\n3. I'm done",
           YEARS: "How many years have you been at it? (a number)"}
LADDER = ("Please choose one of the options above.", "Please reply with the number of an option.",
          "Still not one of the options; try the number.")
OPTIONS = {Q1: ("trading", "crypto", "i'm done"), Q2: ("beginner", "advanced", "i'm done")}
WORDS = {"first": 0, "second": 1, "third": 2, "the first one": 0, "the second one": 1}


def choose(state: int, text: str) -> int | None:
    """The option a reply picks: its number, its label, or an ordinal (what a hand-written bot does)."""
    t = text.strip().lower().rstrip(".!")
    labels = OPTIONS[state]
    if t.isdigit() and 1 <= int(t) <= len(labels):
        return int(t) - 1
    if t in labels:
        return labels.index(t)
    return WORDS.get(t)


class LocalRequest:
    """Built lazily (telegram is imported only in the peer's own process)."""

    @staticmethod
    def make():
        from telegram.request import BaseRequest

        me = json.dumps({"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Bench",
                                                "username": "bench_bot"}}).encode()

        class _Local(BaseRequest):
            def __init__(self):
                self.calls = 0

            @property
            def read_timeout(self):
                return 5.0

            async def initialize(self):
                pass

            async def shutdown(self):
                pass

            async def do_request(self, url, method, request_data=None, read_timeout=None,
                                 write_timeout=None, connect_timeout=None, pool_timeout=None):
                self.calls += 1
                if url.endswith("/getMe"):
                    return 200, me
                params = request_data.parameters if request_data is not None else {}
                chat = int(params.get("chat_id", 0))
                body = {"ok": True, "result": {
                    "message_id": self.calls, "date": int(time.time()), "text": params.get("text", ""),
                    "chat": {"id": chat, "type": "private"},
                    "from": {"id": 1, "is_bot": True, "first_name": "Bench"}}}
                return 200, json.dumps(body).encode()

        return _Local()


class PeerBot:
    """One Application with its ConversationHandler, and the members it has started."""

    def __init__(self, members, seed: int, tasks: int = 1, send: bool = True):
        from telegram.ext import (
            Application,
            CommandHandler,
            ConversationHandler,
            MessageHandler,
            filters,
        )

        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.app = (Application.builder().token("1:bench").request(LocalRequest.make())
                    .get_updates_request(LocalRequest.make()).updater(None).build())
        text = filters.TEXT & ~filters.COMMAND
        self.END = ConversationHandler.END
        self.handler = ConversationHandler(
            entry_points=[CommandHandler("start", self.start)],
            states={Q1: [MessageHandler(text, self.question(Q1, Q2))],
                    Q2: [MessageHandler(text, self.question(Q2, YEARS))],
                    YEARS: [MessageHandler(text, self.years)]},
            fallbacks=[], conversation_timeout=24 * 3600)
        self.app.add_handler(self.handler)
        self.loop.run_until_complete(self.app.initialize())
        self.loop.run_until_complete(self.app.start())  # the JobQueue must run for timeouts
        self.members = list(members)
        self.seed = seed
        self.tasks = tasks
        self.send = send
        self.seq = 0
        self.loop.run_until_complete(self._start_all())

    # -- the bot's own code ---------------------------------------------------------------

    async def say(self, update, text: str) -> None:
        if self.send:  # False: the state machine alone, for the record
            await update.message.reply_text(text)

    async def start(self, update, context):
        context.user_data["invalid"] = 0
        await self.say(update, f"Hi {update.effective_user.first_name}! " + PROMPTS[Q1])
        return Q1

    def question(self, state: int, following: int):
        async def callback(update, context):
            picked = choose(state, update.message.text)
            if picked is None:
                return await self.invalid(update, context, state)
            context.user_data["invalid"] = 0
            if picked == 2:  # "I'm done" (the workload never picks it)
                await self.say(update, "Bye!")
                return self.END
            await self.say(update, PROMPTS[following])
            return following
        return callback

    async def years(self, update, context):
        if not NUMBER.match(update.message.text):
            return await self.invalid(update, context, YEARS)
        context.user_data["years"] = int(update.message.text)
        context.user_data["invalid"] = 0
        await self.say(update, PROMPTS[Q1])
        return Q1

    async def invalid(self, update, context, state: int):
        count = context.user_data.get("invalid", 0) + 1
        if count > len(LADDER):  # the last step: start again from the first question
            context.user_data["invalid"] = 0
            for text in ("Let's start again.", "From the top.", PROMPTS[Q1]):
                await self.say(update, text)
            return Q1
        context.user_data["invalid"] = count
        await self.say(update, LADDER[count - 1])
        await self.say(update, PROMPTS[state])
        return state

    # -- driving it ---------------------------------------------------------------------------

    def _update(self, user: int, text: str):
        from telegram import Chat, Message, MessageEntity, Update, User

        self.seq += 1
        uid = 1000 + user
        entities = ([MessageEntity(MessageEntity.BOT_COMMAND, 0, len(text))]
                    if text.startswith("/") else None)
        message = Message(message_id=self.seq, date=datetime.now(timezone.utc),
                          chat=Chat(id=uid, type="private"), entities=entities,
                          from_user=User(id=uid, first_name=f"Member{user}", is_bot=False), text=text)
        message.set_bot(self.app.bot)
        return Update(update_id=self.seq, message=message)

    async def _start_all(self):
        for user in self.members:
            await self.app.process_update(self._update(user, "/start"))

    async def _feed(self, driver: Driver, deadline: float) -> int:
        n = 0
        while time.perf_counter() < deadline:
            user, text = driver.next()
            await self.app.process_update(self._update(user, text))
            n += 1
        return n

    def run(self, seconds: float, start_at: float | None = None, tasks: int | None = None) -> dict:
        """Replies to random members for `seconds`, from `tasks` concurrent asyncio tasks
        (each on its own share of the members, so no member has two replies in flight)."""
        tasks = tasks or self.tasks
        if start_at is not None:
            time.sleep(max(0.0, start_at - time.time()))
        self.seed += 1
        drivers = [Driver(shard(self.members, k, tasks), self.seed * 100 + k) for k in range(tasks)]
        cpu = time.process_time()
        start = time.perf_counter()

        async def together():
            return await asyncio.gather(*(self._feed(d, start + seconds) for d in drivers))

        counts = self.loop.run_until_complete(together())
        took = time.perf_counter() - start
        return {"n": sum(counts), "seconds": took, "cpu": time.process_time() - cpu,
                "valid": sum(d.valid for d in drivers)}

    def check(self) -> dict:
        """Every member has a live conversation and a timeout job (PTB's own bookkeeping)."""
        return {"conversations": len(self.handler._conversations),
                "timeout_jobs": len(self.handler.timeout_jobs)}

    def close(self) -> None:
        self.loop.run_until_complete(self.app.stop())
        self.loop.run_until_complete(self.app.shutdown())
        self.loop.close()
