"""The partner conformance kit: the checks a system must pass before it goes live on a GBV referral exchange.

    python -m conformance --base-url URL --client-id ID --key PRIVATE_JWK [--peer-client-id ID --peer-key JWK]

It talks to a deployment only over HTTP, as a partner system does (SMART Backend Services tokens, FHIR R4 JSON),
so it runs against the sandbox or any other deployment. Each check names its rule and the rule's source; the
report is a table (rich), JSON and JUnit XML; the exit status is non-zero when a check fails. The JSON files beside
this package are the implementation guide's profiles and terminology (see README.md).
"""
