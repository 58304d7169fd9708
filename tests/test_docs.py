"""Meta-tests (as datasette does): every hook documented with its signature, and tested."""

from __future__ import annotations

import inspect
import re

import pytest

from whopfunnel_plugin import hookspecs

from .conftest import ROOT

HOOKS = sorted(n for n, f in vars(hookspecs).items()
               if inspect.isfunction(f) and hasattr(f, "whopfunnel_spec"))
DOCS = (ROOT / "docs" / "hooks.md").read_text()
TESTS = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))


def test_there_are_hooks():
    assert {"on_member_join", "on_message", "on_invalid_response", "on_timeout"} <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_its_exact_signature(name):
    signature = f"{name}{inspect.signature(getattr(hookspecs, name))}"
    assert f"## {name}\n" in DOCS
    assert f"```python\n{signature}\n```" in DOCS


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_test(name):
    assert re.search(rf"def test_hook_{name}_\w+", TESTS), f"no test_hook_{name}_... test"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_spec_has_a_docstring_contract(name):
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc and len(doc.splitlines()) >= 2
