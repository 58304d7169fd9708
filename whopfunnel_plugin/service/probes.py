"""`GET /readyz` and `GET /metrics`, next to the server's `/healthz`.

- `/healthz` (server.py): the process answers, and says whether the database does.
- `/readyz`: ready to take webhooks: the database answers, its schema is the one this
  version needs, and funnels are loaded. 503 with every reason otherwise, so a load
  balancer sends traffic elsewhere (a worker waiting for `db upgrade`, say).
- `/metrics`: the manager's metrics in the Prometheus text format (docs/operating.md).
"""

from __future__ import annotations

import json

from ..errors import WhopFunnelError

ROUTES = ("/readyz", "/metrics")
RETRY_AFTER = "5"


def answer(runtime, path: str, method: str, start_response):
    if method not in ("GET", "HEAD"):
        return _json(start_response, 405, {"error": "use GET"}, [("Allow", "GET, HEAD")])
    if path == "/metrics":
        body = runtime.activity.metrics.render()
        from .metrics import CONTENT_TYPE

        start_response("200 OK", [("Content-Type", CONTENT_TYPE),
                                  ("Content-Length", str(len(body)))])
        return [body] if method == "GET" else [b""]
    problems, found = readiness(runtime)
    if problems:
        return _json(start_response, 503, {"status": "not ready", "reasons": problems, **found},
                     [("Retry-After", RETRY_AFTER)])
    return _json(start_response, 200, {"status": "ready", **found})


def readiness(runtime) -> tuple[list[str], dict]:
    """(what keeps this worker from being ready, what it has): database, schema, funnels."""
    problems: list[str] = []
    store = runtime.store
    try:
        store.ping()
    except Exception as exc:  # noqa: BLE001 - any failure here means "not ready"
        problems.append(f"database unavailable: {_line(exc)}")
    else:
        try:
            store.check_schema()
        except WhopFunnelError as exc:
            problems.append(_line(exc))
        except Exception as exc:  # noqa: BLE001
            problems.append(f"cannot read the schema version: {_line(exc)}")
    funnels = {f.id: f.version for f in list(runtime.host.funnels.values())}
    if not funnels:
        problems.append("no funnels loaded")
    return problems, {"funnels": funnels}


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _json(start_response, status: int, payload: dict, extra=()):
    reasons = {200: "OK", 405: "Method Not Allowed", 503: "Service Unavailable"}
    body = json.dumps(payload).encode()
    start_response(f"{status} {reasons[status]}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    *extra])
    return [body]
