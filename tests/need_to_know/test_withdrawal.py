"""The parties a withdrawn consent removes: what the receiver cut from a referral loses, and what another of her
referrals still keeps for it."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson

from exchange.kernel.change import Unshare
from exchange.need_to_know.withdrawal import unshare_withdrawn
from exchange.store.values import StoredResource

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _request(request_id: str, *supporting: str) -> StoredResource:
    body = {"resourceType": "ServiceRequest", "id": request_id,
            "supportingInfo": [{"reference": r} for r in supporting]}
    return StoredResource("ServiceRequest", request_id, 1, NOW, False, orjson.dumps(body).decode())


def test_the_cut_receiver_loses_the_request_its_consent_and_her_record():
    requests = [_request("r1", "Consent/c1", "DocumentReference/d1")]
    out = unshare_withdrawn("p1", requests, {"r1": {"hotline"}}, {"r1": {"shelter"}}, [("t1", {"shelter"})])
    assert out == [Unshare("ServiceRequest", "r1", frozenset({"shelter"})),
                   Unshare("DocumentReference", "d1", frozenset({"shelter"})),
                   Unshare("Consent", "c1", frozenset({"shelter"})),
                   Unshare("Task", "t1", frozenset({"shelter"})),
                   Unshare("Patient", "p1", frozenset({"shelter"}))]


def test_another_referral_that_still_covers_the_receiver_keeps_what_it_shares():
    requests = [_request("r1", "Consent/c1"), _request("r2", "Consent/c1")]
    out = unshare_withdrawn("p1", requests, {"r1": {"hotline"}, "r2": {"hotline", "shelter"}},
                            {"r1": {"shelter"}}, [])
    assert out == [Unshare("ServiceRequest", "r1", frozenset({"shelter"}))]  # the Consent and her record stay
