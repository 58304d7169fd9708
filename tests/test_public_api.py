"""The public surface is explicit and pinned (as httpx's test_exported_members does)."""

from __future__ import annotations

import types

import whopfunnel_plugin

EXPECTED = [
    "ConfigError", "Conversation", "ConversationNotFound", "DatabaseUnavailable", "Funnel",
    "FunnelError", "InvalidReply", "ManagerClosed", "MemberJoined", "MembershipEnded", "MessageReceived",
    "Outcome", "RetryLater", "SchemaOutOfDate", "Step", "StorageError", "WhopAPIError", "WhopFunnelError",
    "hookimpl", "load_funnel", "make_plugin_manager",
]


def test_all_is_pinned():
    assert whopfunnel_plugin.__all__ == EXPECTED


def test_every_public_name_is_exported():
    public = sorted(name for name, value in vars(whopfunnel_plugin).items()
                    if not name.startswith("_") and not isinstance(value, types.ModuleType))
    assert public == sorted(EXPECTED)


def test_every_exported_name_exists():
    for name in EXPECTED:
        assert getattr(whopfunnel_plugin, name) is not None


def test_errors_form_one_tree():
    errors = [getattr(whopfunnel_plugin, n) for n in EXPECTED if n.endswith(("Error", "Closed",
                                                                            "NotFound", "OutOfDate",
                                                                            "Unavailable", "Later"))]
    assert all(issubclass(e, whopfunnel_plugin.WhopFunnelError) for e in errors)
