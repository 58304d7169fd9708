"""`whopfunnel report`'s page: one self-contained HTML file (inline CSS and SVG, no
scripts, nothing fetched) that reads on a phone."""

from __future__ import annotations

from html import escape

from . import svg
from .stats_format import WAITS, duration, percent

TERMINAL_CLASS = {"end": "completed", "handoff": "handed_off", "link": "transitioned"}
REASON_CLASS = {"completed": "completed", "handoff": "handed_off", "transitioned": "transitioned"}
REASONS = ("completed", "handoff", "transitioned", "max_invalid_responses", "timeout",
           "membership_ended", "manual")

CSS = """
:root{--ink:#1d2330;--muted:#5b6475;--line:#dfe3ea;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:var(--ink);background:var(--bg)}
header,main,footer{max-width:56rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem}
h1{font-size:1.4rem;margin:.2rem 0 .6rem}
h2{font-size:1.2rem;margin:0 0 .2rem}
h3{font-size:1rem;margin:1.4rem 0 .4rem}
.filters{display:grid;grid-template-columns:repeat(auto-fit,minmax(10rem,1fr));gap:.3rem 1rem;margin:0;
 background:#fff;border:1px solid var(--line);border-radius:8px;padding:.6rem .8rem}
.filters dt{font-size:.75rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.filters dd{margin:0;font-weight:600;overflow-wrap:anywhere}
section.funnel{background:#fff;border:1px solid var(--line);border-radius:8px;margin:1rem 0;padding:1rem}
.sub{color:var(--muted);font-size:.85rem;margin:0;overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(5.5rem,1fr));gap:.5rem;margin:.8rem 0}
.card{border:1px solid var(--line);border-radius:6px;padding:.4rem .6rem}
.card b{display:block;font-size:1.3rem}
.card span{font-size:.8rem;color:var(--muted)}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.85rem;min-width:100%}
th,td{padding:.3rem .45rem;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child,th.l,td.l{text-align:left}
th{font-weight:600;color:var(--muted)}
.escalation td:nth-child(4){text-align:left}
.escalation th{white-space:normal;vertical-align:bottom}
.verdict{margin:.4rem 0;padding:.4rem .6rem;border-left:4px solid #f0a500;background:#fff8e6}
.verdict.sig{border-color:#2e7d32;background:#edf7ee}
.empty{color:var(--muted)}
svg.chart{display:block;max-width:40rem;height:auto}
svg text{font-size:13px;fill:var(--ink)}
svg text.value,svg text.tick{fill:var(--muted);font-size:12px}
svg text.note{fill:var(--muted);font-size:11.5px}
svg .flow{fill:#e7eaf6}
svg .bar{fill:#5c6bc0}
svg .bar.t-input{fill:#7986cb}
svg .bar.t-message{fill:#9fa8da}
svg .bar.t-split{fill:#f0a500}
svg .completed{fill:#2e7d32;stroke:#2e7d32}
svg .handed_off{fill:#1565c0;stroke:#1565c0}
svg .transitioned{fill:#6a1b9a;stroke:#6a1b9a}
svg .abandoned{fill:#c62828;stroke:#c62828}
svg .active{fill:#9e9e9e;stroke:#9e9e9e}
svg .b0{fill:#5c6bc0;stroke:#5c6bc0}
svg .b1{fill:#f0a500;stroke:#f0a500}
svg .b2{fill:#26a69a;stroke:#26a69a}
svg .b3{fill:#ec407a;stroke:#ec407a}
svg .whisker{stroke-width:2;fill:none}
svg .axis,svg .grid{stroke:var(--line);stroke-width:1}
footer{color:var(--muted);font-size:.8rem;padding-bottom:2rem}
@media (max-width:30rem){header,main,footer{padding:0 .5rem}section.funnel{padding:.7rem}
 .card b{font-size:1.1rem}}
"""


def page(report, filters: dict[str, str], generated: str, version: str) -> str:
    # Also well-formed XML (void elements self-closed), so tests can walk it with ElementTree.
    head = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>"
            f"<title>whopfunnel report: {escape(filters['tenant'])}</title>"
            f"<style>{CSS}</style></head><body>")
    items = [("Tenant", filters["tenant"]), ("Funnel", filters["funnel"]),
             ("Conversations started", f"{filters['from']} to {filters['to']}"),
             ("Generated", generated)]
    header = ("<header><h1>Funnel report</h1><dl class=\"filters\">"
              + "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in items)
              + "</dl></header>")
    body = "".join(_funnel(f) for f in report) or (
        "<p class=\"empty\">No conversations in this scope yet.</p>")
    footer = (f"<footer>whopfunnel {escape(version)}: every figure is computed from the stored "
              "conversations, visits and interactions; times to answer run from the bot's last "
              "prompt to the member's valid reply.</footer>")
    return f"{head}{header}<main>{body}</main>{footer}</body></html>\n"


def _table(headers: list[str], rows: list[list], left: int = 1, cls: str = "") -> str:
    def cell(tag, value, i):
        attr = ' class="l"' if i < left else ""
        lines = value if isinstance(value, list) else [value]  # a list: one line each
        return f"<{tag}{attr}>{'<br/>'.join(escape(str(v)) for v in lines)}</{tag}>"

    head = "".join(cell("th", h, i) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", v, i) for i, v in enumerate(r)) + "</tr>" for r in rows)
    attr = f' class="{cls}"' if cls else ""
    return (f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _funnel(f) -> str:
    st = f.statuses
    cards = [("started", f.started), ("active", st["active"]), ("completed", st["completed"]),
             ("abandoned", st["abandoned"]), ("handed off", st["handed_off"]),
             ("transitioned", st["transitioned"])]
    out = [f'<section class="funnel" id="{escape(_anchor(f))}">',
           f"<h2>{escape(f.name)}</h2>",
           f'<p class="sub">{escape(f.experience_id)} · funnel {escape(f.funnel_id)} · version '
           f"{escape(f.version)} · first used {escape(f.first_used)}</p>",
           '<div class="cards">' + "".join(f'<div class="card"><b>{n}</b><span>{escape(k)}</span></div>'
                                           for k, n in cards) + "</div>",
           "<h3>Reach per block</h3>", svg.funnel(_reach_rows(f), f.started, "Reach per block"),
           "<h3>Where conversations end</h3>", svg.bars(_end_rows(f), "Where conversations end"),
           "<h3>End reasons</h3>", svg.bars(_reason_rows(f), "End reasons"),
           "<h3>Conversion from start</h3>",
           _table(["ending", "type", "conversations", "of started"],
                  [[e.block, e.type, e.count, percent(e.rate)] for e in f.endings], 2)]
    out += ["<h3>Options</h3>", _options(f), "<h3>Escalation and time to answer</h3>", _escalation(f)]
    out += [_split(s) for s in f.splits]
    out.append("</section>")
    return "".join(out)


def _anchor(f) -> str:
    return f"{f.experience_id}-{f.funnel_id}-{f.version}"


def _reach_rows(f):
    rows = []
    for b in f.blocks:
        ended = sum(b.ended.values())
        if b.type in TERMINAL_CLASS:
            note, cls = f"ended here: {ended}", TERMINAL_CLASS[b.type]
        else:
            went_on = max(0, b.reached - ended - b.waiting)
            parts = [f"{went_on} went on"] + [f"{n} {k.replace('_', ' ')}" for k, n in
                                              sorted(b.ended.items()) if n]
            parts += [f"{b.waiting} waiting"] if b.waiting else []
            note, cls = " · ".join(parts), f"t-{b.type}"
        rows.append((b.block, b.reached, note, cls, False))
    return [(*r[:4], i + 1 < len(rows) and rows[i + 1][0] in b.leads_to)
            for i, (r, b) in enumerate(zip(rows, f.blocks))]


def _end_rows(f):
    rows = [(f"{b.block} · {status.replace('_', ' ')}", n, status)
            for b in f.blocks for status, n in b.ended.items() if n]
    rows += [(f"{b.block} · still active", b.waiting, "active") for b in f.blocks if b.waiting]
    return sorted(rows, key=lambda r: -r[1])


def _reason_rows(f):
    reasons = [r for r in REASONS if f.end_reasons.get(r)] + sorted(
        r for r in f.end_reasons if r not in REASONS)
    rows = [(r.replace("_", " "), f.end_reasons[r], REASON_CLASS.get(r, "abandoned")) for r in reasons]
    if f.statuses.get("active"):
        rows.append(("still active", f.statuses["active"], "active"))
    return rows


def _options(f) -> str:
    rows = []
    for b in f.blocks:
        total = sum(o.chosen for o in b.options)
        for o in b.options:
            share = percent(o.chosen / total) if total else "-"
            rows.append([b.block, f"{o.number}. {o.text}", o.chosen, share,
                         *(o.by[h] for h in ("number", "text", "synonym", "ordinal", "typo"))])
    if not rows:
        return '<p class="empty">This funnel has no options.</p>'
    return _table(["block", "option", "chosen", "share", "number", "text", "synonym", "ordinal",
                   "typo"], rows, 2)


def _escalation(f) -> str:
    rows = []
    for b in f.blocks:
        if b.type not in WAITS:
            continue
        steps = [f"{s.step}. {s.action}: {s.count}" for s in b.escalation] or ["-"]
        rows.append([b.block, b.invalid, b.ambiguous, steps, b.owner_notifications,
                     duration(b.answer_median), duration(b.answer_p90)])
    return _table(["block", "invalid replies", "ambiguous replies", "escalation steps taken",
                   "owner notified", "median time to answer", "p90 time to answer"], rows, 1,
                  "escalation")


def _split(split) -> str:
    points = [(f"{e} · branch {br.index + 1}", r.rate, r.low, r.high, f"b{br.index % 4}")
              for e in split.endings for br in split.branches for r in [br.outcomes[e]]]
    rows = []
    for br in split.branches:
        cells = [f"{br.index + 1} → {br.next or '?'}", "-" if br.weight is None else f"{br.weight:g}",
                 br.drawn, percent(br.share.rate if br.share else None)]
        for e in split.columns:
            r = br.outcomes[e]
            band = "" if r.low is None else f" [{percent(r.low)}–{percent(r.high)}]"
            cells.append(f"{r.count} ({percent(r.rate)}){band}")
        rows.append(cells)
    verdicts = "".join(f'<p class="verdict{" sig" if v.significant else ""}">{escape(v.text)}</p>'
                       for v in split.verdicts)
    return (f"<h3>Split test at {escape(split.block)}</h3>"
            + svg.intervals(points, f"Conversion per branch at {split.block}, with 95% intervals")
            + _table(["branch", "weight", "drawn", "share", *split.columns], rows, 1) + verdicts)
