"""`whopfunnel stats` output: a text table, JSON, or CSV (one figure per row)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

WAITS = ("question", "input")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 59.95:
        return f"{round(seconds, 1):g}s"
    s = int(round(seconds))
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                     ("m", 60, "s", 1)):
        if s >= size:
            return f"{s // size}{unit}{(s % size) // subsize:02d}{sub}"
    return f"{s}s"


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _title(f) -> str:
    return (f"{f.experience_id} / {f.funnel_id} ({f.name}), version {f.version}, "
            f"first used {f.first_used}")


def table(report, filters: dict[str, str]) -> str:
    lines = [f"tenant: {filters['tenant']}; funnel: {filters['funnel']}; "
             f"conversations started from {filters['from']} to {filters['to']}"]
    if not report:
        return "\n".join(lines + ["no conversations yet"]) + "\n"
    for f in report:
        lines += ["", *_funnel(f)]
    return "\n".join(lines) + "\n"


def _funnel(f) -> list[str]:
    st = f.statuses
    lines = [_title(f),
             f"  {f.started} started: {st['active']} active, {st['completed']} completed, "
             f"{st['abandoned']} abandoned, {st['handed_off']} handed off, "
             f"{st['transitioned']} transitioned",
             "  abandoned by reason: " + ", ".join(f"{k} {v}" for k, v in f.abandoned_by_reason.items()),
             "  conversion from start: " + (", ".join(
                 f"{e.block} {e.count} ({percent(e.rate)})" for e in f.endings) or "no endings")]
    width = max([len(b.block) for b in f.blocks] + [5])
    head = ("block".ljust(width) + "  type     reached answered dropped waiting invalid "
            "ambiguous notified median    p90")
    lines += ["", "  " + head]
    for b in f.blocks:
        waits = b.type in WAITS

        def n(value, show=waits):
            return str(value) if show else "-"

        lines.append("  " + f"{b.block:<{width}}  {b.type:<8} {b.reached:>7} {n(b.answered):>8} "
                     f"{b.dropped:>7} {n(b.waiting):>7} {n(b.invalid):>7} {n(b.ambiguous):>9} "
                     f"{b.owner_notifications:>8} {duration(b.answer_median):>6} "
                     f"{duration(b.answer_p90):>6}")
    steps = [f"{b.block}: " + ", ".join(f"step {s.step} {s.action} {s.count}" for s in b.escalation)
             for b in f.blocks if b.escalation]
    lines += ["", "  escalation steps taken: " + ("; ".join(steps) or "none")]
    options = [(b, o) for b in f.blocks for o in b.options]
    if options:
        label = max(len(f"{o.number}. {o.text}") for _, o in options)
        lines += ["", "  " + "block".ljust(width) + "  " + "option".ljust(label)
                  + "  chosen number   text synonym ordinal   typo"]
        for b, o in options:
            by = o.by
            lines.append("  " + f"{b.block:<{width}}  {f'{o.number}. {o.text}':<{label}}  "
                         f"{o.chosen:>6} {by['number']:>6} {by['text']:>6} {by['synonym']:>7} "
                         f"{by['ordinal']:>7} {by['typo']:>6}")
    for split in f.splits:
        lines += ["", *_split(split)]
    return lines


def _split(split) -> list[str]:
    lines = [f"  split test at {split.block}:"]
    for br in split.branches:
        weight = "" if br.weight is None else f", weight {br.weight:g}"
        lines.append(f"    branch {br.index + 1} -> {br.next or '?'}: drawn {br.drawn} "
                     f"({percent(br.share.rate if br.share else None)} of draws{weight})")
        width = max(len(e) for e in split.columns)
        for ending in split.columns:
            r = br.outcomes[ending]
            interval = "" if r.low is None else f"  95% interval {percent(r.low)} to {percent(r.high)}"
            lines.append(f"      {ending:<{width}}  {r.count:>5}/{r.total:<5} {percent(r.rate):>6}"
                         + interval)
    lines += [f"    {v.text}" for v in split.verdicts] or ["    no endings to compare"]
    return lines


def as_json(report, filters: dict[str, str], scope) -> str:
    raw = {k: (v.isoformat().replace("+00:00", "Z") if hasattr(v, "isoformat") else v)
           for k, v in dataclasses.asdict(scope).items()}
    return json.dumps({"filters": {**filters, "scope": raw},
                       "funnels": [dataclasses.asdict(f) for f in report]},
                      indent=2, ensure_ascii=False) + "\n"


CSV_HEADER = ("experience_id", "funnel_id", "version", "section", "block", "item", "metric",
              "value")


def rows(f):
    """(section, block, item, metric, value) for every figure of one funnel version."""
    yield ("funnel", "", "", "started", f.started)
    for status, n in f.statuses.items():
        yield ("status", "", status, "conversations", n)
    for reason, n in f.abandoned_by_reason.items():
        yield ("abandoned", "", reason, "conversations", n)
    for e in f.endings:
        yield ("ending", e.block, e.type, "conversations", e.count)
        yield ("ending", e.block, e.type, "rate", e.rate)
    for b in f.blocks:
        for metric in ("reached", "answered", "dropped", "waiting", "invalid", "ambiguous",
                       "owner_notifications", "answer_median", "answer_p90"):
            yield ("block", b.block, b.type, metric, getattr(b, metric))
        for s in b.escalation:
            yield ("escalation", b.block, f"step {s.step} {s.action}", "invalid replies", s.count)
        for o in b.options:
            yield ("option", b.block, f"{o.number}. {o.text}", "chosen", o.chosen)
            for how, n in o.by.items():
                yield ("option", b.block, f"{o.number}. {o.text}", f"by {how}", n)
    for split in f.splits:
        for br in split.branches:
            item = f"branch {br.index + 1} -> {br.next or '?'}"
            yield ("split", split.block, item, "drawn", br.drawn)
            for ending, r in br.outcomes.items():
                for metric in ("count", "rate", "low", "high"):
                    yield ("split", split.block, item, f"{ending} {metric}", getattr(r, metric))
        for v in split.verdicts:
            yield ("split", split.block, v.ending, "verdict", v.text)


def as_csv(report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for f in report:
        for row in rows(f):
            writer.writerow((f.experience_id, f.funnel_id, f.version, *row[:4],
                             "" if row[4] is None else row[4]))
    return out.getvalue()
