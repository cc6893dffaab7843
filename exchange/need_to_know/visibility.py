"""What a caller may see: the exchange itself everything, an organisation the referral resources it is a party of
(and the whole directory). The store applies the filter inside every query, so for anyone else a referral resource
does not exist (404, absent from search, `_include`, `_revinclude` and `_history`)."""
from __future__ import annotations

from exchange.context import RequestContext
from exchange.need_to_know.kinds import DIRECTORY_TYPES
from exchange.store.visibility import UNRESTRICTED, AccessFilter


def access_filter(ctx: RequestContext) -> AccessFilter:
    """The store filter for `ctx`: the exchange itself sees everything, an organisation its parties' rows."""
    if ctx.is_system:
        return UNRESTRICTED
    # a client without an organisation (never registered so) sees no party-filtered row at all
    return AccessFilter(organization_id=ctx.organization_id or "", types_without_filter=DIRECTORY_TYPES)
