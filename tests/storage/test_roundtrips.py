"""Statements sent to the database per reply (each is one round trip): on PostgreSQL the
read and one data-modifying statement; on MariaDB a short transaction (README counts)."""

from __future__ import annotations

import logging
import uuid

import pytest

from whopfunnel_plugin import MemberJoined, MessageReceived


class Statements(logging.Handler):
    """Every statement Peewee sends (it logs each at DEBUG before executing it)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.sent: list[str] = []

    def emit(self, record):
        self.sent.append(str(record.msg[0]) if isinstance(record.msg, tuple) else record.getMessage())


def replies(pm, texts):
    log = logging.getLogger("peewee")
    counter = Statements()
    log.addHandler(counter)
    old = log.level
    log.setLevel(logging.DEBUG)
    try:
        counts = []
        for text in texts:
            before = len(counter.sent)
            out = pm.hook.on_message(message=MessageReceived(
                experience_id="exp_1", user_id="user_1", message_id=f"m_{uuid.uuid4().hex}",
                text=text))[0]
            assert out.status in ("advanced", "ended")
            counts.append(len(counter.sent) - before)
        return counts, counter.sent
    finally:
        log.setLevel(old)
        log.removeHandler(counter)


@pytest.mark.server_db
def test_a_reply_is_two_round_trips_on_postgres(make_pm):
    pm = make_pm(engine="postgres", delivery="dispatcher")
    pm.hook.on_member_join(event=MemberJoined(experience_id="exp_1", user_id="user_1",
                                              company_id="biz_1"))
    # an invalid reply, a valid one moving through a message block, an invalid email
    counts, sent = replies(pm, ["banana", "1", "not an email"])
    assert counts == [2, 2, 2], sent
    assert all(s.lstrip().upper().startswith(("SELECT", "WITH")) for s in sent)


@pytest.mark.server_db
def test_round_trips_per_reply_on_mariadb(make_pm):
    pm = make_pm(engine="mysql", delivery="dispatcher")
    pm.hook.on_member_join(event=MemberJoined(experience_id="exp_1", user_id="user_1",
                                              company_id="biz_1"))
    counts, _ = replies(pm, ["banana", "1"])
    # the read, the UPDATE, the interaction, (the visits), the outbox rows; BEGIN and COMMIT
    # go through the driver unlogged: 6 and 7 round trips
    assert counts == [4, 5]
