"""Fixtures of the need-to-know tests: the referral tests' partner identities and referral builder
(`tests/referral/conftest.py`), shared rather than written again: a claim or a dropped performer is a referral
written by real partner clients, and what these tests check is who can still see it."""
from __future__ import annotations

from tests.referral.conftest import as_, http, ids, make_referral  # noqa: F401 - fixtures
