"""The report's charts, as inline SVG strings: a funnel of reach, horizontal bars, and
rates with their intervals. Plain string building, no plotting library: three chart
kinds do not justify a dependency, and the output is static SVG that works offline.

Each chart is a fixed-width `viewBox` scaled to the page width (`width="100%"`), so
phones get the whole chart; colours come from the page's CSS classes.
"""

from __future__ import annotations

from html import escape

W = 420  # viewBox width; 13px text stays readable scaled down to ~340 px screens
LABEL = 158  # the label column
BAR_X, BAR_W = LABEL + 6, 170


def _t(x: float, y: float, text: str, cls: str = "", anchor: str = "start") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{attr}>{escape(text)}</text>'


def pct(rate: float) -> str:
    """12.5% stays 12.5%, 0.25 is 25%: one decimal at most."""
    return f"{100 * rate:.1f}".rstrip("0").rstrip(".") + "%"


def _short(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(height: float, body: list[str], title: str, cls: str) -> str:
    return (f'<svg class="chart {cls}" viewBox="0 0 {W} {height:.0f}" width="100%" '
            f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
            f"<title>{escape(title)}</title>{''.join(body)}</svg>")


def funnel(rows: list[tuple[str, int, str, str, bool]], total: int, title: str) -> str:
    """rows: (block, reached, note under the bar, CSS class, flows into the next row).
    Bars are centred and sized by reach against `total` (the conversations started); a
    band joins a bar to the next one when the funnel leads from one block to the other."""
    row_h, bar_h = 46, 22
    centre = BAR_X + BAR_W / 2
    widths = [max(2.0, BAR_W * r / total) if total and r else 0.0 for _, r, _, _, _ in rows]
    bands, body = [], []
    for i, (name, reached, note, cls, flows) in enumerate(rows):
        y = 8 + i * row_h
        if flows and i + 1 < len(rows) and widths[i] and widths[i + 1]:
            top, bottom, y2 = widths[i] / 2, widths[i + 1] / 2, y + row_h
            bands.append(f'<polygon class="flow" points="{centre - top:.1f},{y + bar_h} '
                         f"{centre + top:.1f},{y + bar_h} {centre + bottom:.1f},{y2} "
                         f'{centre - bottom:.1f},{y2}"/>')
        body.append(f'<g class="step"><title>{escape(name)}: {reached} reached. {escape(note)}</title>')
        body.append(_t(LABEL, y + 15, _short(name), "label", "end"))
        if widths[i]:
            body.append(f'<rect class="bar {cls}" x="{centre - widths[i] / 2:.1f}" y="{y}" '
                        f'width="{widths[i]:.1f}" height="{bar_h}" rx="3"/>')
        share = f" · {pct(reached / total)}" if total else ""
        body.append(_t(BAR_X + BAR_W + 6, y + 15, f"{reached}{share}", "value"))
        body.append(_t(centre, y + bar_h + 14, note, "note", "middle"))
        body.append("</g>")
    return _svg(12 + len(rows) * row_h, bands + body, title, "funnel")


def bars(rows: list[tuple[str, int, str]], title: str, total: int | None = None) -> str:
    """Horizontal bars, each under its label: (label, value, CSS class). The longest bar
    is the largest value; the label gets the full width, so long block names fit."""
    row_h, bar_h, span = 40, 16, W - 95  # room for "1234 · 56.7%" after the longest
    top = max([v for _, v, _ in rows] + [1])
    total = total if total is not None else sum(v for _, v, _ in rows)
    body = []
    for i, (label, value, cls) in enumerate(rows):
        y = 4 + i * row_h
        width = span * value / top
        body.append(f"<g><title>{escape(label)}: {value}</title>")
        body.append(_t(0, y + 13, _short(label, 56), "label"))
        body.append(f'<rect class="bar {cls}" x="0" y="{y + 18}" '
                    f'width="{max(width, 1 if value else 0):.1f}" height="{bar_h}" rx="2"/>')
        share = f" · {pct(value / total)}" if total else ""
        body.append(_t(width + 5, y + 31, f"{value}{share}", "value"))
        body.append("</g>")
    if not rows:
        body.append(_t(W / 2, 20, "nothing to show yet", "note", "middle"))
    return _svg(8 + max(len(rows), 1) * row_h, body, title, "bars")


def intervals(rows: list[tuple[str, float | None, float | None, float | None, str]],
              title: str) -> str:
    """Rates on a 0-100% axis with their 95% intervals: (label, rate, low, high, CSS class)."""
    row_h, axis_y = 26, 12

    def x(rate: float) -> float:
        return BAR_X + BAR_W * rate

    body = [f'<line class="axis" x1="{BAR_X}" y1="{axis_y}" x2="{BAR_X + BAR_W}" y2="{axis_y}"/>']
    for tick in (0, 0.25, 0.5, 0.75, 1):
        body.append(f'<line class="grid" x1="{x(tick):.1f}" y1="{axis_y}" x2="{x(tick):.1f}" '
                    f'y2="{axis_y + 8 + len(rows) * row_h}"/>')
        body.append(_t(x(tick), axis_y - 3, f"{tick:.0%}", "tick", "middle"))
    for i, (label, rate, low, high, cls) in enumerate(rows):
        y = axis_y + 20 + i * row_h
        body.append(f"<g><title>{escape(label)}</title>")
        body.append(_t(LABEL, y + 4, _short(label, 22), "label", "end"))
        if rate is None:
            body.append(_t(x(0) + 4, y + 4, "no draws yet", "note"))
        else:
            body.append(f'<line class="whisker {cls}" x1="{x(low):.1f}" y1="{y}" x2="{x(high):.1f}" '
                        f'y2="{y}"/>')
            for end in (low, high):
                body.append(f'<line class="whisker {cls}" x1="{x(end):.1f}" y1="{y - 5}" '
                            f'x2="{x(end):.1f}" y2="{y + 5}"/>')
            body.append(f'<circle class="dot {cls}" cx="{x(rate):.1f}" cy="{y}" r="4.5"/>')
            body.append(_t(BAR_X + BAR_W + 6, y + 4, pct(rate), "value"))
        body.append("</g>")
    return _svg(axis_y + 20 + len(rows) * row_h, body, title, "intervals")
