"""JSON request logs (exchange.ops.logs): one line per request with the route template, status, duration, client
id and request id, and never a query value or a body."""
from __future__ import annotations

import io
import logging

import orjson

from exchange.ops.logs import JsonFormatter, configure_logging
from tests.notify.referrals import SURVIVOR_NAME, create_referral

REQUEST_ID = "0b6f2d1e-8c4a-4f1e-9a57-3c2d1e0f9a88"


async def test_json_access_lines_carry_the_route_template_and_ids_but_no_values(orgs, partner, settings):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("exchange.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        hotline = await partner(orgs["hotline"])
        referral = await create_referral(hotline, orgs["hotline"], orgs["shelter"])
        searched = await hotline.get("/Patient", params={"name": SURVIVOR_NAME},
                                     headers={"X-Request-ID": REQUEST_ID})
        assert searched.status_code == 200
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all(set(line) == {"time", "level", "logger", "method", "route", "status", "duration_ms",
                                       "client_id", "request_id"} for line in lines)
    search = [line for line in lines if line["request_id"] == REQUEST_ID]
    assert len(search) == 1
    assert search[0]["route"] == "/fhir/{resource_type}" and search[0]["method"] == "GET"
    assert search[0]["status"] == 200 and search[0]["client_id"] == hotline.client_id
    assert isinstance(search[0]["duration_ms"], float) and search[0]["time"].endswith("Z")
    created = [line for line in lines if line["method"] == "POST" and line["status"] == 201]
    assert len(created) == 4 and all(line["client_id"] == hotline.client_id for line in created)
    raw = stream.getvalue()
    for secret in (SURVIVOR_NAME, "Zahra", referral["patient"]["id"], referral["task"]["id"], "HL-2024-0042"):
        assert secret not in raw


def test_configure_logging_writes_every_record_as_one_json_object(settings):
    stream = io.StringIO()
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        configure_logging(settings.model_copy(update={"log_format": "json"}), stream)
        logging.getLogger("exchange.custody").warning("generated a key at %s", "/var/x")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in before[0]:
            root.addHandler(h)
        root.setLevel(before[1])
    [line] = [orjson.loads(x) for x in stream.getvalue().splitlines()]
    assert line["level"] == "warning" and line["logger"] == "exchange.custody"
    assert line["message"] == "generated a key at /var/x"
