"""A funnel as a drawable graph: nodes per block, edges per exit, a layered layout.

Layers run top to bottom, breadth-first from the start block; an edge to the same or an
earlier layer (a loop, most escalation gotos) is routed around the right-hand side.
With `Traffic` (from `whopfunnel test` or a database) nodes and edges carry counts and
whatever was never reached is marked `unreached`. Pure: `render.py` turns it into SVG,
Mermaid or DOT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Funnel
from .paths import exits, order
from .traffic import Traffic

NODE_H = 58
LAYER_GAP = 78
NODE_GAP = 36
MARGIN = 24
CHAR_W = 6.6  # average glyph width of 12 px sans-serif, for sizing boxes without a font


@dataclass
class Node:
    id: str
    type: str
    title: str
    detail: str
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = NODE_H
    count: int | None = None
    start: bool = False

    @property
    def unreached(self) -> bool:
        return self.count == 0


@dataclass
class Edge:
    source: str
    target: str
    kind: str  # option | input | next | branch | goto
    label: str
    count: int | None = None

    @property
    def dashed(self) -> bool:
        return self.kind == "goto"

    @property
    def unreached(self) -> bool:
        return self.count == 0


@dataclass
class Graph:
    funnel_id: str
    title: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0
    counted: bool = False


def _short(text: str, limit: int = 44) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _detail(block) -> str:
    if block.type == "input":
        return f"input: {block.input}"
    if block.type == "link":
        return _short(block.url or "")
    if block.type == "split":
        return f"split into {len(block.branches)}"
    return _short(block.message) if block.message else block.type


def build(funnel: Funnel, traffic: Traffic | None = None) -> Graph:
    graph = Graph(funnel.id, funnel.name or funnel.id, counted=traffic is not None)
    for bid in order(funnel):
        block = funnel.blocks[bid]
        node = Node(bid, block.type, f"{bid}  ·  {block.type}", _detail(block),
                    start=bid == funnel.start)
        if traffic is not None:
            node.count = traffic.blocks[bid]
        node.w = max(150.0, CHAR_W * max(len(node.title), len(node.detail)) + 28)
        graph.nodes[bid] = node
        for ex in exits(funnel, block):
            if ex.target not in funnel.blocks:
                continue
            label = ex.label if ex.kind in ("option", "branch", "goto") else ""
            if ex.kind == "goto":
                label = f"invalid ×{ex.index + 1}"
            edge = Edge(bid, ex.target, ex.kind, _short(label, 32))
            if traffic is not None:
                key = (bid, ex.kind, ex.index)
                edge.count = traffic.exits[key]
            graph.edges.append(edge)
    _layout(funnel, graph)
    return graph


def _layout(funnel: Funnel, graph: Graph) -> None:
    layer: dict[str, int] = {}
    if funnel.start in graph.nodes:
        layer[funnel.start] = 0
        queue = [funnel.start]
        while queue:
            here = queue.pop(0)
            for edge in graph.edges:
                if edge.source == here and not edge.dashed and edge.target not in layer:
                    layer[edge.target] = layer[here] + 1
                    queue.append(edge.target)
    bottom = max(layer.values(), default=-1) + 1
    rows: dict[int, list[Node]] = {}
    for node in graph.nodes.values():
        node.layer = layer.get(node.id, bottom)
        rows.setdefault(node.layer, []).append(node)
    widths = {i: sum(n.w for n in row) + NODE_GAP * (len(row) - 1) for i, row in rows.items()}
    content = max(widths.values(), default=0)
    loops = any(graph.nodes[e.target].layer <= graph.nodes[e.source].layer for e in graph.edges)
    graph.width = content + 2 * MARGIN + (120 if loops else 0)
    for i, row in rows.items():
        x = MARGIN + (content - widths[i]) / 2
        for node in row:
            node.x, node.y = x, MARGIN + 40 + i * (NODE_H + LAYER_GAP)
            x += node.w + NODE_GAP
    graph.height = MARGIN + 40 + (max(rows, default=0) + 1) * (NODE_H + LAYER_GAP) - LAYER_GAP + MARGIN
