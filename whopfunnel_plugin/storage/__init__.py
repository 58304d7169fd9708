"""The only part of whopfunnel that talks SQL (and the only importer of peewee).

`Store(url)` owns one database with its own models; the service asks it for what it
wants by name: look up a member's conversation, write a decision, end expired
conversations, claim an outbox message or an owed hook call, the analytics queries.
"""

from .database import DEFAULT_URL, engine_of, redact_url
from .models import SCHEMA_VERSION
from .outbox import Queued
from .store import Store
from .writes import Change, Inbound, NewConversation, Written

__all__ = ["DEFAULT_URL", "SCHEMA_VERSION", "Change", "Inbound", "NewConversation", "Queued",
           "Store", "Written", "engine_of", "redact_url"]
