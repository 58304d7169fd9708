"""/readyz says why a worker is not ready; /metrics belongs to one manager; log lines are
formatted and redacted (service/probes.py, metrics.py, logs.py)."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from whopfunnel_plugin import MemberJoined
from whopfunnel_plugin.service import logs
from whopfunnel_plugin.service.server import WebhookApp


def client(pm):
    app = WebhookApp(pm, secret="ws_probe_secret", bot_user_id="user_bot")
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://wf.test")


def test_ready_when_database_schema_and_funnels_are(make_pm):
    pm = make_pm()
    with client(pm) as web:
        answer = web.get("/readyz")
        assert answer.status_code == 200
        assert answer.json()["status"] == "ready"
        assert sorted(answer.json()["funnels"]) == ["onboarding", "qualification"]
        assert web.post("/readyz").status_code == 405
        assert web.get("/healthz").json() == {"status": "ok"}


def test_not_ready_names_every_reason(make_pm):
    pm = make_pm()
    s = pm.runtime.store.models.schema
    s.update(value="1").where(s.key == "schema_version").execute()
    pm.runtime.host.funnels = {}
    with client(pm) as web:
        answer = web.get("/readyz")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    reasons = answer.json()["reasons"]
    assert len(reasons) == 2
    assert "is at schema version 1" in reasons[0] and "run `whopfunnel db upgrade`" in reasons[0]
    assert reasons[1] == "no funnels loaded"


@pytest.mark.server_db
def test_not_ready_while_the_database_is_gone(make_pm, db_url_factory):
    import psycopg2

    pm = make_pm(engine="postgres")
    name = pm.runtime.store.url.rsplit("/", 1)[1]
    pm.runtime.store.ping()  # connected; then the database goes away under the worker
    admin = psycopg2.connect("dbname=postgres user=postgres host=127.0.0.1")
    admin.autocommit = True
    admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()
    with client(pm) as web:
        ready, metrics = web.get("/readyz"), web.get("/metrics")
    assert ready.status_code == 503
    assert ready.json()["reasons"][0].startswith("database unavailable: ")
    assert metrics.status_code == 200 and "whopfunnel_database_up 0.0" in metrics.text


def test_each_manager_counts_its_own_metrics(make_pm):
    first, second = make_pm(), make_pm()
    first.hook.on_member_join(event=MemberJoined(experience_id="exp_1", user_id="user_1",
                                                 company_id="biz_1"))

    def joins(pm):
        with client(pm) as web:
            answer = web.get("/metrics")
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                if sample.name == "whopfunnel_joins_total":
                    return sample.value
        return 0.0

    assert (joins(first), joins(second)) == (1.0, 0.0)
    assert first.runtime.activity.metrics.registry is not second.runtime.activity.metrics.registry


def test_text_and_json_lines_are_redacted_whole():
    secret, stream = "apik_s3cr3tvalue", io.StringIO()
    restore = logs.configure("INFO", "json", secrets=[secret], stream=stream)
    try:
        log = logging.getLogger("whopfunnel.test")
        log.info("key %s in mysql://root:hunter2@db/x", secret, extra={"tenant": "exp_1", "ms": 1.5})
        try:
            raise RuntimeError(secret)
        except RuntimeError:
            log.exception("failed")
        log.debug("not shown at INFO")
    finally:
        restore()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["key *** in mysql://root:***@db/x", "failed"]
    assert (lines[0]["tenant"], lines[0]["ms"], lines[0]["level"]) == ("exp_1", 1.5, "INFO")
    assert "RuntimeError: ***" in lines[1]["exc_info"]
    assert secret not in stream.getvalue() and "hunter2" not in stream.getvalue()
    assert not [h for h in logging.getLogger().handlers if getattr(h, "_whopfunnel", False)]
