"""Coordination (issue 14 item 3): what the deployment's coordinating organisation sees of escalated referrals
(`view.py`: the referral exists, its type, area, the ages of its steps and its parties, nothing about her) and the
re-route it may propose with the requester's agreement (`reroute.py`), over `routes.py`."""
from __future__ import annotations

from exchange.kernel.exchange import Exchange


def install(exchange: Exchange) -> None:
    from exchange.coordination.routes import router

    exchange.routers.append(router)
