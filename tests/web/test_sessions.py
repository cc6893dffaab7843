"""Sessions, CSRF, quick exit and the headers every page carries."""
from __future__ import annotations

import pytest

from exchange.web import security
from tests.web.conftest import web_settings

HEADERS = {"content-security-policy", "referrer-policy", "cache-control", "x-content-type-options"}


async def test_a_session_ends_after_the_idle_time_out(web_world, browser, clock, settings):
    page = browser()
    await page.sign_in(web_world.people["shelter"])
    clock.advance(settings.web_session_idle_seconds - 1)
    assert (await page.get("/web/inbox")).status_code == 200  # used in time: the idle clock starts again
    clock.advance(settings.web_session_idle_seconds - 1)
    assert (await page.get("/web/inbox")).status_code == 200
    clock.advance(settings.web_session_idle_seconds)
    assert (await page.get("/web/inbox")).headers["location"] == "/web/login"


async def test_a_session_ends_after_the_absolute_time_out_however_busy(web_world, browser, clock, settings):
    page = browser()
    await page.sign_in(web_world.people["shelter"])
    step = settings.web_session_idle_seconds - 60
    used = 0  # seconds since the session started
    while used + step < settings.web_session_absolute_seconds:
        clock.advance(step)
        used += step
        assert (await page.get("/web/inbox")).status_code == 200
    clock.advance(settings.web_session_absolute_seconds - used)
    assert (await page.get("/web/inbox")).headers["location"] == "/web/login"


async def test_every_form_needs_the_session_csrf_token(web_world, browser, send_referral_ids):
    page = browser()
    await page.sign_in(web_world.people["shelter"])
    task = f"/web/referral/{send_referral_ids['Task']}"
    await page.get(task)
    good = page.csrf
    for path, data in ((task, {"action": "accept", "version": "1"}), ("/web/send/find", {}), ("/web/send", {}),
                       ("/web/logout", {})):
        for token in (None, "forged-" + good):
            response = await page.post(path, data if token is None else {**data, "csrf": token}, csrf=False)
            assert response.status_code == 403 and 'id="form-expired"' in response.text, path
    cross_site = await page.post(task, {"action": "accept", "version": "1"}, headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert 'id="task-status">New<' in (await page.get(task)).text  # nothing was changed
    login = browser()
    await login.get("/web/login")
    person = web_world.people["hotline"]
    refused = await login.post("/web/login", {"username": person.username, "password": person.password,
                                              "code": person.code(page.clock.now), "csrf": "not-the-cookie"},
                               csrf=False)
    assert refused.status_code == 403


async def test_quick_exit_leaves_to_a_neutral_page_and_ends_the_session(web_world, browser, settings):
    page = browser()
    await page.sign_in(web_world.people["shelter"])
    token = page.http.cookies.get("session")
    response = await page.get("/web/exit")
    assert response.status_code == 303 and response.headers["location"] == settings.web_exit_url
    assert response.headers["clear-site-data"] == '"cache", "cookies", "storage"'
    assert any(v.startswith('session="";') or v.startswith("session=;") for k, v in response.headers.multi_items()
               if k == "set-cookie")
    page.http.cookies.set("session", token)  # even a copy of the old cookie opens nothing now
    assert (await page.get("/web/inbox")).headers["location"] == "/web/login"


async def test_every_page_carries_the_security_headers_and_a_quick_exit(web_world, browser, send_referral_ids):
    page = browser()
    anonymous = [await page.get(p) for p in ("/web/login", "/web/static/style.css", "/web/no-such-page")]
    await page.sign_in(web_world.people["shelter"])
    pages = [await page.get(p) for p in ("/web/inbox", f"/web/referral/{send_referral_ids['Task']}", "/web/send",
                                         "/web/referral/unknown")]
    for response in anonymous + pages:
        assert HEADERS <= set(response.headers), response.url
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp and "script-src 'self'" in csp
    for response in anonymous[::2] + pages:
        assert 'id="quick-exit" href="/web/exit"' in response.text and "<script>" not in response.text


@pytest.mark.parametrize("base, secure", [("https://exchange.example.org", True), ("http://127.0.0.1:8080", False),
                                          ("http://exchange.example.org", True)])
def test_cookies_are_secure_except_on_loopback_http(tmp_path, base, secure):
    settings = web_settings("sqlite+aiosqlite://", tmp_path, public_base_url=base)
    assert security.cookie_flags(settings)["secure"] is secure
    assert security.cookie_name(settings, "session") == ("__Host-session" if secure else "session")
