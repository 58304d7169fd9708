"""Dependency direction (STYLE.md): every module has a layer, and imports only point down.

    core        events, errors, clock, durations, hookspecs, funnel/, conversation/  (pure)
    config      plugin.yaml, preflight (checks before serving)                       (reads a file)
    adapters    storage/ (peewee), whop/ (httpx, hmac)                 (never each other)
    service     host, runtime, delivery, poller, scheduler, server     (wires adapters + core)
    plugins     plugins.py, default_plugins/, wsgi.py                  (built-ins through the hooks)
    cli         click commands, chat, demo                             (the top)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "whopfunnel_plugin"
TOP = "whopfunnel_plugin"
LAYERS = {
    "core": ("events", "errors", "clock", "durations", "hookspecs", "funnel", "conversation"),
    "config": ("config", "config_fields", "preflight"),
    "storage": ("storage",),
    "whop": ("whop",),
    "service": ("service",),
    "plugins": ("plugins", "default_plugins", "wsgi"),
    "cli": ("cli", "__main__"),
    "api": ("__init__",),
}
# What each layer may import from the package (besides itself).
ALLOWED = {
    "core": {"core"},
    "config": {"core"},
    "storage": {"core"},
    "whop": {"core"},
    "service": {"core", "config", "storage", "whop"},
    "plugins": {"core", "config", "service"},
    "cli": {"core", "config", "storage", "whop", "service", "plugins", "api"},
    "api": {"core", "plugins", "service"},
}
# Third-party libraries with side effects or I/O, and the only places that may import them.
LIBRARY_OWNERS = {
    "peewee": {"storage"},
    "playhouse": {"storage"},
    "httpx": {"whop", "cli"},
    "waitress": {"service", "whop"},
    "schedule": {"service"},
    "click": {"cli"},
    "pluggy": {"core", "plugins"},
}


def module_names() -> list[str]:
    return sorted(".".join(p.relative_to(PKG).with_suffix("").parts) for p in PKG.rglob("*.py"))


def layer_of(module: str) -> str:
    head = module.split(".")[0]
    for layer, heads in LAYERS.items():
        if head in heads:
            return layer
    raise AssertionError(f"module {module} has no layer: add its folder to LAYERS")


def imports(module: str) -> tuple[set[str], set[str]]:
    """(package modules imported, as dotted names; third-party top-level names)."""
    path = PKG / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    package = module.split(".")[:-1]
    inner, outer = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module:
                    inner.add(target)
                else:
                    inner.update(f"{target}.{a.name}".strip(".") for a in node.names)
            elif node.module and node.module.split(".")[0] == TOP:
                inner.add(node.module[len(TOP) + 1:] or "__init__")
            elif node.module:
                outer.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == TOP:
                    inner.add(alias.name[len(TOP) + 1:] or "__init__")
                else:
                    outer.add(alias.name.split(".")[0])
    return inner, outer


MODULES = module_names()


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_down(module):
    layer = layer_of(module)
    inner, _ = imports(module)
    wrong = sorted(t for t in inner if t and layer_of(t) != layer and layer_of(t) not in ALLOWED[layer])
    assert wrong == [], f"{module} ({layer}) imports {wrong}"


@pytest.mark.parametrize("module", MODULES)
def test_libraries_stay_in_their_layer(module):
    layer = layer_of(module)
    _, outer = imports(module)
    wrong = sorted(lib for lib in outer & set(LIBRARY_OWNERS) if layer not in LIBRARY_OWNERS[lib])
    assert wrong == [], f"{module} ({layer}) imports {wrong}"


MAX_LINES = 330  # STYLE.md: "aim under ~300 lines"


@pytest.mark.parametrize("module", MODULES)
def test_no_module_is_over_about_300_lines(module):
    lines = (PKG / (module.replace(".", "/") + ".py")).read_text().count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it"


def test_only_storage_talks_sql():
    talkers = sorted(m for m in MODULES if imports(m)[1] & {"peewee", "playhouse"})
    assert talkers and all(layer_of(m) == "storage" for m in talkers), talkers


def test_adapters_never_import_each_other():
    for module in MODULES:
        if layer_of(module) in ("storage", "whop"):
            inner, _ = imports(module)
            assert {layer_of(t) for t in inner if t} <= {layer_of(module), "core"}, module


def test_the_core_is_pure():
    for module in MODULES:
        if layer_of(module) == "core":
            inner, outer = imports(module)
            assert outer & {"peewee", "playhouse", "httpx", "waitress", "schedule", "click"} == set()
            assert {layer_of(t) for t in inner if t} <= {"core"}, module


@pytest.mark.parametrize("module", MODULES)
def test_nothing_reads_the_wall_clock_but_the_clock(module):
    if module == "clock":
        return
    tree = ast.parse((PKG / (module.replace(".", "/") + ".py")).read_text())
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
