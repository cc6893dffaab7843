"""GBV referral exchange: a FHIR R4 gateway for referrals between organisations."""
__version__ = "0.1.0"
