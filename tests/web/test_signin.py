"""People, not clients: staff accounts, argon2 passwords, TOTP for everyone, lock-out with a delay, and the audit."""
from __future__ import annotations

from sqlalchemy import select

from exchange.web.tables import web_staff


async def test_password_and_totp_sign_in_sets_a_strict_httponly_session_cookie(web_world, browser, exchange):
    person = web_world.people["shelter"]
    page = browser()
    response = await page.sign_in(person)
    assert response.status_code == 303 and response.headers["location"] == "/web/"
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback (tests, development) only
    inbox = await page.get("/web/inbox")
    assert inbox.status_code == 200 and "<h1>Inbox</h1>" in inbox.text
    async with exchange.db.engine.connect() as conn:
        stored = (await conn.execute(select(web_staff.c.password_hash).where(web_staff.c.id == person.id))).scalar()
    assert stored.startswith("$argon2id$") and person.password not in stored


async def test_a_right_password_without_the_right_code_is_refused(web_world, browser, clock):
    person = web_world.people["shelter"]
    page = browser()
    wrong = str((int(person.code(clock.now)) + 1) % 1_000_000).zfill(6)
    response = await page.sign_in(person, code=wrong)
    assert response.status_code == 401 and 'id="signin-error"' in response.text
    assert (await page.get("/web/inbox")).headers["location"] == "/web/login"


async def test_a_totp_code_is_accepted_once(web_world, browser, clock):
    person = web_world.people["shelter"]
    first, second = browser(), browser()
    assert (await first.sign_in(person)).status_code == 303
    await second.get("/web/login")
    replay = await second.post("/web/login", {"username": person.username, "password": person.password,
                                              "code": person.code(clock.now)})
    assert replay.status_code == 401


async def test_repeated_failures_lock_the_account_with_a_growing_delay(web_world, browser, clock, sleeps, settings):
    person = web_world.people["shelter"]
    page = browser()
    for _ in range(settings.web_lockout_failures):
        assert (await page.sign_in(person, password="not the password")).status_code == 401
    assert sleeps == [1.0, 2.0, 3.0, 4.0, 5.0]
    locked = await page.sign_in(person)  # the right password and code, but the account is locked
    assert locked.status_code == 401
    clock.advance(settings.web_lockout_seconds)
    assert (await page.sign_in(person)).status_code == 303


async def test_unknown_and_disabled_accounts_get_the_same_refusal(web_world, browser, exchange):
    from exchange.web import accounts

    person = web_world.people["shelter"]
    page = browser()
    assert (await page.sign_in(person)).status_code == 303
    await accounts.set_active(exchange, person.username, False)
    assert (await page.get("/web/inbox")).headers["location"] == "/web/login"  # its session ended at once
    disabled = await page.sign_in(person)
    unknown = await browser().sign_in(type(person)("nobody.here", person.organization_id, "caseworker",
                                                   person.secret))
    assert disabled.status_code == unknown.status_code == 401
    assert 'id="signin-error"' in disabled.text and 'id="signin-error"' in unknown.text


async def test_sign_ins_are_in_the_log_with_the_person_and_refusals_too(web_world, browser, client):
    person = web_world.people["shelter"]
    await browser().sign_in(person, password="not the password")
    await browser().sign_in(person)
    bundle = (await client.get("/AuditEvent", params={"subtype": "110122", "_sort": "date"})).json()
    events = [e["resource"] for e in bundle["entry"]]
    assert [(e["outcome"], e["agent"][0].get("altId")) for e in events] == [
        ("4", f"staff/{person.id}"), ("0", f"staff/{person.id}")]
    assert events[1]["agent"][0]["who"] == {"reference": f"Organization/{person.organization_id}"}
