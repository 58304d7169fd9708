"""The escalation ladder as the last word on invalid replies.

`trylast` on a firstresult hook: any plugin that returns a Step or a message wins;
when none does, the ladder's own step is taken.
"""

from ..hookspecs import hookimpl


@hookimpl(trylast=True)
def on_invalid_response(conversation, reply, attempt, step):
    return step
