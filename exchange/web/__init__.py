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

from exchange.services import Exchange

STATIC = Path(__file__).parent / "static"


def install(exchange: Exchange) -> None:
    """Register the web package's services and its alert e-mails (hook and sender loop)."""
    from exchange.web.alerts import install as install_alerts
    from exchange.web.routes import Web

    exchange.extensions["web"] = Web()
    install_alerts(exchange)


def mount(app) -> None:  # noqa: ANN001
    """Mount the pages, their static files and their security headers on the FastAPI app (exchange.app)."""
    from fastapi import Request
    from fastapi.staticfiles import StaticFiles

    from exchange.web import security
    from exchange.web.routes import install_handlers, router

    @app.middleware("http")
    async def _headers(request: Request, call_next):  # noqa: ANN001, ANN202
        response = await call_next(request)
        if request.url.path.startswith("/web"):
            for name, value in security.HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    install_handlers(app)
    app.mount("/web/static", StaticFiles(directory=str(STATIC)), name="web-static")
    app.include_router(router)
