"""The funnel engine on storage: joins start conversations, messages advance them.

Each call commits first; with inline delivery (embedding) it then sends what it
produced before returning, and whatever fails to send stays in the outbox.
"""

from ..hookspecs import hookimpl


class FunnelPlugin:
    def __init__(self, runtime):
        self.runtime = runtime

    def __repr__(self) -> str:
        return "FunnelPlugin()"

    @hookimpl
    def on_member_join(self, event):
        return self.runtime.join(event)

    @hookimpl
    def on_message(self, message):
        return self.runtime.message(message)
