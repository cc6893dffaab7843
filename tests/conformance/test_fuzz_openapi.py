"""Fuzzing openapi.yaml against a running server with a valid partner token (schemathesis, fixed seed, bounded).

Every generated request must answer without a 5xx, with a status code, content type and body the document declares,
and every 4xx as an OperationOutcome. Bounded for `make test` (FUZZ_EXAMPLES per operation, derandomized); a longer
run for developers: `EXCHANGE_FUZZ_EXAMPLES=200 .venv/bin/python -m pytest tests/conformance/test_fuzz_openapi.py`.
"""
from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from conformance.session import Party, load_key
from tests.conformance.live import LiveServer, demo_settings

FUZZ_EXAMPLES = int(os.environ.get("EXCHANGE_FUZZ_EXAMPLES", "5"))
SCHEMA = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "openapi.yaml")
# Routes a partner token is not meant for: the admin API (a partner gets 403, documented), the web UI (HTML forms
# with a CSRF token, its own tests), and the OAuth endpoints that take a signed assertion, not a bearer token
# (the kit's SMART checks cover them).
SKIPPED = ("/auth/", "/web", "/staff")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    server_settings = demo_settings(f"sqlite+aiosqlite:///{tmp / 'exchange.db'}", tmp)
    with LiveServer(server_settings) as server:
        keys = Path(server_settings.state_dir) / "demo-clients"
        partner = Party("partner", "demo-hotline-1", *load_key(keys / "demo-hotline-1.jwk.json"))
        discovery = httpx.get(f"{server.base_url}/fhir/.well-known/smart-configuration").json()
        assert partner.connect(server.base_url, discovery["token_endpoint"]).status_code == 200
        yield server.base_url, partner.token


def error_is_an_operation_outcome(ctx, response, case) -> None:  # noqa: ANN001
    """Every FHIR error is an OperationOutcome (FHIR R4 http.html)."""
    if response.status_code >= 400 and case.path.startswith("/fhir"):
        body = response.json()
        assert body.get("resourceType") == "OperationOutcome", f"{response.status_code} without OperationOutcome"


@SCHEMA.exclude(path_regex="^(" + "|".join(SKIPPED) + ")").parametrize()
@settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_openapi_fuzz(case, live):
    base_url, token = live
    case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                           checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_schema_conformance, error_is_an_operation_outcome])
