"""`whopfunnel graph`: the drawing's structure (SVG, Mermaid, DOT), counts and greying, and
the SVG as headless Chromium renders it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from xml.etree import ElementTree as ET

import pytest

from whopfunnel_plugin.funnel import render
from whopfunnel_plugin.funnel.graph import build
from whopfunnel_plugin.funnel.model import check_bytes, load_funnel
from whopfunnel_plugin.funnel.traffic import Traffic

from ..conftest import FUNNELS

SVG = "{http://www.w3.org/2000/svg}"
LOOPY = """\
id: loopy
start: ask
blocks:
  ask:
    message: Pick
    escalation:
      - message: "{invalid_message}"
      - {message: Let me explain, goto: explain}
    options:
      - {text: Alpha, next: done}
      - {text: Back again, next: ask_again}
  ask_again:
    message: Really?
    options:
      - {text: Yes really, next: ask}
      - {text: Stop, next: done}
  explain: {message: "It works like this.", next: done}
  done: {type: end, message: Bye}
"""


def loopy():
    funnel, problems = check_bytes(textwrap.dedent(LOOPY).encode(), "loopy.yaml")
    assert funnel is not None, problems
    return funnel


def test_the_svg_draws_every_block_by_type_and_every_option_on_its_edge():
    funnel = load_funnel(FUNNELS / "onboarding.yaml")
    root = ET.fromstring(render.svg(build(funnel)))
    nodes = {g.get("id"): g.get("class") for g in root.iter(f"{SVG}g") if "node" in (g.get("class") or "")}
    assert nodes == {"block-welcome": "node question", "block-trading_guide": "node message",
                     "block-email": "node input", "block-offer": "node question",
                     "block-handoff": "node handoff", "block-goodbye": "node end"}
    labels = [t.text for t in root.iter(f"{SVG}text") if t.text]
    for option in ("Trading & Investing", "Just exploring for now", "Yes, book me", "No thanks"):
        assert option in labels
    assert not any(el.get("href") or el.get("{http://www.w3.org/1999/xlink}href")
                   for el in root.iter())  # self-contained: nothing to fetch


def test_escalation_gotos_are_dashed_and_loops_are_drawn():
    graph = build(loopy())
    kinds = {(e.source, e.target): e.kind for e in graph.edges}
    assert kinds[("ask", "explain")] == "goto"
    svg = render.svg(graph)
    goto = next(line for line in svg.splitlines() if 'class="edge goto' in line)
    assert 'stroke-dasharray="6 4"' in goto
    assert "invalid ×2" in svg
    assert graph.nodes["ask_again"].layer > graph.nodes["ask"].layer  # the loop goes back up
    assert " -.->" in render.mermaid(graph) and "style=dashed" in render.dot(graph)


def test_counts_on_edges_and_the_unreached_greyed():
    funnel = load_funnel(FUNNELS / "onboarding.yaml")
    traffic = Traffic()
    traffic.blocks.update({"welcome": 3, "goodbye": 3})
    traffic.exits[("welcome", "option", 1)] = 3
    graph = build(funnel, traffic)
    svg = render.svg(graph)
    assert "Just exploring for now (3)" in svg and "Trading &amp; Investing (0)" in svg
    assert 'class="node input unreached"' in svg and 'class="node end"' in svg
    assert "class b1,b3,b4,b5 unreached" in render.mermaid(graph)
    assert '"email" [label="email  ·  input (0)\\ninput: email", shape=parallelogram' in render.dot(graph)


def test_split_branches_are_drawn_with_their_names_and_counts():
    funnel = load_funnel(FUNNELS / "welcome_ab.yaml")
    traffic = Traffic.from_json({"blocks": {"welcome_split": 4},
                                 "exits": [["welcome_split", "branch", 0, 3],
                                           ["welcome_split", "branch", 1, 1]]})
    svg = render.svg(build(funnel, traffic))
    assert 'class="node split"' in svg and "short (3)" in svg and "story (1)" in svg
    assert "{{" in render.mermaid(build(funnel))  # Mermaid's hexagon


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found and os.environ.get("CI"):
        pytest.fail("chromium is not installed; .ci/run installs it with apt")
    return found


def test_the_svg_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if not browser:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    svgs = {name: render.svg(build(load_funnel(FUNNELS / f"{name}.yaml")))
            for name in ("onboarding", "two_stage", "welcome_ab")}
    page = tmp_path / "check.html"
    page.write_text("""<!doctype html><html><body><pre id="result"></pre><script>
const svgs = SVGS_JSON, out = {};
for (const [name, text] of Object.entries(svgs)) {
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  const broken = doc.getElementsByTagName("parsererror").length > 0;
  const svg = document.importNode(doc.documentElement, true);
  document.body.appendChild(svg);
  const nodes = [...svg.querySelectorAll("g.node")];
  const overflow = nodes.filter(g => {
    const box = g.firstElementChild.getBBox();
    return [...g.querySelectorAll("text")].some(t => t.getBBox().width > box.width);
  }).map(g => g.id);
  out[name] = {broken, nodes: nodes.length,
               drawn: nodes.filter(g => g.getBBox().width > 0).length, overflow,
               edges: svg.querySelectorAll("path.edge").length};
}
document.getElementById("result").textContent = JSON.stringify(out);
</script></body></html>""".replace("SVGS_JSON", json.dumps(svgs)))
    profile = tmp_path / "profile"
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    result = json.loads(dom.split('<pre id="result">', 1)[1].split("</pre>", 1)[0])
    assert result["onboarding"] == {"broken": False, "nodes": 6, "drawn": 6, "overflow": [],
                                    "edges": 6}
    assert result["two_stage"]["nodes"] == result["two_stage"]["drawn"] == 7
    assert result["welcome_ab"]["nodes"] == result["welcome_ab"]["drawn"] == 5
    assert all(not r["broken"] and not r["overflow"] for r in result.values())
