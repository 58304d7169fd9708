"""The funnel engine on storage: joins start conversations, messages advance them.

Each call commits first, then delivers what it produced through the Whop client
before returning; whatever fails to send stays in the outbox for the dispatcher.
"""

from ..hookspecs import hookimpl


class FunnelPlugin:
    def __init__(self, runtime):
        self.runtime = runtime

    def __repr__(self) -> str:
        return "FunnelPlugin()"

    @hookimpl
    def on_member_join(self, event):
        outcome = self.runtime.host.join(event)
        self.runtime.deliver(outcome)
        return outcome

    @hookimpl
    def on_message(self, message):
        outcome = self.runtime.host.message(message)
        self.runtime.deliver(outcome)
        return outcome
