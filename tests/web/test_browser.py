"""The web inbox in a real browser (Playwright driving Debian's Chromium) against one real server for the module.

The scenarios run in order and share the server, as the people of one referral would: the hotline refers a survivor
from the form; the shelter signs in (password and TOTP, JavaScript off), sees her contact choices, accepts, starts
and completes; a caseworker of an unrelated organisation finds nothing; the auditor sees the steps, checks the chain
and downloads the CSV and the PDF; the Arabic pages are right-to-left and mirrored; quick exit leaves for good.
`make screenshots` (EXCHANGE_WRITE_SCREENSHOTS=1) also writes the README's pictures to docs/img/.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pyotp
import pytest

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"browser tests skipped: no Chromium at {CHROMIUM} (apt-get install -y chromium)",
                allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

# How long a step may wait for the page (an element, a download) before it fails: a deadline against hangs, not a
# measure of speed. Generous: the suite runs beside other work on two cores, and a PDF took over 5 s there.
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)

from exchange.context import system_context  # noqa: E402
from tests.referral import world  # noqa: E402
from tests.serving import free_port  # noqa: E402

PORT = free_port()  # a fixed one collides with other servers on the same machine
BASE = f"http://127.0.0.1:{PORT}"
NEUTRAL = f"{BASE}/weather"  # stands for the neutral site quick exit leaves to (the test server adds it)
PASSWORD = "correct horse battery"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
PEOPLE = {"hotline": ("hotline", "caseworker"), "shelter": ("shelter", "caseworker"),
          "other": ("other", "caseworker"), "auditor": ("other", "auditor"), "leaver": ("shelter", "caseworker")}


class Server:
    """`exchange serve`'s app under uvicorn in a thread; `run` executes a coroutine on the server's own loop."""

    def __init__(self, tmp: Path):
        import uvicorn

        from exchange.main import create_app
        from exchange.main import build
        from tests.web.conftest import web_settings

        settings = web_settings(f"sqlite+aiosqlite:///{tmp / 'browser.db'}", tmp, port=PORT, web_exit_url=NEUTRAL)
        self.exchange = build(settings)
        self.loop: asyncio.AbstractEventLoop | None = None

        async def capture(_exchange) -> None:  # noqa: ANN001
            self.loop = asyncio.get_running_loop()

        self.exchange.on_start.append(capture)
        app = create_app(settings, self.exchange)

        @app.get("/weather")
        def weather():  # noqa: ANN202
            from fastapi.responses import HTMLResponse

            return HTMLResponse("<p>Weather: sunny</p>")

        config = uvicorn.Config(app, host="127.0.0.1", port=PORT, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Server":
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", PORT)) == 0:
                pytest.fail(f"port {PORT} is in use")
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                pytest.fail("the server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def run(self, coroutine):  # noqa: ANN001, ANN201
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)


async def _seed(exchange) -> dict:  # noqa: ANN001
    from exchange.fhir.interactions import create
    from exchange.web import accounts

    ids: dict[str, str] = {}
    for key, name in world.ORG_KINDS.items():
        ids[key] = (await create.create(exchange, system_context(), "Organization",
                                        {"resourceType": "Organization", "name": name})).stored.id
    for key, body in (("shelter", world.service(ids["shelter"], ["safety-shelter"], name="Safe Haven beds")),
                      ("clinic", world.service(ids["clinic"], ["medical-care"], name="Al-Noor clinic"))):
        await create.create(exchange, system_context(), "HealthcareService", body)
    secrets = {}
    for person, (org, role) in PEOPLE.items():
        staff, secret = await accounts.add_staff(exchange, f"{person}.worker", ids[org], role, PASSWORD)
        secrets[person] = secret
    return {"ids": ids, "secrets": secrets}


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("browser")) as server:
        seeded = server.run(_seed(server.exchange))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield {"server": server, "browser": browser, **seeded}
            browser.close()


def _context(story: dict, **options):  # noqa: ANN202
    options.setdefault("viewport", {"width": 360, "height": 780})
    context = story["browser"].new_context(base_url=BASE, accept_downloads=True, **options)
    context.set_default_timeout(WAIT_MS)
    return context


def _sign_in(page: Page, story: dict, person: str) -> None:
    page.goto("/web/login")
    page.fill("input[name=username]", f"{person}.worker")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=code]", pyotp.TOTP(story["secrets"][person]).now())
    page.click("button[type=submit]")
    expect(page.locator("h1")).not_to_have_text("Sign in")


def _shot(page: Page, name: str, tmp: Path) -> None:
    target = tmp / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    if os.environ.get("EXCHANGE_WRITE_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(target, IMAGES / target.name)


def test_a_hotline_caseworker_refers_a_survivor_from_the_form(story):
    context = _context(story)
    page = context.new_page()
    _sign_in(page, story, "hotline")
    page.click("text=New referral")
    page.select_option("#service_type", "safety-shelter")
    page.click("#find button[type=submit]")
    expect(page.locator("label.choice")).to_have_count(1)  # the clinic offers no shelter
    page.check("input[name=service]")
    page.fill("input[name=case_code]", "HTL-2026-0099")
    page.select_option("#gender", "female")
    page.fill("input[name=birth_year]", "1996")
    page.select_option("select[name=pref_language]", "prs")
    page.check("input[name=interpreter]")
    page.check("input[name=consent]")
    page.select_option("select[name=consent_method]", "verbal-phone")
    page.check("input[name=do_not_contact]")
    page.fill("input[name=safe_times]", "Weekdays 10:00-12:00")
    page.fill("input[name=code_word]", world.CODE_WORD)
    page.select_option("select[name=leave_message]", "no")
    page.click("#send")
    expect(page.locator("#task-status")).to_have_text("New")
    assert "/web/referral/" in page.url and "HTL-2026-0099" not in page.url
    story["task"] = page.url.rsplit("/", 1)[1]
    context.close()


def test_the_shelter_signs_in_sees_her_choices_accepts_starts_and_completes_without_javascript(story, tmp_path):
    context = _context(story, java_script_enabled=False)
    page = context.new_page()
    _sign_in(page, story, "shelter")
    expect(page.locator(".card a.title")).to_have_text("Safety and shelter")
    _shot(page, "inbox-en", tmp_path)
    page.click(".card a.title")
    expect(page.locator("#do-not-contact")).to_be_visible()
    expect(page.locator("#code-word")).to_have_text(world.CODE_WORD)
    expect(page.locator("#leave-message")).to_have_text("No, never leave a message")
    expect(page.locator("#survivor")).to_contain_text("Dari")
    assert page.locator("#contact").bounding_box()["y"] < page.locator("#survivor").bounding_box()["y"]
    _shot(page, "referral-en", tmp_path)
    page.click("#action-accept button")
    expect(page.locator("#task-status")).to_have_text("Accepted")
    page.click("#action-start button")
    expect(page.locator("#task-status")).to_have_text("In progress")
    page.fill("#action-complete textarea", "Room given; counselling booked")
    page.click("#action-complete button")
    expect(page.locator("#task-status")).to_have_text("Completed")
    expect(page.locator("#actions")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # usable on a 360-pixel-wide phone
    page.click("a[lang=ar]")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    _shot(page, "inbox-ar", tmp_path)
    page.goto(f"/web/referral/{story['task']}")
    expect(page.locator("#task-status")).to_have_text("منجزة")
    _shot(page, "referral-ar", tmp_path)
    exit_box = page.locator("#quick-exit").bounding_box()
    assert exit_box["x"] > 180  # mirrored: the quick exit sits at the right edge in Arabic
    page.click("a[lang=en]")
    assert page.locator("#quick-exit").bounding_box()["x"] < 40
    context.close()


def test_a_caseworker_of_an_unrelated_organisation_finds_nothing(story):
    context = _context(story)
    page = context.new_page()
    _sign_in(page, story, "other")
    expect(page.locator("#inbox-empty")).to_be_visible()
    page.goto(f"/web/referral/{story['task']}")
    hidden = page.locator("main").inner_html()
    page.goto("/web/referral/00000000-0000-4000-8000-000000000000")
    assert page.locator("main").inner_html() == hidden and page.title() == "Not found"
    context.close()


def test_the_auditor_sees_the_steps_checks_the_chain_and_downloads_the_log(story):
    context = _context(story, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    _sign_in(page, story, "auditor")
    page.fill("input[name=resource]", f"Task/{story['task']}")
    page.select_option("select[name=action]", "U")
    page.click("#filters button")
    rows = page.locator("#log tbody tr")
    expect(rows).to_have_count(3)  # accepted, in progress, completed
    assert f"Organization/{story['ids']['shelter']}" in rows.first.inner_text()
    assert "staff/" in rows.first.inner_text()
    page.click("#verify")
    expect(page.locator("#verdict")).to_contain_text("The chain is intact")
    expect(page.locator("#checkpoint")).to_contain_text("records")
    page.fill("input[name=resource]", f"Task/{story['task']}")
    page.click("#filters button")
    with page.expect_download() as csv_download:
        page.click("#export-csv")
    csv_text = Path(csv_download.value.path()).read_text()
    assert csv_text.startswith("sequence,recorded,action") and story["task"] in csv_text
    with page.expect_download() as pdf_download:
        page.click("#export-pdf")
    assert Path(pdf_download.value.path()).read_bytes().startswith(b"%PDF")
    context.close()


def test_quick_exit_leaves_for_a_neutral_page_and_back_shows_nothing(story):
    context = _context(story)
    page = context.new_page()
    _sign_in(page, story, "leaver")
    page.goto(f"/web/referral/{story['task']}")
    page.keyboard.press("Escape")  # the progressive enhancement; the red link does the same without JavaScript
    page.wait_for_url(NEUTRAL)
    assert "sunny" in page.content()
    page.go_back()
    assert "Safety and shelter" not in page.content()
    page.goto(f"/web/referral/{story['task']}")
    expect(page.locator("h1")).to_have_text("Sign in")
    context.close()
