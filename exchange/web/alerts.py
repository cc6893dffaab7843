"""Alert e-mails without survivor data: "you have a new referral; sign in", to the organisation's referral address.

When a referral Task arrives (created, or addressed to providers who may claim it), is answered by its owner (any
status change the owner makes) or falls overdue (the sweep marks it), and when a referral is made under the
emergency exception (to the deployment's coordinating organisation, `EXCHANGE_COORDINATING_ORGANIZATION`), a row goes into `web_alert` in the same
transaction as the change (a rolled-back change alerts nobody; a committed one is never forgotten). A loop in the
server sends pending rows through the configured SMTP relay (aiosmtplib). The message names no referral, survivor,
service or organisation: only that there is something to look at, and where to sign in. The address is the
Organization's `telecom` e-mail in the directory, read when sending. Each server claims an alert (a conditional
UPDATE) before sending it, so with several servers each alert goes out once (at most once if one dies mid-send).
"""
from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage

import aiosmtplib
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.need_to_know.organisations import organisations_of
from exchange.fhir.references import references_in, split_reference
from exchange.referral import codes, escalation
from exchange.kernel.exchange import Exchange
from exchange.store.clock import to_db, utcnow
from exchange.store.repository import Repository
from exchange.kernel.unit import Failure, Unit
from exchange.web.tables import web_alert

log = logging.getLogger("exchange.web.alerts")
MAX_ATTEMPTS = 10
BATCH = 50
SUBJECTS = {"new": "New referral", "answered": "A referral was answered", "overdue": "A referral is overdue",
            "escalated": "A referral was escalated to you", "reroute": "A re-route awaits your agreement",
            "emergency": "A referral was made under the emergency exception"}
BODIES = {"new": "You have a new referral.", "answered": "One of your referrals has an answer.",
          "overdue": "A referral is overdue.",
          "escalated": "A referral is overdue and was escalated to your organisation as the coordinating "
                       "organisation (GET /coordination/referrals).",
          "reroute": "The coordinating organisation proposes to send one of your referrals to another provider; "
                     "it waits for your agreement.",
          "emergency": "A partner made a referral without the survivor's consent because her life was at risk (the "
                       "emergency exception). Your auditors find it in the exchange log (AuditEvent subtype "
                       "emergency-exception, or `exchange audit emergencies`)."}
EMERGENCY_EVENT = "emergency-exception"  # the event exchange.referral.emergency records


def _overdue(task: dict) -> bool:
    return codes.OVERDUE in codes.codes_in(task.get("businessStatus"), codes.REFERRAL_CODES)


async def _receivers(repo: Repository, task: dict) -> set[str]:
    """The owner's organisation, or (an open referral) the providers its request names."""
    owners = await organisations_of(repo, references_in(task.get("owner")))
    if owners:
        return owners
    for reference in references_in(task.get("focus")):
        kind, rid = split_reference(reference) or ("", "")
        if kind == "ServiceRequest":
            request = await repo.read("ServiceRequest", rid)
            if request is not None and not request.deleted:
                return await organisations_of(repo, references_in(request.resource.get("performer")))
    return set()


async def alerts_for(unit: Unit) -> list[tuple[str, str]]:
    """(organisation id, kind) for each Task change of the unit that someone should hear about."""
    out: list[tuple[str, str]] = []
    coordinator = unit.exchange.settings.coordinating_organization
    for event in unit.events:
        if event.interaction == EMERGENCY_EVENT and coordinator:  # the coordinating organisation is told
            out.append((coordinator, "emergency"))
            continue
        if event.resource_type != "Task" or event.stored is None or event.action not in ("C", "U"):
            continue
        task = event.stored.resource
        before = event.previous.resource if event.previous is not None else None
        status = task.get("status")
        if before is None:
            if status == "requested":
                out += [(org, "new") for org in await _receivers(unit.repo, task)]
        elif before.get("status") == "draft" and status == "requested":
            out += [(org, "new") for org in await _receivers(unit.repo, task)]
        elif before.get("status") != status and unit.ctx.organization_id and \
                unit.ctx.organization_id in await organisations_of(unit.repo, references_in(task.get("owner"))):
            out += [(org, "answered") for org in await organisations_of(unit.repo, references_in(
                task.get("requester")))]
        elif escalation.rerouted_at(task) != escalation.rerouted_at(before):  # re-routed: new to its new owner
            out += [(org, "new") for org in await _receivers(unit.repo, task)]
        elif _overdue(task) and not _overdue(before):  # the owner is reminded, the requester told
            out += [(org, "overdue") for org in await _receivers(unit.repo, task)]
            out += [(org, "overdue") for org in await organisations_of(unit.repo, references_in(
                task.get("requester")))]
        elif escalation.escalated_to(task) and not escalation.escalated_to(before):
            coordinating = split_reference(escalation.escalated_to(task)) or ("", "")
            out.append((coordinating[1], "escalated"))
        elif escalation.proposed_owner(task) and escalation.proposed_owner(task) != escalation.proposed_owner(before):
            out += [(org, "reroute") for org in await organisations_of(unit.repo, references_in(
                task.get("requester")))]
    return list(dict.fromkeys(out))


class AlertHook:
    """A UnitHook: queue the unit's alerts in its own transaction (with its final flush: `Unit.add_rows`)."""

    async def before_commit(self, unit: Unit) -> None:
        found = await alerts_for(unit)
        if found:
            now = to_db(utcnow())
            await unit.add_rows(web_alert, [
                {"organization_id": org, "kind": kind, "created": now, "attempts": 0} for org, kind in found])

    async def on_failure(self, conn: AsyncConnection, failure: Failure) -> None:
        return None


def _address(organization: dict) -> str | None:
    for telecom in organization.get("telecom") or []:
        if telecom.get("system") == "email" and telecom.get("value"):
            return telecom["value"]
    return None


def message(exchange: Exchange, kind: str, to: str) -> EmailMessage:
    settings = exchange.settings
    mail = EmailMessage()
    mail["From"] = settings.mail_from
    mail["To"] = to
    mail["Subject"] = SUBJECTS[kind]
    mail.set_content(f"{BODIES[kind]}\nSign in to see it: {settings.base_url}/web/\n\n"
                     "This message holds no details on purpose.\n")
    return mail


async def send_pending(exchange: Exchange) -> int:
    """Send what is queued (one pass); returns how many e-mails went out. Without a relay, nothing is sent."""
    settings = exchange.settings
    if not settings.smtp_host:
        return 0
    async with exchange.db.engine.connect() as conn:
        rows = (await conn.execute(select(web_alert).where(web_alert.c.sent.is_(None),
                                                           web_alert.c.attempts < MAX_ATTEMPTS)
                                   .order_by(web_alert.c.id).limit(BATCH))).all()
        addresses: dict[str, str | None] = {}
        for org in {r.organization_id for r in rows}:
            found = await Repository(conn).read("Organization", org)
            addresses[org] = _address(found.resource) if found and not found.deleted else None
    sent = 0
    for row in rows:
        async with exchange.db.transaction() as conn:  # claim it: of several servers, one sends each alert
            claimed = await conn.execute(update(web_alert).where(web_alert.c.id == row.id, web_alert.c.sent.is_(None))
                                         .values(sent=to_db(utcnow())))
        to = addresses.get(row.organization_id)
        if claimed.rowcount != 1 or to is None:
            continue  # another server has it, or the organisation gives no address (nothing to send, ever)
        try:
            await aiosmtplib.send(message(exchange, row.kind, to), hostname=settings.smtp_host,
                                  port=settings.smtp_port, username=settings.smtp_username,
                                  password=settings.smtp_password, start_tls=settings.smtp_starttls,
                                  timeout=settings.smtp_timeout_seconds)
            sent += 1
        except (aiosmtplib.SMTPException, OSError) as error:
            log.warning("alert e-mail %s not sent: %s", row.id, type(error).__name__)
            async with exchange.db.transaction() as conn:  # give it back, for a later pass
                await conn.execute(update(web_alert).where(web_alert.c.id == row.id)
                                   .values(sent=None, attempts=row.attempts + 1))
    return sent


def install(exchange: Exchange) -> None:
    from exchange.jobs import every

    start, stop = every("web-alerts", lambda ex: ex.settings.web_alert_poll_seconds if ex.settings.smtp_host else 0,
                        send_pending)
    exchange.hooks.append(AlertHook())
    exchange.on_start.append(start)
    exchange.on_stop.append(stop)
