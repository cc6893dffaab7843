"""The auditor's view: the log filtered, the chain check with the newest checkpoint, CSV and PDF exports; and
who may see it (auditors only: the same page as a missing one for anyone else)."""
from __future__ import annotations

import csv
import io
import re


async def _shelter_accepts(web_world, browser, task_id: str) -> None:  # noqa: ANN001
    page = browser()
    await page.sign_in(web_world.people["shelter"])
    await page.get(f"/web/referral/{task_id}")
    assert (await page.post(f"/web/referral/{task_id}", {"action": "accept", "version": "1"})).status_code == 303


async def test_the_auditor_filters_the_log_checks_the_chain_and_exports(web_world, browser, send_referral_ids,
                                                                        exchange):
    from exchange.audit.checkpoint import sign_checkpoint

    task_id = send_referral_ids["Task"]
    await _shelter_accepts(web_world, browser, task_id)
    shelter = web_world.ids["shelter"]
    page = browser()
    await page.sign_in(web_world.people["auditor"])
    found = await page.get("/web/audit", params={"organization": shelter, "resource": f"Task/{task_id}",
                                                 "action": "U"})
    rows = re.findall(r"<tr class=\"[a-z]*\">(.*?)</tr>", found.text, re.S)
    assert len(rows) == 1 and f"Organization/{shelter}" in rows[0]
    assert f"staff/{web_world.people['shelter'].id}" in rows[0]
    await sign_checkpoint(exchange)
    checked = await page.post("/web/audit/verify", {})
    assert 'id="verdict" class="ok"' in checked.text and "The chain is intact" in checked.text
    assert re.search(r'<code dir="ltr" class="hash">[0-9a-f]{64}</code>', checked.text)
    exported = await page.get("/web/audit/export.csv", params={"resource": f"Task/{task_id}"})
    assert exported.headers["content-disposition"] == 'attachment; filename="exchange-log.csv"'
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["subtype"] for r in table} >= {"create", "read", "update"}
    assert all(f"Task/{task_id}" in r["entities"] for r in table)
    report = await page.get("/web/audit/report.pdf", params={"resource": f"Task/{task_id}"})
    assert report.headers["content-type"] == "application/pdf" and report.content.startswith(b"%PDF")
    wrong = await page.get("/web/audit", params={"action": "X", "since": "yesterday"})
    assert wrong.status_code == 200 and "yesterday" not in wrong.text  # malformed filters are dropped, not echoed


async def test_only_auditors_see_the_log_and_auditors_see_no_referrals(web_world, browser, send_referral_ids):
    caseworker = browser()
    await caseworker.sign_in(web_world.people["shelter"])
    missing = await caseworker.get("/web/no-such-page")
    for path in ("/web/audit", "/web/audit/export.csv", "/web/audit/report.pdf"):
        response = await caseworker.get(path)
        assert response.status_code == 404 and response.text == missing.text, path
    assert (await caseworker.post("/web/audit/verify", {})).status_code == 404
    auditor = browser()
    await auditor.sign_in(web_world.people["auditor"])
    for path in ("/web/inbox", f"/web/referral/{send_referral_ids['Task']}", "/web/send"):
        assert (await auditor.get(path)).status_code == 404, path
