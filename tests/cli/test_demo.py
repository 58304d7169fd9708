"""`whopfunnel serve --demo` prints events in true order and labels every reply."""

from __future__ import annotations

import subprocess
import sys

from ..conftest import ROOT


def test_the_demo_prints_each_dm_under_the_line_that_caused_it_and_labels_replies():
    proc = subprocess.run([sys.executable, "-m", "whopfunnel_plugin", "serve", "--demo"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    said = [line for line in lines if line.startswith("Ada")]
    assert [line.split("  [", 1)[1] for line in said] == [
        "webhook membership.activated: HTTP 200 started]",
        "webhook chat.message.created: HTTP 200 advanced; reply invalid (attempt 1): reprompt]",
        "webhook chat.message.created: HTTP 200 advanced; reply invalid (attempt 2): notify_owner]",
        "webhook chat.message.created: HTTP 200 advanced; reply valid: option 1]",
        "webhook chat.message.created: HTTP 200 advanced; reply valid]",
        "webhook chat.message.created: HTTP 200 ended; reply valid: option 2]",
    ]

    def under(member_line: str) -> list[str]:
        """The bot's lines printed after `member_line` and before the next member line."""
        start = next(i for i, line in enumerate(lines) if line.startswith(member_line))
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("Ada")), len(lines))
        return [line.strip() for line in lines[start + 1:end] if line.startswith("  bot -> ")
                or line.startswith("  Whop")]

    assert [x[:30] for x in under("Ada: what?")] == [
        "bot -> Ada: I'll inform the Wh", "bot -> owner: whopfunnel: memb",
        "Whop notification -> owner: Me"]
    assert under("Ada: 1 ") == ["bot -> Ada: Here is the free guide: https://example.com/guide",
                                "bot -> Ada: What's the best email to send it to?"]
    reprompt = under("Ada: I'm not sure yet")
    assert reprompt[0] == "bot -> Ada: Please choose from the provided options above."
    assert reprompt[1].startswith("bot -> Ada: Welcome, ") and len(reprompt) == 2
    assert all(line == line.rstrip() for line in lines)
