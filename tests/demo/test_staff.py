"""`make run` (exchange serve --demo) gives the web inbox demo accounts one can sign in with at once."""
from __future__ import annotations

from exchange.demo.clients import register_demo_clients
from exchange.demo.staff import register_demo_staff, staff_instructions
from tests.web.conftest import Person, browser, clock, settings  # noqa: F401  (the web inbox's fixtures)


async def test_demo_staff_accounts_are_made_once_and_sign_in(app, exchange, browser, clock):
    clients = await register_demo_clients(exchange)
    first = await register_demo_staff(exchange, clients)
    assert await register_demo_staff(exchange, clients) == first  # kept and reused, not made again
    assert set(first) == {"demo.hotline", "demo.shelter", "demo.auditor"}
    said = staff_instructions(exchange, first)
    assert "/web/" in said and first["demo.shelter"]["totp_secret"] in said
    shelter = first["demo.shelter"]
    person = Person("demo.shelter", shelter["organization"], "caseworker", shelter["totp_secret"],
                    password=shelter["password"])
    page = browser()
    assert (await page.sign_in(person)).status_code == 303
    assert "Safety and shelter" in (await page.get("/web/inbox")).text  # the demo story's referral
