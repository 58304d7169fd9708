"""whopfunnel: DM funnels for Whop communities, as a pluggy plugin.

Importing the package opens nothing and reads no environment; `make_plugin_manager`
builds everything.
"""

from .conversation.inputs import InvalidReply
from .errors import (
    ConfigError,
    ConversationNotFound,
    DatabaseUnavailable,
    FunnelError,
    ManagerClosed,
    RetryLater,
    SchemaOutOfDate,
    StorageError,
    WhopAPIError,
    WhopFunnelError,
)
from .events import Conversation, MemberJoined, MembershipEnded, MessageReceived, Outcome
from .funnel.model import Funnel, Step, load_funnel
from .hookspecs import hookimpl
from .plugins import make_plugin_manager

__all__ = [
    "ConfigError",
    "Conversation",
    "ConversationNotFound",
    "DatabaseUnavailable",
    "Funnel",
    "FunnelError",
    "InvalidReply",
    "ManagerClosed",
    "MemberJoined",
    "MembershipEnded",
    "MessageReceived",
    "Outcome",
    "RetryLater",
    "SchemaOutOfDate",
    "Step",
    "StorageError",
    "WhopAPIError",
    "WhopFunnelError",
    "hookimpl",
    "load_funnel",
    "make_plugin_manager",
]
