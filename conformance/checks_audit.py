"""The exchange log as a partner sees it: its own interactions are recorded, others' are not shown to it."""
from __future__ import annotations

from conformance.checks_referral import referral
from conformance.runner import Kit, check, expect, expect_status

BALP = "IHE Basic Audit Log Patterns (BALP); the exchange's README, The exchange log"


@check("audit-own-interactions", "audit", "the partner's own create and read of a referral are AuditEvents it can "
       "find, naming its client and never the survivor's data", BALP)
def own(kit: Kit) -> None:
    ids = referral(kit)
    expect_status(kit.me.http.get(f"/Task/{ids['Task']}"), 200)
    found = expect_status(kit.me.http.get("/AuditEvent", params={"entity": f"Task/{ids['Task']}",
                                                                  "_count": "50"}), 200).json()
    events = [e["resource"] for e in found.get("entry", [])]
    subtypes = {c.get("code") for ev in events for c in ev.get("subtype", [])}
    expect({"create", "read"} & subtypes, f"no create or read recorded for Task/{ids['Task']} ({sorted(subtypes)})")
    agents = str([ev.get("agent") for ev in events])
    expect(kit.me.client_id in agents, "the events do not name the kit's client")


@check("audit-read-only", "audit", "AuditEvents cannot be written through the API (405)", BALP)
def read_only(kit: Kit) -> None:
    r = kit.me.http.post("/AuditEvent", json={"resourceType": "AuditEvent"})
    expect_status(r, 405)
    expect(bool(r.headers.get("allow")), "405 without Allow")
