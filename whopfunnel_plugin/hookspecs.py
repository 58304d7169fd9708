"""Hook specifications: each docstring is the contract (docs/hooks.md repeats them)."""

import pluggy

hookspec = pluggy.HookspecMarker("whopfunnel")
hookimpl = pluggy.HookimplMarker("whopfunnel")


@hookspec
def on_member_join(event):
    """A member joined a Whop product (a webhook, or a host calling the hook).

    ``event`` is a :class:`MemberJoined`. The built-in funnel plugin starts (or keeps)
    the member's conversation and, with inline delivery (the embedding default),
    delivers the welcome before the call returns; it returns an ``Outcome``. Other
    implementations see every join (CRM sync, analytics).
    """


@hookspec
def on_message(message):
    """A member's direct message arrived.

    ``message`` is a :class:`MessageReceived`. The built-in funnel plugin advances the
    conversation exactly once per ``message_id`` and, with inline delivery, delivers the
    replies before the call returns; it returns an ``Outcome``.
    """


@hookspec(firstresult=True)
def on_invalid_response(conversation, reply, attempt, step):
    """A reply was invalid for the current block; choose the escalation to take.

    ``conversation`` is the :class:`Conversation` before the reply, ``reply`` the
    member's text, ``attempt`` the count of consecutive invalid replies on this block
    (this one included, from 1), ``step`` the ladder's :class:`Step` for that attempt.
    Return a ``Step`` to replace the step, a ``str`` to replace only its message, or
    None to leave the decision to the next implementation (the ladder, last).

    It runs while nothing is locked (the reply is written afterwards, checked against
    the conversation as read), so a slow implementation delays only its own member.
    It runs once per invalid reply, plus once more each time the conversation changed
    between being read and the reply being written (a concurrent reply, the sweep), at
    most 8 times; a duplicate delivery of a message never reaches it.
    """


@hookspec
def on_timeout(conversation):
    """The sweep (or a late reply) ended ``conversation`` for inactivity.

    Fires once per conversation, after the end is committed, in one worker; a crash
    before it fires means another worker (or the restarted one) fires it within
    seconds. The return value is ignored.
    """


@hookspec
def on_conversation_end(conversation):
    """``conversation`` ended for any reason (``conversation.end_reason`` says which).

    Fires once per conversation after the end is committed, after ``on_timeout`` for
    timeouts. The return value is ignored.
    """


@hookspec
def on_owner_notify(conversation, reason, block, last_replies):
    """The experience's owner must be told about ``conversation``.

    ``reason`` is ``"notify_owner"`` (an escalation step) or ``"handoff"``, ``block``
    the block id the member was on, ``last_replies`` the member's last few messages,
    oldest first. Fires for the first notify_owner step of a conversation and for its
    handoff, if any. The return value is ignored.
    """


@hookspec
def register_validators(register):
    """Add ``input:`` validators: call ``register(name, function)`` for each.

    ``function(text) -> str`` returns the value to save, or raises ``ValueError`` when
    the reply is not acceptable (the ladder then escalates); raise ``InvalidReply``
    (a ``ValueError``) to choose the words the member is told, or give the function an
    ``invalid_message`` attribute. Called once at start-up.
    """


@hookspec
def register_template_vars(conversation):
    """Return a dict of extra template variables for ``conversation``, or None.

    Called with ``conversation=None`` once at start-up, so the validator learns the
    names (values are ignored then), and with the :class:`Conversation` whenever a
    message is rendered (nothing is locked then). For a join's welcome the conversation
    is not stored yet: its ``id`` is 0. Funnel ``vars`` and captured values win.
    """


@hookspec
def on_delivery_failed(conversation, text, error, attempts):
    """An outbound message for ``conversation`` keeps failing to send.

    ``text`` is the message, ``error`` the last error (one line, secrets redacted),
    ``attempts`` how many sends failed so far. The message stays in the outbox and is
    retried with backoff; this fires once, when it crosses the failure threshold.
    """
