"""The need-to-know write rule: after a claim or a change of a request's performers, the others lose the referral.

`exchange.referral.install` registers it among the referral rules, after the emergency record and before consent
withdrawal (`exchange.referral.rules.WithdrawalRule`), so withdrawal sees the narrowed referral. It follows a write
only when an element the parties follow changed (`FOLLOWED`); its own follow-ups (the request narrowed to the
claimant) change only the performers, so it stops after one more round.
"""
from __future__ import annotations

from exchange.kernel.change import Change, FollowUp, Reads
from exchange.need_to_know.claim import narrow_on_claim
from exchange.need_to_know.parties import PARTY_ELEMENTS
from exchange.need_to_know.performers import follow_performers

# The party elements whose change narrows a referral: a Task's owner (a claim; its requester never changes,
# `exchange.referral.task_states.FROZEN_ELEMENTS`), a request's requester and performers.
FOLLOWED = {"Task": ("owner",), "ServiceRequest": PARTY_ELEMENTS["ServiceRequest"]}


class NeedToKnowRule:
    """After a claim or a change of a request's performers: the others lose the referral."""

    async def follow(self, change: Change, reads: Reads) -> list[FollowUp]:
        inputs = FOLLOWED.get(change.resource_type)
        if inputs is None or change.created or change.deleted or not change.changed(*inputs):
            return []
        if change.resource_type == "Task":
            return await narrow_on_claim(change, reads)
        return list(await follow_performers(reads.repo, change.stored.id))
