"""`whopfunnel fake-whop`: the built-in fake Whop API on loopback, to run `serve` against.

It prints the fake's base URL, a fresh API key and webhook secret, the lines to give
`whopfunnel serve`, and how to make a member join or say something: each `/_fake/...`
action builds the webhook Whop would send, signs it with the secret and POSTs it to
`--webhook-url`. The secrets are printed here once and never logged anywhere else.
"""

from __future__ import annotations

import secrets
import signal
import threading

import click

from ..errors import ConfigError
from .options import config_option, current_config

ACCOUNT, PRODUCT, OWNER = "biz_fake", "prod_fake", "user_owner"


@click.command("fake-whop")
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address (keep it loopback).")
@click.option("--port", type=int, default=8765, show_default=True, help="Port (0: any free port).")
@click.option("--webhook-url", default=None, metavar="URL",
              help="Where member actions POST signed webhooks, e.g. http://127.0.0.1:8080/webhooks/whop.")
@config_option
def fake_whop(host, port, webhook_url) -> None:
    """Run the fake Whop API on loopback and print how to point `whopfunnel serve` at it."""
    from ..whop.fake import FakeWhop, serve_in_thread
    from ..whop.fake_control import WebhookSender

    config = current_config()  # only for the names of the environment variables
    api_key, secret = f"fake_sk_{secrets.token_hex(16)}", f"ws_fake_{secrets.token_hex(20)}"
    sender = WebhookSender(webhook_url, secret) if webhook_url else None
    fake = FakeWhop(api_key, company_id=ACCOUNT, deliver=sender,
                    owners={ACCOUNT: {"id": OWNER, "username": "owner", "name": "Fake Owner"}})
    try:
        base, stop = serve_in_thread(fake, host=host, port=port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (--host/--port)") from None
    say = click.echo
    say(f"fake Whop API on {base}/api/v1 (account {ACCOUNT}, owner {OWNER}, product {PRODUCT}); "
        "Ctrl-C stops")
    say("\nIn the environment of `whopfunnel serve`:")
    say(f"  export {config.api_key_env}={api_key}")
    say(f"  export {config.webhook_secret_env}={secret}")
    say(f"  export {config.bot_user_id_env}={fake.bot_user['id']}")
    say("and in its plugin.yaml:")
    say(f"  whop:\n    base_url: {base}/api/v1")
    say(f"  routes:\n    - {{product: {PRODUCT}, experience: exp_fake, funnel: <your funnel id>}}")
    where = webhook_url or "nowhere yet: start again with --webhook-url"
    say(f"\nDrive it (each action signs its webhook and POSTs it to {where}):")
    for path, body in (("join", f'{{"user_id": "user_ada", "product_id": "{PRODUCT}"}}'),
                       ("say", '{"user_id": "user_ada", "text": "1"}'),
                       ("system", '{"user_id": "user_ada", "text": "Ada joined"}'),
                       ("leave", f'{{"user_id": "user_ada", "product_id": "{PRODUCT}"}}')):
        say(f"  curl -s -X POST {base}/_fake/{path} -d '{body}'")
    say(f"  curl -s {base}/_fake/sent            # what the bot sent (also /_fake/requests, "
        "/_fake/notifications)")
    say(f"  curl -s -X POST {base}/_fake/faults -d '{{\"limit_rate\": {{\"requests\": 5}}}}'  "
        "# misbehave: fail_next, lose_next, slow, limit_rate, clear")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host}: the /_fake/ actions need no key", err=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    stop()
    if sender is not None:
        sender.close()
    click.echo("fake Whop API stopped", err=True)
