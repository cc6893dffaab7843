"""The web pages' HTTP layer: sign-in, quick exit, the inbox, a referral, the referral form, the auditor's view.

Thin: check the session (and the CSRF token on every POST), call the domain as the signed-in person, render.
Nothing about a survivor goes into a URL: referrals are addressed by the Task's random id, and every form that
carries her details is a POST.
"""
from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from exchange.context import RequestContext
from exchange.errors import FhirError, Gone, NotFound, PreconditionFailed, Unauthorized
from exchange.fhir.interactions import update
from exchange.referral import reoffer as reoffer_op
from exchange.store.clock import utcnow
from exchange.kernel.unit import Event, Failure, open_unit, record_failure
from exchange.web import accounts, actions, audit_view, inbox, sender, security, sessions
from exchange.web.i18n import LOCALES
from exchange.web.pages import LANG_COOKIE, render

router = APIRouter(prefix="/web", include_in_schema=False)
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
LOGIN_COOKIE = "login-csrf"
SESSION_COOKIE = "session"
STAFF_ROLES = ("caseworker", "supervisor")


@dataclass
class Web:
    """The web package's per-exchange services; tests replace the clock and the sleep (no sleeping tests)."""
    clock: Callable[[], datetime] = utcnow
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)


def web_of(request: Request) -> Web:
    return request.app.state.exchange.extensions["web"]


class Redirect(Exception):
    def __init__(self, url: str):
        super().__init__(url)
        self.url = url


class NotHere(Exception):
    """The page does not exist for this person (wrong role): the same 404 page as a missing one."""


class FormRefused(Exception):
    """A POST without this session's CSRF token, or from another site."""


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _settings(request: Request):  # noqa: ANN202
    return request.app.state.exchange.settings


def _cookie(request: Request, name: str) -> str | None:
    return request.cookies.get(security.cookie_name(_settings(request), name))


async def current(request: Request) -> sessions.Session | None:
    return await sessions.load(request.app.state.exchange, _cookie(request, SESSION_COOKIE), web_of(request).clock())


async def need(request: Request, *roles: str) -> sessions.Session:
    session = await current(request)
    if session is None:
        raise Redirect("/web/login")
    if roles and session.staff.role not in roles:
        raise NotHere()
    return session


def context_of(request: Request, session: sessions.Session) -> RequestContext:
    return session.staff.context(request.client.host if request.client else None,
                                 getattr(request.state, "request_id", None))


async def form_of(request: Request, session: sessions.Session | None, expected: str | None = None) -> dict:
    """The POSTed fields, after checking the CSRF token (the session's, or `expected` before sign-in)."""
    if not security.same_origin(_settings(request), request.headers.get("origin")):
        raise FormRefused()
    data = await request.form()
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    token = expected if session is None else session.csrf
    submitted = fields.get("csrf")
    if not token or not submitted or not secrets.compare_digest(token, submitted):
        raise FormRefused()
    return fields


def install_handlers(app) -> None:  # noqa: ANN001
    @app.exception_handler(Redirect)
    async def _redirect(_request: Request, exc: Redirect) -> Response:
        return see_other(exc.url)

    @app.exception_handler(NotHere)
    async def _not_here(request: Request, _exc: NotHere) -> Response:
        return render(request, "notfound.html", await current(request), status=404)

    @app.exception_handler(FormRefused)
    async def _refused(request: Request, _exc: FormRefused) -> Response:
        return render(request, "expired.html", await current(request), status=403)


# --- signing in and out ------------------------------------------------------------------------------------------

def _login_page(request: Request, error: bool = False, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", None, status=status, login_csrf=token, error=error)
    settings = _settings(request)
    response.set_cookie(security.cookie_name(settings, LOGIN_COOKIE), token, max_age=3600,
                        **security.cookie_flags(settings))
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    if await current(request) is not None:
        return see_other("/web/")
    return _login_page(request)


def _anonymous(request: Request) -> RequestContext:
    return RequestContext(client_id=accounts.WEB_CLIENT, organization_id=None, role="anonymous",
                          remote_addr=request.client.host if request.client else None,
                          request_id=getattr(request.state, "request_id", None))


@router.post("/login")
async def login(request: Request) -> Response:
    exchange = request.app.state.exchange
    web = web_of(request)
    fields = await form_of(request, None, _cookie(request, LOGIN_COOKIE))
    now = web.clock()
    try:
        staff = await accounts.authenticate(exchange, fields.get("username", ""), fields.get("password", ""),
                                            fields.get("code", ""), now)
    except accounts.SignInRefused as refused:
        ctx = refused.staff.context(*_addr(request)) if refused.staff else _anonymous(request)
        await record_failure(exchange, Failure(ctx, "login", None, None, Unauthorized("sign-in refused")))
        await web.sleep(exchange.settings.web_failure_delay_seconds * min(refused.failures, 5))
        return _login_page(request, error=True, status=401)
    session = await sessions.start(exchange, staff, now)
    async with open_unit(exchange, staff.context(*_addr(request)), "login") as unit:
        unit.record(Event("login", "E", "Organization", staff.organization_id))
    response = see_other("/web/")
    settings = exchange.settings
    response.set_cookie(security.cookie_name(settings, SESSION_COOKIE), session.token,
                        max_age=settings.web_session_absolute_seconds, **security.cookie_flags(settings))
    response.delete_cookie(security.cookie_name(settings, LOGIN_COOKIE), **security.cookie_flags(settings))
    return response


def _addr(request: Request) -> tuple[str | None, str | None]:
    return (request.client.host if request.client else None, getattr(request.state, "request_id", None))


async def _end(request: Request, session: sessions.Session | None) -> None:
    exchange = request.app.state.exchange
    if session is None:
        return
    await sessions.end(exchange, session.token)
    async with open_unit(exchange, context_of(request, session), "logout") as unit:
        unit.record(Event("logout", "E", "Organization", session.staff.organization_id))


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = await need(request)
    await form_of(request, session)
    await _end(request, session)
    return see_other("/web/login")


@router.get("/exit")
async def quick_exit(request: Request) -> Response:
    """Leave at once: end the session, clear this site's cookies and cache, go to a neutral page. A GET link (it
    must work from any page without JavaScript); its only effect is to sign the person out."""
    await _end(request, await current(request))
    settings = _settings(request)
    response = RedirectResponse(settings.web_exit_url, status_code=303)
    response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
    for name in (SESSION_COOKIE, LOGIN_COOKIE):
        response.delete_cookie(security.cookie_name(settings, name), **security.cookie_flags(settings))
    return response


@router.get("/lang/{locale}")
async def choose_language(locale: str, request: Request) -> Response:
    response = see_other("/web/")
    if locale in LOCALES:
        response.set_cookie(LANG_COOKIE, locale, max_age=365 * 86400, **security.cookie_flags(_settings(request)))
    return response


@router.get("/")
async def home(request: Request) -> Response:
    session = await need(request)
    return see_other("/web/audit" if session.staff.role == "auditor" else "/web/inbox")


# --- the inbox and a referral -----------------------------------------------------------------------------------

@router.get("/inbox")
async def inbox_page(request: Request) -> Response:
    session = await need(request, *STAFF_ROLES)
    found = await inbox.inbox(request.app.state.exchange, context_of(request, session), web_of(request).clock())
    return render(request, "inbox.html", session, inbox=found)


async def _referral_page(request: Request, session: sessions.Session, task_id: str, message: str | None = None,
                         status: int = 200) -> Response:
    exchange = request.app.state.exchange
    if not _ID.match(task_id):
        return render(request, "notfound.html", session, status=404)
    try:
        found = await inbox.referral(exchange, context_of(request, session), task_id, web_of(request).clock())
    except (NotFound, Gone):
        return render(request, "notfound.html", session, status=404)
    offers = await sender.find_services(exchange, context_of(request, session), {"service_type": found.service or ""}) \
        if actions.BY_NAME["reoffer"] in found.actions else []  # the services with room a re-offer may go to
    return render(request, "referral.html", session, ref=found, message=message, status=status, offers=offers)


@router.get("/referral/{task_id}")
async def referral_page(task_id: str, request: Request) -> Response:
    session = await need(request, *STAFF_ROLES)
    return await _referral_page(request, session, task_id)


@router.post("/referral/{task_id}")
async def referral_action(task_id: str, request: Request) -> Response:
    session = await need(request, *STAFF_ROLES)
    fields = await form_of(request, session)
    exchange = request.app.state.exchange
    ctx = context_of(request, session)
    now = web_of(request).clock()
    if not _ID.match(task_id):
        return render(request, "notfound.html", session, status=404)
    try:
        found = await inbox.referral(exchange, ctx, task_id, now)
    except (NotFound, Gone):
        return render(request, "notfound.html", session, status=404)
    action = actions.BY_NAME.get(fields.get("action", ""))
    text = fields.get("text", "").strip()
    version = fields.get("version", "")
    if version != str(found.version):  # the form was made from an older version: show the referral as it is now
        return await _referral_page(request, session, task_id, "changed", 412)
    if action is None or action not in found.actions:
        return await _referral_page(request, session, task_id, "not-allowed", 409)
    if action.needs == "provider":
        return await _reoffer(request, session, ctx, task_id, fields.get("to", ""))
    code = fields.get("code", "")
    if action.needs in actions.CODED and code not in actions.choices(action):
        return await _referral_page(request, session, task_id, f"needs-{action.needs}", 422)
    if action.needs in ("outcome", "note") and not text:
        return await _referral_page(request, session, task_id, f"needs-{action.needs}", 422)
    claim = f"Organization/{ctx.organization_id}" if action.to == "accepted" and not found.task.get("owner") \
        else None
    body = actions.apply(found.task, action, text, claim, now, code if action.needs in actions.CODED else None)
    try:
        await update.update(exchange, ctx, "Task", task_id, body, f'W/"{version}"')
    except PreconditionFailed:
        return await _referral_page(request, session, task_id, "changed", 412)
    except (NotFound, Gone):
        return render(request, "notfound.html", session, status=404)
    except FhirError as error:
        return await _referral_page(request, session, task_id, "refused", error.status)
    return see_other(f"/web/referral/{task_id}")


async def _reoffer(request: Request, session: sessions.Session, ctx: RequestContext, task_id: str, to: str
                   ) -> Response:
    """Offer a declined, cancelled or failed referral again: to the chosen service, or (none chosen) to the
    other providers it was sent to; the operation decides (`exchange.referral.reoffer`)."""
    if to and not _ID.match(to):
        return await _referral_page(request, session, task_id, "not-allowed", 422)
    params: dict = {"resourceType": "Parameters"}
    if to:
        params["parameter"] = [{"name": "owner", "valueReference": {"reference": f"HealthcareService/{to}"}}]
    try:
        result = await reoffer_op.reoffer(request.app.state.exchange, ctx, task_id, params)
    except (NotFound, Gone):
        return render(request, "notfound.html", session, status=404)
    except FhirError as error:
        return await _referral_page(request, session, task_id, "refused", error.status)
    return see_other(f"/web/referral/{result.stored.id}")


# --- the referral form (sender) ---------------------------------------------------------------------------------

async def _send_page(request: Request, session: sessions.Session, fields: dict | None, error: str | None = None,
                     status: int = 200) -> Response:
    """The form: the search (with the directory's areas), and once searched, the matching services and the rest."""
    exchange, ctx = request.app.state.exchange, context_of(request, session)
    found = await sender.find_services(exchange, ctx, fields) if fields is not None else None
    return render(request, "send.html", session, choices=sender.choices(), areas=await sender.areas(exchange, ctx),
                  services=found, values=fields or {}, error=error, status=status)


@router.get("/send")
async def send_form(request: Request) -> Response:
    return await _send_page(request, await need(request, *STAFF_ROLES), None)


@router.post("/send/find")
async def send_find(request: Request) -> Response:
    session = await need(request, *STAFF_ROLES)
    return await _send_page(request, session, await form_of(request, session))


@router.post("/send")
async def send(request: Request) -> Response:
    session = await need(request, *STAFF_ROLES)
    fields = await form_of(request, session)
    try:
        task_id = await sender.send(request.app.state.exchange, context_of(request, session), fields,
                                    web_of(request).clock())
    except sender.FormError as error:
        return await _send_page(request, session, fields, error.field, 422)
    except FhirError as error:
        return await _send_page(request, session, fields, "refused", error.status)
    return see_other(f"/web/referral/{task_id}")


# --- the auditor's view ---------------------------------------------------------------------------------------

def _filters(request: Request) -> audit_view.Filters:
    return audit_view.Filters.from_query(dict(request.query_params))


@router.get("/audit")
async def audit_page(request: Request) -> Response:
    session = await need(request, "auditor")
    filters = _filters(request)
    exchange = request.app.state.exchange
    try:
        page = await audit_view.search(exchange, context_of(request, session), filters)
    except FhirError:
        page = None
    return render(request, "audit.html", session, filters=filters, page=page, verdict=None, checkpoint=None,
                  status=200 if page is not None else 400)


@router.post("/audit/verify")
async def audit_verify(request: Request) -> Response:
    session = await need(request, "auditor")
    await form_of(request, session)
    exchange = request.app.state.exchange
    ctx = context_of(request, session)
    verdict, checkpoint = await audit_view.verify(exchange, ctx)
    filters = audit_view.Filters()
    page = await audit_view.search(exchange, ctx, filters)
    return render(request, "audit.html", session, filters=filters, page=page, verdict=verdict,
                  checkpoint=checkpoint)


@router.get("/audit/export.csv")
async def audit_csv(request: Request) -> Response:
    session = await need(request, "auditor")
    rows = await audit_view.export_rows(request.app.state.exchange, context_of(request, session), _filters(request))
    return Response(audit_view.to_csv(rows), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="exchange-log.csv"'})


@router.get("/audit/report.pdf")
async def audit_pdf(request: Request) -> Response:
    session = await need(request, "auditor")
    filters = _filters(request)
    rows = await audit_view.export_rows(request.app.state.exchange, context_of(request, session), filters)
    return Response(audit_view.to_pdf(rows, filters), media_type="application/pdf", headers={
        "Content-Disposition": 'attachment; filename="exchange-log.pdf"'})


@router.get("/{rest:path}")
async def unknown_page(rest: str, request: Request) -> Response:
    return render(request, "notfound.html", await current(request), status=404)
