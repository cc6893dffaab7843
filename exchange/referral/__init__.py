"""The referral workflow and the survivor's protections (issue 4): profiles, the Task state machine, consent,
directory routing, overdue referrals, and the implementation guide's resources served read-only."""
from __future__ import annotations

from exchange.kernel.exchange import Exchange


def install(exchange: Exchange) -> None:
    from exchange.referral.routes import contribute_capability, router
    from exchange.jobs import every
    from exchange.referral.escalation import sweep_referrals
    from exchange.referral.authority_rule import AuthorityRule
    from exchange.referral.exchange_elements import ExchangeElementsRule
    from exchange.referral.profile import issues_for
    from exchange.need_to_know.rules import NeedToKnowRule
    from exchange.referral.rules import EmergencyRule, ReferralRules, WithdrawalRule
    from exchange.need_to_know.organisations import ENTRIES

    exchange.rules.append(AuthorityRule())  # who may change what, before any rule about the content
    exchange.read_ahead["Task"] = (("owner", "requester"), ENTRIES)  # (the roles it works out: roles_of)
    exchange.rules.append(ReferralRules())
    exchange.rules.append(ExchangeElementsRule())  # deadlines, escalation: refused from partners, set by the exchange
    exchange.rules.append(EmergencyRule())  # the exchange's follow-ups: the exception's record, parties, withdrawal
    exchange.rules.append(NeedToKnowRule())  # before withdrawal: it sees the narrowed referral
    exchange.rules.append(WithdrawalRule())
    exchange.profile_checks.append(issues_for)
    exchange.routers.append(router)
    exchange.capability.append(contribute_capability)
    # reminders and escalation: once per deployment (exchange.jobs), every EXCHANGE_REFERRAL_SWEEP_SECONDS
    exchange.jobs.append(every("referral sweep", lambda e: e.settings.referral_sweep_seconds, sweep_referrals))
