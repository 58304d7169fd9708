"""A funnel `Graph` as SVG (self-contained: inline styles, no fonts, scripts or links to
fetch), Mermaid or Graphviz DOT text."""

from __future__ import annotations

from xml.sax.saxutils import escape

from .graph import CHAR_W, Edge, Graph, Node

STYLES = {  # block type -> (fill, stroke, stroke width, corner radius: None = a pill)
    "question": ("#e8f0fe", "#1a73e8", 1.5, 8),
    "input": ("#e0f7fa", "#00838f", 1.5, 8),
    "message": ("#f1f3f4", "#5f6368", 1.5, 0),
    "split": ("#fff4e5", "#e8710a", 1.5, 0),
    "end": ("#ceead6", "#188038", 3, None),
    "handoff": ("#fce8e6", "#d93025", 3, None),
    "link": ("#f3e8fd", "#9334e6", 3, None),
}
GREY = ("#f8f9fa", "#bdc1c6")


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def _with_count(text: str, count: int | None) -> str:
    return text if count is None else f"{text} ({count})" if text else f"({count})"


def svg(graph: Graph) -> str:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{graph.width:.0f}" '
           f'height="{graph.height:.0f}" viewBox="0 0 {graph.width:.0f} {graph.height:.0f}" '
           'font-family="Helvetica, Arial, sans-serif" font-size="12">',
           f"<title>{escape(f'Funnel {graph.funnel_id}')}</title>",
           '<defs>'
           + "".join(f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" '
                     f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
                     f'<path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>'
                     for name, color in (("on", "#3c4043"), ("goto", "#d93025"), ("off", "#bdc1c6")))
           + "</defs>",
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           f'<text x="24" y="30" font-size="16" font-weight="bold" fill="#202124">'
           f"{escape(graph.title)} ({escape(graph.funnel_id)})"
           f"{' · counts shown, unreached greyed' if graph.counted else ''}</text>"]
    out += _edges(graph)
    out += [_node(node) for node in graph.nodes.values()]
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _edges(graph: Graph) -> list[str]:
    out, labels = [], []
    forward: dict[str, list[Edge]] = {}
    for edge in graph.edges:
        s, t = graph.nodes[edge.source], graph.nodes[edge.target]
        if t.layer > s.layer:
            forward.setdefault(edge.source, []).append(edge)
    loop_lane = 0
    right = max((n.x + n.w for n in graph.nodes.values()), default=0)
    for edge in graph.edges:
        s, t = graph.nodes[edge.source], graph.nodes[edge.target]
        if t.layer > s.layer:
            siblings = forward[edge.source]
            sx = s.x + s.w * (siblings.index(edge) + 1) / (len(siblings) + 1)
            p = [(sx, s.y + s.h), (sx, s.y + s.h + 40), (t.x + t.w / 2, t.y - 40),
                 (t.x + t.w / 2, t.y)]
        else:
            loop_lane += 1
            lane = right + 30 + 18 * loop_lane
            p = [(s.x + s.w, s.y + s.h / 2), (lane, s.y + s.h / 2), (lane, t.y + t.h / 2),
                 (t.x + t.w, t.y + t.h / 2)]
        state = "off" if edge.unreached else "goto" if edge.dashed else "on"
        color = {"off": "#bdc1c6", "goto": "#d93025", "on": "#3c4043"}[state]
        dash = ' stroke-dasharray="6 4"' if edge.dashed else ""
        d = f"M{p[0][0]:.1f},{p[0][1]:.1f} C{p[1][0]:.1f},{p[1][1]:.1f} " \
            f"{p[2][0]:.1f},{p[2][1]:.1f} {p[3][0]:.1f},{p[3][1]:.1f}"
        out.append(f'<path class="edge {edge.kind}{" unreached" if edge.unreached else ""}" '
                   f'd="{d}" fill="none" stroke="{color}" stroke-width="1.5"{dash} '
                   f'marker-end="url(#arrow-{state})"/>')
        label = _with_count(edge.label, edge.count)
        if label:
            t = 0.5 if edge.dashed else 0.3  # near the source: crossing edges' labels part
            k = ((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3)
            mx = sum(c * q[0] for c, q in zip(k, p))
            my = sum(c * q[1] for c, q in zip(k, p))
            w = CHAR_W * len(label) + 10
            labels.append(f'<g class="edge-label"><rect x="{mx - w / 2:.1f}" y="{my - 9:.1f}" '
                          f'width="{w:.1f}" height="18" rx="4" fill="#ffffff" '
                          f'stroke="{color}" stroke-width="0.5"/><text x="{mx:.1f}" '
                          f'y="{my + 4:.1f}" text-anchor="middle" fill="{color}">'
                          f"{escape(label)}</text></g>")
    return out + labels


def _node(node: Node) -> str:
    fill, stroke, width, radius = STYLES.get(node.type, STYLES["message"])
    if node.unreached:
        fill, stroke = GREY
    x, y, w, h = node.x, node.y, node.w, node.h
    if node.type == "split":
        shape = (f'<polygon points="{x + 16:.1f},{y:.1f} {x + w - 16:.1f},{y:.1f} {x + w:.1f},'
                 f'{y + h / 2:.1f} {x + w - 16:.1f},{y + h:.1f} {x + 16:.1f},{y + h:.1f} {x:.1f},'
                 f'{y + h / 2:.1f}" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>')
    else:
        rx = h / 2 if radius is None else radius
        shape = (f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}" '
                 f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>')
    ink = "#9aa0a6" if node.unreached else "#202124"
    parts = [f'<g class="node {node.type}{" unreached" if node.unreached else ""}" '
             f'id="block-{_attr(node.id)}">', shape,
             f'<text x="{x + w / 2:.1f}" y="{y + 24:.1f}" text-anchor="middle" font-weight="bold" '
             f'fill="{ink}">{escape(_with_count(node.title, node.count))}</text>',
             f'<text x="{x + w / 2:.1f}" y="{y + 42:.1f}" text-anchor="middle" fill="{ink}">'
             f"{escape(node.detail)}</text>"]
    if node.start:
        parts.append(f'<text x="{x + w / 2:.1f}" y="{y - 8:.1f}" text-anchor="middle" '
                     f'fill="#1a73e8" font-weight="bold">▼ start</text>')
    return "".join(parts) + "</g>"


_MERMAID_SHAPES = {"question": ('["', '"]'), "input": ('[/"', '"/]'), "message": ('["', '"]'),
                   "split": ('{{"', '"}}'), "end": ('(["', '"])'), "handoff": ('(["', '"])'),
                   "link": ('(["', '"])')}


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def mermaid(graph: Graph) -> str:
    ids = {bid: f"b{i}" for i, bid in enumerate(graph.nodes)}  # block ids may hold - or end
    lines = ["flowchart TD", f"  %% funnel {graph.funnel_id}"]
    for bid, node in graph.nodes.items():
        open_, close = _MERMAID_SHAPES.get(node.type, ('["', '"]'))
        label = _mermaid_text(f"{_with_count(node.title, node.count)}<br/>{node.detail}")
        lines.append(f"  {ids[bid]}{open_}{label}{close}:::t_{node.type}")
    for i, edge in enumerate(graph.edges):
        arrow = "-.->" if edge.dashed else "-->"
        label = _with_count(edge.label, edge.count)
        text = f'|"{_mermaid_text(label)}"|' if label else ""
        lines.append(f"  {ids[edge.source]} {arrow}{text} {ids[edge.target]}")
        if edge.unreached:
            lines.append(f"  linkStyle {i} stroke:#bdc1c6,color:#9aa0a6")
    for kind, (fill, stroke, width, _r) in STYLES.items():
        lines.append(f"  classDef t_{kind} fill:{fill},stroke:{stroke},stroke-width:{width}px")
    lines.append(f"  classDef unreached fill:{GREY[0]},stroke:{GREY[1]},color:#9aa0a6")
    unreached = [ids[b] for b, n in graph.nodes.items() if n.unreached]
    if unreached:
        lines.append(f"  class {','.join(unreached)} unreached")
    return "\n".join(lines) + "\n"


_DOT_SHAPES = {"question": "box", "input": "parallelogram", "message": "box", "split": "hexagon",
               "end": "box", "handoff": "box", "link": "box"}


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dot(graph: Graph) -> str:
    lines = [f'digraph "{_dot_text(graph.funnel_id)}" {{', '  rankdir=TB;',
             '  node [fontname="Helvetica", fontsize=11, style=filled];',
             '  edge [fontname="Helvetica", fontsize=10];']
    for bid, node in graph.nodes.items():
        fill, stroke, width, radius = STYLES.get(node.type, STYLES["message"])
        if node.unreached:
            fill, stroke = GREY
        style = "filled,rounded" if radius != 0 else "filled"
        label = _dot_text(f"{_with_count(node.title, node.count)}\n{node.detail}")
        lines.append(f'  "{_dot_text(bid)}" [label="{label}", shape={_DOT_SHAPES[node.type]}, '
                     f'style="{style}", fillcolor="{fill}", color="{stroke}", penwidth={width}];')
    for edge in graph.edges:
        attrs = [f'label="{_dot_text(_with_count(edge.label, edge.count))}"']
        if edge.dashed:
            attrs += ["style=dashed", 'color="#d93025"']
        if edge.unreached:
            attrs += ['color="#bdc1c6"', 'fontcolor="#9aa0a6"']
        lines.append(f'  "{_dot_text(edge.source)}" -> "{_dot_text(edge.target)}" '
                     f'[{", ".join(attrs)}];')
    lines.append("}")
    return "\n".join(lines) + "\n"
