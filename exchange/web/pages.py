"""Rendering: one Jinja environment per locale (gettext from the catalogues), autoescaped HTML, the page frame."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from exchange.referral import codes
from exchange.web import actions, i18n
from exchange.web.sessions import Session

TEMPLATES = Path(__file__).parent / "templates"
LANG_COOKIE = "lang"


@lru_cache(maxsize=None)
def environment(locale: str) -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.globals["choices_of"] = actions.choices
    env.globals["reason_name"] = lambda code: _reason_name(code, locale)
    return env


def _reason_name(code: str | None, locale: str) -> str:
    """A reason's or milestone's name in the page's language, from the published CodeSystem's designations."""
    if not code:
        return ""
    return codes.display(codes.REFERRAL_OUTCOME, code, locale) or codes.display(codes.REFERRAL_CODES, code, locale) \
        or code


def locale_of(request: Request, session: Session | None) -> str:
    """The language chosen on this browser, else the person's own, else the browser's, else the deployment's."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in i18n.LOCALES:
        return chosen
    if session is not None and session.staff.locale in i18n.LOCALES:
        return session.staff.locale
    return i18n.negotiate(request.headers.get("accept-language"),
                          request.app.state.exchange.settings.web_default_locale)


def render(request: Request, template: str, session: Session | None = None, status: int = 200,
           **context) -> HTMLResponse:
    settings = request.app.state.exchange.settings
    locale = locale_of(request, session)
    env = environment(locale)
    page = env.get_template(template).render(
        locale=locale, dir=i18n.direction(locale), fmt=i18n.Formats(locale, settings.web_timezone),
        session=session, csrf=session.csrf if session else None, **context)
    return HTMLResponse(page, status_code=status)
