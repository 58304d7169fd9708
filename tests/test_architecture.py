"""Dependency direction (STYLE.md): the core is pure, adapters don't know each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "whopfunnel_plugin"
CORE = {"errors", "events", "durations", "templates", "yamlsource", "funnel", "funnel_checks",
        "funnel_schema",
        "catalog", "matching", "inputs", "engine", "hookspecs", "clock"}
ADAPTERS = {"store", "whop", "webhooks", "scheduler", "fakewhop"}
LIBRARIES = {"peewee", "playhouse", "httpx", "schedule", "waitress", "click", "pluggy"}


def imports(module: str) -> set[str]:
    tree = ast.parse((PKG / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # from .x import y / from . import x
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module:
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


MODULES = sorted(p.stem for p in PKG.glob("*.py") if p.stem not in ("__init__", "__main__"))


@pytest.mark.parametrize("module", sorted(CORE & set(MODULES)))
def test_core_modules_are_pure(module):
    found = imports(module)
    allowed_libs = {"pluggy"} if module == "hookspecs" else set()
    assert found & (LIBRARIES - allowed_libs) == set()
    assert found & (ADAPTERS | {"host", "plugins", "server", "cli", "chat", "config"}) == set()


@pytest.mark.parametrize("module", sorted(ADAPTERS & set(MODULES)))
def test_adapters_never_import_each_other(module):
    found = imports(module)
    assert found & (ADAPTERS - {module}) == set()
    assert found & {"host", "plugins", "server", "cli", "chat"} == set()


@pytest.mark.parametrize("module", MODULES)
def test_nothing_reads_the_wall_clock_but_the_clock(module):
    if module == "clock":
        return
    tree = ast.parse((PKG / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today"):
            base = node.value
            name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
            assert name not in ("datetime", "date"), f"{module}.py:{node.lineno} reads the clock"
        if isinstance(node, ast.Attribute) and node.attr == "time":
            base = node.value
            assert not (isinstance(base, ast.Name) and base.id == "time"), \
                f"{module}.py:{node.lineno} calls time.time()"


def test_importing_the_package_has_no_side_effects():
    import subprocess
    import sys

    code = ("import sys, whopfunnel_plugin; "
            "bad = [m for m in ('peewee', 'httpx', 'waitress', 'schedule') if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
