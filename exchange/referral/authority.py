"""Who may change what: ONE table, the only place that says which party of a referral may create, update or delete
each resource type, and which elements it may change.

Roles are those of the writing organisation towards the resource (`exchange.referral.write_authority` works them
out): the `recorder` is the organisation that created it (kept by the store, `resource_recorder`); `requester`,
`owner` and `performer` are read from the resource itself (a Task's performers are its ServiceRequest's, and only
while the Task is open, to claim it). A party with none of the roles the table lists may see the resource but not
change it (403); an organisation that is not a party never gets this far (404, need to know). The exchange itself
(system context) is not held to the table. Elements that nobody changes after creation (`frozen`) are refused by
the resource type's own rule (422), whatever the role; the Task's state machine (`task_states`) still says which
status change each role may make.
"""
from __future__ import annotations

from dataclasses import dataclass

from exchange.errors import Conflict, Forbidden, Unprocessable
from exchange.referral import task_states

RECORDER = "recorder"
REQUESTER = "requester"
OWNER = "owner"
PERFORMER = "performer"
PROVIDER = "provider"  # the organisation behind a directory entry (HealthcareService.providedBy,
#                          Location.managingOrganization)
ROLES = (RECORDER, REQUESTER, OWNER, PERFORMER, PROVIDER)
ALL = frozenset({"*"})  # every element (but the frozen ones)
UNCHANGED = frozenset({"resourceType", "id", "meta"})  # set by the server, not a change of the writer's


@dataclass(frozen=True)
class Grant:
    """What one role may do to one resource type."""
    create: bool = False
    update: frozenset[str] = frozenset()  # the elements it may change (ALL: every one)
    delete: bool = False


@dataclass(frozen=True)
class Authority:
    rule: str  # the rule id a refusal names
    holder: str  # who that is, in words, for refusals and the README
    grants: dict[str, Grant]
    frozen: tuple[str, ...] = ()
    deletable: bool = True  # False: nobody deletes it, its status says entered-in-error instead
    own_links: tuple[str, ...] = ()  # elements whose new references must be to the writer's own records
    extra: str = ""  # a note for the README
    deleted: str = ""  # the README's "deleted" cell, when the two defaults do not say it

    def grant(self, roles: set[str]) -> Grant:
        """The union of what `roles` may do."""
        found = [self.grants[r] for r in ROLES if r in roles and r in self.grants]
        update: frozenset[str] = frozenset().union(*(g.update for g in found)) if found else frozenset()
        return Grant(any(g.create for g in found), ALL if "*" in update else update, any(g.delete for g in found))


_RECORDED = Grant(create=True, update=ALL, delete=True)

TABLE: dict[str, Authority] = {
    "Patient": Authority("patient-recorder", "the organisation that recorded her Patient", {RECORDER: _RECORDED}),
    "Consent": Authority("consent-custodian", "the organisation that recorded the Consent (Consent.organization)",
                         {RECORDER: Grant(create=True, update=ALL)}, frozen=("patient",), deletable=False),
    "DocumentReference": Authority("document-recorder", "the organisation that recorded the document",
                                   {RECORDER: _RECORDED}, frozen=("subject",)),
    "Procedure": Authority("procedure-recorder", "the organisation that recorded the Procedure (a receiver's "
                           "output, linked from Task.output)", {RECORDER: _RECORDED}, frozen=("subject",)),
    "ServiceRequest": Authority("referral-party", "the referral's requester", {REQUESTER: Grant(create=True, update=ALL)},
                                frozen=("subject", "requester"), deletable=False),
    "Task": Authority("task-owner-fields", "the Task's requester, or its owner for its own fields",
                      {REQUESTER: Grant(create=True, update=ALL),
                       OWNER: Grant(update=task_states.OWNER_WRITABLE - {"meta"}),
                       PERFORMER: Grant(update=task_states.OWNER_WRITABLE - {"meta"} | {"owner"})},
                      frozen=task_states.FROZEN_ELEMENTS, deletable=False, own_links=("output",),
                      extra="performer: only to claim an open Task (owner and status together, `task_states`); "
                            "`output` links only records the writer made itself (its Procedure, its document), "
                            "rule `task-output-own`"),
    "HealthcareService": Authority("directory-provider", "the organisation that provides the service "
                                   "(HealthcareService.providedBy)", {PROVIDER: Grant(update=ALL)},
                                   frozen=("providedBy",), deletable=False,
                                   extra="a partner updates its own entries (capacity, intake, hours, confidentiality); "
                                         "the directory's admins create, change and delete entries and are not held "
                                         "to this table",
                                   deleted="by a directory admin"),
    "Location": Authority("directory-provider", "the organisation that manages the location "
                          "(Location.managingOrganization)", {PROVIDER: Grant(update=ALL)},
                          frozen=("managingOrganization",), deletable=False,
                          extra="a partner updates the locations it manages (hours, contacts, confidentiality); "
                                "the directory's admins create, change and delete them",
                          deleted="by a directory admin"),
}


def changed_elements(before: dict, after: dict) -> list[str]:
    """The top-level elements that differ between two versions (server-set ones aside)."""
    return sorted(k for k in (set(before) | set(after)) - UNCHANGED if before.get(k) != after.get(k))


def check(resource_type: str, roles: set[str], before: dict | None, after: dict | None) -> None:
    """Refuse a write the table does not allow. `before` None: a create; `after` None: a delete.

    Raises Forbidden (403: the writer is a party but may not make this change), Unprocessable (422: nobody
    deletes this type); a type the table does not list is not a referral resource and passes.
    """
    entry = TABLE.get(resource_type)
    if entry is None:
        return
    grant = entry.grant(roles)
    if before is None:
        if not grant.create:
            raise Forbidden(f"{entry.rule}: a {resource_type} is created by {entry.holder}",
                            expression=resource_type)
        return
    if after is None:
        if not entry.deletable:
            raise Unprocessable(f"referral-no-delete: a {resource_type} of a referral is never deleted: set its "
                                "status to entered-in-error", expression=resource_type)
        if not grant.delete:
            raise Forbidden(f"{entry.rule}: only {entry.holder} may delete it", expression=resource_type)
        return
    if not grant.update:
        raise Forbidden(f"{entry.rule}: only {entry.holder} may change it", expression=resource_type)
    if grant.update is ALL:
        return
    other = [e for e in changed_elements(before, after) if e not in grant.update and e not in entry.frozen]
    if other:
        raise Forbidden(f"{entry.rule}: you may change only {', '.join(sorted(grant.update))} of this "
                        f"{resource_type}; not {other[0]}", expression=f"{resource_type}.{other[0]}")


def not_own(resource_type: str, element: str) -> Forbidden:
    """The refusal of linking, from `element`, a record another organisation made (403)."""
    return Forbidden(f"{resource_type.lower()}-{element}-own: {resource_type}.{element} links only records your "
                     "organisation made itself (a Procedure or DocumentReference of its own)",
                     expression=f"{resource_type}.{element}")


def in_use(resource_type: str) -> Conflict:
    """The refusal of deleting what an open referral points at (409)."""
    return Conflict(f"referral-in-use: an open referral points at this {resource_type}; close the referral (or "
                    "remove the reference) first", expression=resource_type, code="conflict")


def markdown_table() -> str:
    """The table as the README shows it (a test keeps the two equal)."""
    def cell(grant: Grant | None, deletable: bool) -> str:
        if grant is None:
            return "-"
        parts = (["create"] if grant.create else []) + (
            ["update" if grant.update is ALL else f"update {', '.join(f'`{e}`' for e in sorted(grant.update))}"]
            if grant.update else []) + (["delete"] if grant.delete and deletable else [])
        return ", ".join(parts) or "-"

    lines = ["| Resource | " + " | ".join(ROLES) + " | never changes | deleted |",
             "|---|" + "---|" * (len(ROLES) + 2)]
    for rtype, entry in TABLE.items():
        lines.append(f"| {rtype} | " + " | ".join(cell(entry.grants.get(r), entry.deletable) for r in ROLES)
                     + f" | {', '.join(f'`{e}`' for e in entry.frozen) or '-'} | "
                     + (entry.deleted or ("by its recorder, unless an open referral points at it" if entry.deletable
                                         else "never (status `entered-in-error`)")) + " |")
    lines += ["", *(f"{rtype}, {entry.extra}." for rtype, entry in TABLE.items() if entry.extra)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
