"""Alert e-mails without survivor data, through a real SMTP server on loopback (aiosmtpd): a new referral, an
answer, an overdue referral; each once, even from two senders; nothing for a refused change; a relay that is down is
tried again later."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from exchange.referral.overdue import sweep_overdue
from exchange.web.alerts import send_pending
from tests.referral import world
from tests.serving import free_port
from tests.web.conftest import send_referral, web_settings

SMTP_PORT = free_port()  # a fixed one collides with the other pytest-xdist worker and other servers on the machine


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def settings(database_url: str, tmp_path: Path):
    return web_settings(database_url, tmp_path, smtp_host="127.0.0.1", smtp_port=SMTP_PORT, smtp_starttls=False,
                        mail_from="exchange@exchange.example", public_base_url="https://exchange.example")


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    yield inbox
    controller.stop()


async def _email(client, org_id: str, address: str) -> None:  # noqa: ANN001
    org = (await client.get(f"/Organization/{org_id}")).json()
    org["telecom"] = [{"system": "email", "value": address}]
    assert (await client.put(f"/Organization/{org_id}", json=org)).status_code == 200


async def test_alerts_say_only_that_there_is_something_to_see(web_world, client, make_client, exchange, smtp):
    ids = web_world.ids
    await _email(client, ids["shelter"], "referrals@shelter.example")
    await _email(client, ids["hotline"], "referrals@hotline.example")
    hotline = await make_client(ids["hotline"])
    created = await send_referral(hotline, ids)
    shelter = await make_client(ids["shelter"])
    task = (await shelter.get(f"/Task/{created['Task']}")).json()
    refused = await shelter.put(f"/Task/{task['id']}", json={**task, "status": "completed"})
    assert refused.status_code == 409  # a refused change rolls back: no alert
    assert sum(await asyncio.gather(send_pending(exchange), send_pending(exchange))) == 1  # claimed: sent once
    assert (await shelter.put(f"/Task/{task['id']}", json={**task, "status": "accepted"})).status_code == 200
    assert await sweep_overdue(exchange, datetime(2027, 1, 1, tzinfo=timezone.utc)) == 1
    assert await send_pending(exchange) == 3
    assert await send_pending(exchange) == 0  # each alert is sent once
    sent = [(to, mail["Subject"], mail.get_payload()) for to, mail in smtp.messages]
    assert [(to, subject) for to, subject, _ in sent] == [
        (["referrals@shelter.example"], "New referral"), (["referrals@hotline.example"], "A referral was answered"),
        (["referrals@shelter.example"], "A referral is overdue"),  # the owner reminded, the requester told
        (["referrals@hotline.example"], "A referral is overdue")]
    survivor = (created["Task"], created["Patient"], world.CODE_WORD, world.SAFE_PHONE, "HTL-", "Shelter", "Amal")
    for _to, _subject, body in sent:
        assert "https://exchange.example/web/" in body
        assert not any(value in body for value in survivor)


async def test_a_relay_that_is_down_is_tried_again(web_world, client, make_client, exchange):
    ids = web_world.ids
    await _email(client, ids["shelter"], "referrals@shelter.example")
    await send_referral(await make_client(ids["hotline"]), ids)
    assert await send_pending(exchange) == 0  # nothing listens on the port yet
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    try:
        assert await send_pending(exchange) == 1
    finally:
        controller.stop()
    assert [to for to, _mail in inbox.messages] == [["referrals@shelter.example"]]
