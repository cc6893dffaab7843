"""Languages of the web pages: gettext catalogues (Babel) per locale, the choice of locale, and locale formatting.

The catalogues live in `exchange/web/locale/<locale>/LC_MESSAGES/messages.po` with their compiled `.mo` committed
beside them (`make catalogues` re-extracts and recompiles). Arabic pages are right-to-left.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, format_timedelta, get_timezone
from babel.numbers import format_decimal
from babel.support import Translations

LOCALES = ("en", "ar")
RTL = frozenset({"ar"})
LOCALE_DIR = Path(__file__).parent / "locale"


@lru_cache(maxsize=None)
def translations(locale: str) -> Translations:
    return Translations.load(str(LOCALE_DIR), [locale], domain="messages")


def direction(locale: str) -> str:
    return "rtl" if locale in RTL else "ltr"


def negotiate(accept_language: str | None, default: str) -> str:
    """The first of LOCALES the browser asks for (Accept-Language, in its order), else `default`."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().replace("_", "-")
        if not tag:
            continue
        try:
            language = Locale.parse(tag, sep="-").language
        except (ValueError, UnknownLocaleError):
            continue
        if language in LOCALES:
            return language
    return default


class Formats:
    """Dates, durations and numbers as the locale writes them, in the deployment's time zone."""

    def __init__(self, locale: str, timezone: str):
        self.locale = locale
        self.tz = get_timezone(timezone)

    def when(self, value: datetime | None) -> str:
        return format_datetime(value, "medium", tzinfo=self.tz, locale=self.locale) if value else ""

    def age(self, value: timedelta | None) -> str:
        return format_timedelta(value, threshold=1.1, locale=self.locale) if value is not None else ""

    def number(self, value: int | float) -> str:
        return format_decimal(value, locale=self.locale)
