"""What every web page carries: security headers, the session cookie's flags, and the CSRF checks.

- Content-Security-Policy without inline script or style (only this site's own files), no framing, no referrer, no
  caching (a shared phone's back button or cache must not show a referral after quick exit).
- The session cookie is HttpOnly, SameSite=Strict and Secure, except on plain http to a loopback host (development
  and tests), where browsers would drop a Secure cookie; then it loses the `__Host-` prefix, which needs Secure.
- Every form carries the session's CSRF token; sign-in (no session yet) uses a double-submit cookie. A POST whose
  Origin names another site is refused as well (`null`, which no-referrer pages send, says nothing).
"""
from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

from exchange.settings import Settings

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def secure_cookies(settings: Settings) -> bool:
    parts = urlsplit(settings.base_url)
    return not (parts.scheme == "http" and _loopback(parts.hostname or ""))


def cookie_name(settings: Settings, name: str) -> str:
    return f"__Host-{name}" if secure_cookies(settings) else name


def cookie_flags(settings: Settings) -> dict:
    return {"httponly": True, "samesite": "strict", "secure": secure_cookies(settings), "path": "/"}


def same_origin(settings: Settings, origin: str | None) -> bool:
    """A POST from this site, or one whose browser sent no usable Origin: with `Referrer-Policy: no-referrer`
    browsers send `Origin: null` on form posts, so then the CSRF token and the SameSite cookie decide alone."""
    if not origin or origin == "null":
        return True
    mine, theirs = urlsplit(settings.base_url), urlsplit(origin)
    return (mine.scheme, mine.netloc) == (theirs.scheme, theirs.netloc)
