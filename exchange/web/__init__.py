"""The web inbox (issue 15): server-rendered pages for caseworkers of organisations without software of their own,
and an auditor's view of the log, in English and Arabic.

Every web action is an interaction of the exchange, made with a request context whose agent is the signed-in
person and their organisation (`accounts.Staff.context`): the same access rules, referral rules and audit as the
API. Modules: `tables` (staff, sessions, alerts), `accounts` (staff, passwords, TOTP, lock-out), `sessions`,
`security` (headers, cookies, CSRF), `i18n` and `pages` (catalogues, rendering), `inbox`, `actions`, `sender`,
`audit_view`, `alerts` (e-mail without survivor data), `routes` (HTTP), `cli` (`exchange staff`).
"""
from __future__ import annotations

from pathlib import Path

from exchange.kernel.exchange import Exchange

STATIC = Path(__file__).parent / "static"


def install(exchange: Exchange) -> None:
    """Register the web package's services and its alert e-mails (hook and sender loop)."""
    from exchange.web.alerts import install as install_alerts
    from exchange.web.routes import Web

    exchange.extensions["web"] = Web()
    install_alerts(exchange)


def mount(app) -> None:  # noqa: ANN001
    """Mount the pages, their static files and their security headers on the FastAPI app (exchange.main.create_app)."""
    from fastapi.staticfiles import StaticFiles

    from exchange.web.routes import install_handlers, router

    app.add_middleware(WebHeaders)
    install_handlers(app)
    app.mount("/web/static", StaticFiles(directory=str(STATIC)), name="web-static")
    app.include_router(router)


class WebHeaders:
    """The pages' security headers (`security.HEADERS`) on every response under /web, unless the page set its own.
    A plain ASGI layer: other paths (the FHIR API) pass straight through, at no cost per request."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or not scope["path"].startswith("/web"):
            await self.app(scope, receive, send)
            return
        from exchange.web.security import HEADERS

        async def send_with_headers(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in HEADERS.items()
                            if k.lower().encode("latin-1") not in present]
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
