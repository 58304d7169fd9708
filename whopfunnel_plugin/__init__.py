"""whopfunnel: DM funnels for Whop communities, as a pluggy plugin."""

from .errors import (
    ConfigError,
    ConversationNotFound,
    FunnelError,
    SchemaOutOfDate,
    StorageError,
    WhopAPIError,
    WhopFunnelError,
)
from .events import MemberJoined, MembershipEnded, MessageReceived
from .funnel import Funnel, load_funnel

__all__ = [
    "ConfigError",
    "ConversationNotFound",
    "Funnel",
    "FunnelError",
    "MemberJoined",
    "MembershipEnded",
    "MessageReceived",
    "SchemaOutOfDate",
    "StorageError",
    "WhopAPIError",
    "WhopFunnelError",
    "load_funnel",
]
