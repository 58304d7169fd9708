"""`whopfunnel report`: one self-contained page whose structure, charts and figures match
the stored conversations."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections import Counter

import pytest
from click.testing import CliRunner

from whopfunnel_plugin.cli import cli
from whopfunnel_plugin.cli.report_html import page
from whopfunnel_plugin.storage.stats import BlockStats, FunnelStats

from ..analytics_data import analytics_pm_fixture, onboarding_story, split_story  # noqa: F401

SVG = "{http://www.w3.org/2000/svg}"
SECTIONS = ["Reach per block", "Where conversations end", "End reasons", "Conversion from start",
            "Options", "Escalation and time to answer"]


def parse(html: str) -> ET.Element:
    doctype, rest = html.split("\n", 1)
    assert doctype == "<!doctype html>"
    return ET.fromstring(rest)  # the page is also well-formed XML


def text(element) -> str:
    return "".join(element.itertext()).strip()


def lines(cell) -> str:
    """A table cell's text, its <br/>s as newlines."""
    parts = [cell.text or ""]
    for child in cell:
        parts += ["\n" if child.tag == "br" else text(child), child.tail or ""]
    return "".join(parts).strip()


def rows(table) -> list[list[str]]:
    return [[lines(c) for c in tr] for tr in table.iter("tr")]


@pytest.fixture
def report(analytics_pm, clock, tmp_path, monkeypatch):
    pm = analytics_pm()
    onboarding_story(pm, clock)
    split_story(pm, clock, {0: (3, 7, 2), 1: (7, 2, 1)})
    pm.runtime.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def make(*args):
        result = CliRunner().invoke(cli, ["report", "--out", "report.html", *args])
        assert result.exit_code == 0, result.output
        return result, (tmp_path / "report.html").read_text(encoding="utf-8")

    return make


def test_the_page_is_self_contained_and_fits_a_phone(report):
    result, html = report()
    assert result.output == "wrote report.html: 4 funnel versions\n"
    root = parse(html)
    head = root.find("head")
    assert head.find("meta[@name='viewport']").get("content") == "width=device-width, initial-scale=1"
    assert head.find("style") is not None
    tags = {e.tag for e in root.iter()}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert not [e for e in root.iter() for a in ("src", "href") if e.get(a)]
    assert "url(" not in html and "@import" not in html
    # every chart is inline SVG sized by its viewBox to the page width
    charts = list(root.iter(SVG + "svg"))
    assert charts and all(c.get("width") == "100%" and c.get("viewBox") for c in charts)


def test_the_filter_header_states_tenant_and_dates(report):
    _, html = report("--experience", "exp_1", "--since", "2026-03-01", "--until", "2026-03-31")
    header = parse(html).find("body/header")
    facts = {text(d.find("dt")): text(d.find("dd")) for d in header.iter("div")}
    assert list(facts) == ["Tenant", "Funnel", "Conversations started", "Generated"]
    assert (facts["Tenant"], facts["Funnel"], facts["Conversations started"]) == (
        "exp_1", "all funnels", "2026-03-01 to 2026-03-31 (inclusive)")
    assert facts["Generated"].endswith(" UTC")
    assert [text(s.find("h2")) for s in parse(html).iter("section")] == ["Onboarding"]


def test_each_funnel_has_its_charts_and_tables(report):
    _, html = report()
    sections = list(parse(html).iter("section"))
    assert [(text(s.find("h2")), s.get("id").split("-")[0]) for s in sections] == [
        ("Onboarding", "exp_1"), ("Onboarding", "exp_2"), ("Qualification", "exp_2"),
        ("Welcome test", "exp_ab")]
    one = sections[0]
    assert [text(h) for h in one.iter("h3")] == SECTIONS
    cards = {text(c.find("span")): text(c.find("b")) for c in one.iter("div") if c.get("class") == "card"}
    assert cards == {"started": "8", "active": "1", "completed": "2", "abandoned": "4",
                     "handed off": "1", "transitioned": "0"}

    reach, ends, reasons = list(one.iter(SVG + "svg"))
    steps = [g for g in reach.iter(SVG + "g") if g.get("class") == "step"]
    labels = [[text(t) for t in g.iter(SVG + "text")] for g in steps]
    assert labels == [
        ["welcome", "8 · 100%", "5 went on · 2 abandoned · 1 waiting"],
        ["trading_guide", "4 · 50%", "4 went on"],
        ["goodbye", "2 · 25%", "ended here: 2"],
        ["email", "4 · 50%", "2 went on · 2 abandoned"],
        ["offer", "2 · 25%", "2 went on"],
        ["handoff", "1 · 12.5%", "ended here: 1"]]
    widths = [float(next(g.iter(SVG + "rect")).get("width")) for g in steps]
    assert widths == pytest.approx([170 * r / 8 for r in (8, 4, 2, 4, 2, 1)], abs=0.06)  # by reach
    # bands join a block to the next one only where the funnel leads there
    assert len(list(reach.iter(SVG + "polygon"))) == 3  # welcome>trading_guide, email>offer>handoff

    def bars(chart):
        return [[text(t) for t in g.iter(SVG + "text")] + [next(g.iter(SVG + "rect")).get("class")]
                for g in chart.iter(SVG + "g")]

    assert bars(ends) == [["welcome · abandoned", "2 · 25%", "bar abandoned"],
                          ["goodbye · completed", "2 · 25%", "bar completed"],
                          ["email · abandoned", "2 · 25%", "bar abandoned"],
                          ["handoff · handed off", "1 · 12.5%", "bar handed_off"],
                          ["welcome · still active", "1 · 12.5%", "bar active"]]
    assert bars(reasons) == [["completed", "2 · 25%", "bar completed"],
                             ["handoff", "1 · 12.5%", "bar handed_off"],
                             ["max invalid responses", "1 · 12.5%", "bar abandoned"],
                             ["timeout", "2 · 25%", "bar abandoned"],
                             ["membership ended", "1 · 12.5%", "bar abandoned"],
                             ["still active", "1 · 12.5%", "bar active"]]

    conversion, options, escalation = list(one.iter("table"))
    assert rows(conversion)[1:] == [["goodbye", "end", "2", "25.0%"], ["handoff", "handoff", "1", "12.5%"]]
    assert rows(options)[0] == ["block", "option", "chosen", "share", "number", "text", "synonym",
                                "ordinal", "typo"]
    assert rows(options)[1:] == [
        ["welcome", "1. Trading & Investing", "4", "80.0%", "2", "0", "1", "0", "1"],
        ["welcome", "2. Just exploring for now", "1", "20.0%", "0", "0", "0", "1", "0"],
        ["offer", "1. Yes, book me", "1", "50.0%", "0", "0", "1", "0", "0"],
        ["offer", "2. No thanks", "1", "50.0%", "0", "1", "0", "0", "0"]]
    assert rows(escalation) == [
        ["block", "invalid replies", "ambiguous replies", "escalation steps taken",
         "owner notified", "median time to answer", "p90 time to answer"],
        ["welcome", "3", "0", "1. reprompt: 1\n2. notify_owner: 1\n3. abandon: 1", "1", "12s", "44s"],
        ["email", "1", "0", "1. reprompt: 1", "0", "37.5s", "43.5s"],
        ["offer", "0", "0", "-", "0", "27.5s", "37.5s"]]


def test_the_split_test_is_compared_with_intervals_and_a_plain_verdict(report):
    _, html = report("--funnel", "ab")
    (section,) = parse(html).iter("section")
    assert [text(h) for h in section.iter("h3")] == [*SECTIONS, "Split test at pick"]
    chart = list(section.iter(SVG + "svg"))[-1]
    points = [[text(t) for t in g.iter(SVG + "text")] for g in chart.iter(SVG + "g")]
    assert points == [["buy · branch 1", "25%"], ["buy · branch 2", "70%"],
                      ["bye · branch 1", "58.3%"], ["bye · branch 2", "20%"]]
    whiskers = [g for g in chart.iter(SVG + "g")][0].findall(SVG + "line")
    # the first whisker spans the 95% interval 8.9%..53.2% of a 170-unit axis starting at 164
    assert float(whiskers[0].get("x1")) == pytest.approx(164 + 170 * 0.0889, abs=0.1)
    assert float(whiskers[0].get("x2")) == pytest.approx(164 + 170 * 0.5323, abs=0.1)
    table = list(section.iter("table"))[-1]
    assert rows(table) == [
        ["branch", "weight", "drawn", "share", "buy", "bye", "abandoned", "active"],
        ["1 → welcome_a", "50", "12", "54.5%", "3 (25.0%) [8.9%–53.2%]", "7 (58.3%) [32.0%–80.7%]",
         "0 (0.0%) [0.0%–24.2%]", "2 (16.7%) [4.7%–44.8%]"],
        ["2 → welcome_b", "50", "10", "45.5%", "7 (70.0%) [39.7%–89.2%]", "2 (20.0%) [5.7%–51.0%]",
         "0 (0.0%) [0.0%–27.8%]", "1 (10.0%) [1.8%–40.4%]"]]
    verdicts = [text(p) for p in section.iter("p") if "verdict" in (p.get("class") or "")]
    assert verdicts == [
        "buy: the difference is not yet significant (the 95% intervals overlap); keep the test running",
        "bye: the difference is not yet significant (the 95% intervals overlap); keep the test running"]


def test_funnel_authors_text_is_escaped():
    f = FunnelStats("exp_<1>", "f", "v1", 1, "<script>alert(1)</script>", "2026-03-01T00:00:00Z",
                    started=1)
    b = BlockStats("a&b", "end", reached=1, ended={"completed": 1})
    f.blocks = [b]
    html = page([f], {"tenant": "<all>", "funnel": "x", "from": "a", "to": "b"}, "now", "0.1")
    root = parse(html)
    assert not list(root.iter("script"))
    assert text(root.find("body/main/section/h2")) == "<script>alert(1)</script>"
    assert "a&amp;b" in html and "exp_&lt;1&gt;" in html


def test_an_empty_report_still_writes_a_page(tmp_path, monkeypatch, db_url_factory):
    from whopfunnel_plugin.storage.store import Store

    url = db_url_factory()
    store = Store(url)
    store.upgrade()
    store.close()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["report", "--db", url, "--out", "empty.html"])
    assert result.output == "wrote empty.html: 0 funnel versions\n"
    root = parse((tmp_path / "empty.html").read_text())
    assert text(root.find("body/main")) == "No conversations in this scope yet."


def test_an_unwritable_out_file_is_one_line(report, tmp_path):
    result = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "no" / "dir.html")])
    assert result.exit_code == 1
    assert result.output.startswith("error: --out: cannot write ") and result.output.count("\n") == 1


# -- in a real browser ------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
COLOURS = {"completed": (0x2E, 0x7D, 0x32), "abandoned": (0xC6, 0x28, 0x28),
           "question bar": (0x5C, 0x6B, 0xC0), "handed off": (0x15, 0x65, 0xC0)}


def pixels(png: bytes) -> tuple[int, int, Counter]:
    """Width, height and a count of every RGB colour of an 8-bit RGB/RGBA PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(png):
        (length,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        chunks.setdefault(kind, []).append(png[pos + 8:pos + 8 + length])
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][0][:10])
    assert depth == 8 and colour in (2, 6)
    step = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks[b"IDAT"])), width * step
    previous, counts = bytearray(stride), Counter()
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = previous[i], previous[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        counts.update(zip(line[0::step], line[1::step], line[2::step]))
        previous = line
    return width, height, counts


def chromium(*args, profile) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


def test_headless_chromium_draws_the_charts(report, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("WHOPFUNNEL_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed [WHOPFUNNEL_REQUIRE_BROWSER=1]")
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    _, html = report("--experience", "exp_1")
    page = (tmp_path / "report.html").as_uri()
    dom = chromium("--dump-dom", page, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the browser parsed the inline SVG into the same elements the file has
    for tag in ("<svg", "<rect", "<polygon", "<table"):
        assert dom.stdout.count(tag) == html.count(tag) > 0, tag
    shot = tmp_path / "shot.png"
    run = chromium(f"--screenshot={shot}", "--window-size=390,1500", page,
                   profile=tmp_path / "profile-shot")
    assert run.returncode == 0, run.stderr[-2000:]
    width, height, counts = pixels(shot.read_bytes())
    assert (width, height) == (390, 1500)
    # solid bar colours on screen: the charts were drawn, not left blank
    drawn = {name: counts[rgb] for name, rgb in COLOURS.items()}
    assert all(n > 200 for n in drawn.values()), drawn
