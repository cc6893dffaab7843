"""Directory entries that say who has room and whom they take: the capacity and intake extensions of a
HealthcareService (`conformance/StructureDefinition-capacity.json`, `-intake.json`), as data and checks.

Capacity replaces the old yes/no `accepting-referrals`: `status` available | waitlist | closed, optionally the
number of `places` available and of people on the `waitlist`, and `updated`, when the provider last said so. Only
the provider's own organisation changes it (write authority table, `exchange.referral.authority`). Issues name the
element and the rule (`directory-capacity`, `directory-intake`), never the value sent.
"""
from __future__ import annotations

from exchange.errors import Issue
from exchange.referral import codes
from exchange.referral.refusal import issue

CAPACITY_RULE = "directory-capacity"
INTAKE_RULE = "directory-intake"
CAPACITY_STATUSES = ("available", "waitlist", "closed")
OPEN_CAPACITY = frozenset({"available", "waitlist"})  # a referral is accepted onto a waitlist; closed refuses
# part -> (value[x] key, may repeat)
CAPACITY_PARTS = {"status": ("valueCode", False), "places": ("valueUnsignedInt", False),
                  "waitlist": ("valueUnsignedInt", False), "updated": ("valueDateTime", False)}
INTAKE_PARTS = {"min-age": ("valueUnsignedInt", False), "max-age": ("valueUnsignedInt", False),
                "document": ("valueString", True), "cost": ("valueCode", False), "cost-note": ("valueString", False)}
COSTS = ("free", "fee", "sliding-scale")


def _extensions(body: dict, url: str) -> list[dict]:
    return [e for e in body.get("extension") or [] if isinstance(e, dict) and e.get("url") == url]


def _where(url: str, part: str | None = None) -> str:
    where = f"HealthcareService.extension('{url}')"
    return f"{where}.extension('{part}')" if part else where


def parts_of(extension: dict) -> dict[str, list]:
    """{part url: [values]} of a complex extension (the value[x] of each part)."""
    out: dict[str, list] = {}
    for part in extension.get("extension") or []:
        if isinstance(part, dict):
            values = [v for k, v in part.items() if k.startswith("value")]
            out.setdefault(str(part.get("url")), []).extend(values)
    return out


def _structure(url: str, rule: str, extension: dict, allowed: dict[str, tuple[str, bool]]) -> list[Issue]:
    out: list[Issue] = []
    if any(key.startswith("value") for key in extension):
        out.append(issue(rule, "a complex extension: its parts carry the values, not value[x]", _where(url)))
    seen: dict[str, int] = {}
    for i, part in enumerate(extension.get("extension") or []):
        name = part.get("url") if isinstance(part, dict) else None
        spec = allowed.get(name)
        if spec is None:
            out.append(issue(rule, f"unknown part; allowed: {', '.join(allowed)}", f"{_where(url)}.extension[{i}]"))
            continue
        seen[name] = seen.get(name, 0) + 1
        if spec[0] not in part:
            out.append(issue(rule, f"part '{name}' needs {spec[0]}", _where(url, name)))
        elif seen[name] > 1 and not spec[1]:
            out.append(issue(rule, f"part '{name}' may appear once", _where(url, name)))
    return out


def capacity_issues(body: dict) -> list[Issue]:
    url, rule = codes.EXT_CAPACITY, CAPACITY_RULE
    out: list[Issue] = []
    if _extensions(body, codes.EXT_ACCEPTING):
        out.append(issue(rule, f"the accepting-referrals extension is replaced by {url} (status available, "
                               "waitlist or closed, with when it was updated)", "HealthcareService.extension"))
    found = _extensions(body, url)
    if len(found) != 1:
        out.append(issue(rule, f"exactly one {url} extension is required", "HealthcareService.extension"))
        return out
    out.extend(_structure(url, rule, found[0], CAPACITY_PARTS))
    parts = parts_of(found[0])
    status = (parts.get("status") or [None])[0]
    if status not in CAPACITY_STATUSES:
        out.append(issue(rule, f"status is required, one of {', '.join(CAPACITY_STATUSES)}", _where(url, "status")))
    places = (parts.get("places") or [None])[0]
    if places is not None and (not isinstance(places, int) or isinstance(places, bool) or places < 0):
        out.append(issue(rule, "places must be a whole number of available places, 0 or more", _where(url, "places")))
    elif status == "available" and places == 0:
        out.append(issue(rule, "status available needs at least one place (0 places: waitlist or closed)",
                         _where(url, "places")))
    elif status in ("waitlist", "closed") and isinstance(places, int) and places > 0:
        out.append(issue(rule, f"status {status} cannot have available places (then it is available)",
                         _where(url, "places")))
    waiting = (parts.get("waitlist") or [None])[0]
    if waiting is not None and (not isinstance(waiting, int) or isinstance(waiting, bool) or waiting < 0):
        out.append(issue(rule, "waitlist must be a whole number of people waiting, 0 or more", _where(url, "waitlist")))
    updated = (parts.get("updated") or [None])[0]
    if not isinstance(updated, str) or len(updated) < 19:
        out.append(issue(rule, "updated is required: when the provider last updated its capacity, a dateTime with "
                               "time and zone", _where(url, "updated")))
    return out


def intake_issues(body: dict) -> list[Issue]:
    url, rule = codes.EXT_INTAKE, INTAKE_RULE
    found = _extensions(body, url)
    if len(found) > 1:
        return [issue(rule, f"at most one {url} extension", "HealthcareService.extension")]
    if not found:
        return []
    out = _structure(url, rule, found[0], INTAKE_PARTS)
    parts = parts_of(found[0])
    ages = [(parts.get(k) or [None])[0] for k in ("min-age", "max-age")]
    for key, age in zip(("min-age", "max-age"), ages):
        if age is not None and (not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= 130):
            out.append(issue(rule, f"{key} must be a whole number of years from 0 to 130", _where(url, key)))
    if all(isinstance(a, int) for a in ages) and ages[0] > ages[1]:
        out.append(issue(rule, "min-age must not be above max-age", _where(url, "min-age")))
    cost = (parts.get("cost") or [None])[0]
    if cost is not None and cost not in COSTS:
        out.append(issue(rule, f"cost must be one of {', '.join(COSTS)}", _where(url, "cost")))
    if any(not isinstance(d, str) or not d.strip() for d in parts.get("document") or []):
        out.append(issue(rule, "document names a document needed at intake (text)", _where(url, "document")))
    return out


def capacity_status(body: dict) -> str | None:
    found = _extensions(body, codes.EXT_CAPACITY)
    values = parts_of(found[0]).get("status") if found else None
    return values[0] if values else None


def capacity_extension(status: str, updated: str, places: int | None = None, waitlist: int | None = None) -> dict:
    """The capacity extension of a directory entry (for the demo, tests and the migration)."""
    parts = [{"url": "status", "valueCode": status}]
    if places is not None:
        parts.append({"url": "places", "valueUnsignedInt": places})
    if waitlist is not None:
        parts.append({"url": "waitlist", "valueUnsignedInt": waitlist})
    parts.append({"url": "updated", "valueDateTime": updated})
    return {"url": codes.EXT_CAPACITY, "extension": parts}
