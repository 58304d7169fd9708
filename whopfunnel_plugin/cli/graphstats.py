"""Traffic for `whopfunnel graph --stats`: visits and interactions read from a database.

Read-only: two grouped queries (`storage.stats.block_traffic`). A SQLite file that does
not exist is an error, never a new empty database.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..funnel.model import Funnel
from ..funnel.traffic import Traffic


def traffic_from_db(url: str, funnel: Funnel, experience_id: str | None = None) -> Traffic:
    from ..storage.stats import block_traffic
    from ..storage.store import Store, redact_url

    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise ConfigError(f"no database at {redact_url(url)} (graph --stats only reads)")
    store = Store(url)
    try:
        store.check_schema()
        visits, replies = block_traffic(store, funnel.id, experience_id)
    finally:
        store.close()
    return traffic_from_rows(funnel, visits, replies)


def traffic_from_rows(funnel: Funnel, visits, replies) -> Traffic:
    traffic = Traffic()
    for block, n in visits:
        traffic.blocks[block] += int(n)
        if block in funnel.blocks and funnel.blocks[block].type == "message":
            traffic.exits[(block, "next", 0)] += int(n)
    for block, classification, option, attempt, n in replies:
        b = funnel.blocks.get(block)
        if b is None:
            continue
        if classification == "split" and option is not None:  # a draw, as the host records it
            traffic.exits[(block, "branch", int(option))] += int(n)
        elif classification == "valid" and b.type == "question" and option is not None:
            traffic.exits[(block, "option", int(option))] += int(n)
        elif classification == "valid" and b.type == "input":
            traffic.exits[(block, "input", 0)] += int(n)
        elif classification == "invalid" and attempt:
            ladder = funnel.ladder(block)
            index = min(int(attempt), len(ladder)) - 1
            traffic.steps[(block, index)] += int(n)
            if ladder[index].goto:
                traffic.exits[(block, "goto", index)] += int(n)
    return traffic
