"""Languages and reach: every message translated, Arabic pages right-to-left with Arabic formatting, pages small."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from exchange.web.i18n import LOCALE_DIR, LOCALES

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 100 * 1024


def test_every_message_of_the_templates_is_translated_and_the_compiled_catalogues_are_current(tmp_path):
    with (LOCALE_DIR / "messages.pot").open("rb") as f:
        committed = {m.id for m in read_po(f) if m.id}
    fresh = tmp_path / "messages.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "-q", "extract", "-F",
                    str(LOCALE_DIR.parent / "babel.cfg"), "--no-location", "-o", str(fresh), "."], cwd=ROOT,
                   check=True)
    with fresh.open("rb") as f:
        extracted = {m.id for m in read_po(f) if m.id}
    assert extracted == committed, "run `make catalogues`"
    for locale in LOCALES:
        with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
            po = {m.id: m.string for m in read_po(f) if m.id}
        with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.mo").open("rb") as f:
            mo = {m.id: m.string for m in read_mo(f) if m.id}
        assert set(po) == extracted and mo == po, locale
        assert all(po.values()), [k for k, v in po.items() if not v]
    assert all(any("\u0600" <= ch <= "\u06ff" for ch in text) for text in po.values() if text)  # ar is last


def test_the_arabic_source_holds_only_messages_a_template_uses():
    """exchange/web/locale/ar.py, which `make catalogues` builds the Arabic catalogue from, keeps no message the
    templates no longer have."""
    spec = importlib.util.spec_from_file_location("ar", LOCALE_DIR / "ar.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with (LOCALE_DIR / "messages.pot").open("rb") as f:
        extracted = {m.id for m in read_po(f) if m.id}
    assert sorted(set(module.AR) - extracted) == []


async def test_arabic_pages_are_right_to_left_and_every_page_is_under_100_kb(web_world, browser,
                                                                          send_referral_ids):
    page = browser()
    await page.sign_in(web_world.people["shelter"])
    english = {p: await page.get(p) for p in ("/web/inbox", f"/web/referral/{send_referral_ids['Task']}",
                                              "/web/send")}
    assert (await page.get("/web/lang/ar")).status_code == 303
    arabic = {p: await page.get(p) for p in english}
    for path, response in arabic.items():
        assert response.status_code == 200
        assert '<html lang="ar" dir="rtl">' in response.text
        assert "خروج سريع" in response.text and "Quick exit" not in response.text
    assert "منذ" in arabic["/web/inbox"].text and "لا تتواصلوا معها." in arabic[
        f"/web/referral/{send_referral_ids['Task']}"].text
    assert '<html lang="en" dir="ltr">' in english["/web/inbox"].text
    for response in [*english.values(), *arabic.values(), await page.get("/web/static/style.css"),
                     await page.get("/web/static/exit.js")]:
        assert len(response.content) < LIMIT, response.url
