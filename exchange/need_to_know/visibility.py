"""What a caller may see: an organisation's view of the store, in SQL, and of the exchange log.

The exchange itself sees everything (`UNRESTRICTED`); an organisation the referral resources it is a party of, and
the whole directory (`access_filter`, a `PartyFilter`). The store puts the filter's condition inside every query
(`exchange.store.visibility`), so for anyone else a referral resource does not exist (404, absent from search,
`_include`, `_revinclude` and `_history`). `party_exists` is the one SQL condition on the party rows: the store
filter is built on it, and so is the exchange log's view (`sees_event_about`, which the audit review puts over its
own tables, `exchange.audit.review`). The notifier asks the same rows in Python (`parties.is_party`).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, exists, literal, or_

from exchange.context import RequestContext
from exchange.need_to_know.kinds import DIRECTORY_TYPES
from exchange.store.tables import resource_party, search_index
from exchange.store.visibility import UNRESTRICTED, AccessFilter


def party_exists(organization_id, type_column, id_column):  # noqa: ANN001, ANN201
    """SQL: a `resource_party` row names `organization_id` for the resource (`type_column`, `id_column`: values, or
    columns of the enclosing query). Each call has an alias of its own, correlated with everything else, so several
    nest in one query (the log's view asks two organisations at once)."""
    party = resource_party.alias()
    return exists().where(and_(party.c.resource_type == type_column, party.c.resource_id == id_column,
                               party.c.organization_id == organization_id)).correlate_except(party)


@dataclass(frozen=True)
class PartyFilter(AccessFilter):
    """An organisation's view: a row of a filtered type is visible while a party row names the organisation."""

    def condition(self, resource_type: str, id_column):  # noqa: ANN001, ANN201
        return party_exists(self.organization_id, resource_type, id_column)


def access_filter(ctx: RequestContext) -> AccessFilter:
    """The store filter for `ctx`: the exchange itself sees everything, an organisation its parties' rows."""
    if ctx.is_system:
        return UNRESTRICTED
    # a client without an organisation (never registered so) sees no party-filtered row at all
    return PartyFilter(organization_id=ctx.organization_id or "", types_without_filter=DIRECTORY_TYPES)


_REFERRAL_TYPES = (literal("ServiceRequest"), literal("Task"))  # (each its own bind: a statement compiled once holds it)


def sees_event_about(organization_id: str, actor_column, type_column, id_column):  # noqa: ANN001, ANN201
    """SQL: an organisation may see, in the exchange log, an event by `actor_column` (an organisation id, or None
    for the exchange) about the resource (`type_column`, `id_column`). The resource is one the organisation is party
    to, and the actor is the organisation itself, the exchange, or a party with it of that resource's referral: of
    the resource itself when it is a ServiceRequest or a Task, else of a ServiceRequest about the same Patient. So a
    partner never learns, from the log, of another organisation acting on her through a referral it is not party
    to."""
    request, own = search_index.alias(), search_index.alias()
    same_patient = or_(and_(type_column == "Patient", request.c.value == id_column),
                       exists().where(and_(own.c.resource_type == type_column, own.c.resource_id == id_column,
                                           own.c.param == "patient", own.c.system == "Patient",
                                           own.c.value == request.c.value)).correlate_except(own))
    shared_request = exists().where(and_(
        request.c.resource_type == "ServiceRequest", request.c.param == "patient", request.c.system == "Patient",
        same_patient, party_exists(organization_id, "ServiceRequest", request.c.resource_id),
        party_exists(actor_column, "ServiceRequest", request.c.resource_id))).correlate_except(request)
    return and_(party_exists(organization_id, type_column, id_column),
                or_(actor_column.is_(None), actor_column == organization_id,
                    and_(type_column.in_(_REFERRAL_TYPES), party_exists(actor_column, type_column,
                                                                                   id_column)),
                    shared_request))
