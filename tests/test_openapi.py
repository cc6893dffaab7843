"""openapi.yaml at the repository root is generated from the app; this fails when it is out of date."""
from pathlib import Path

from exchange.main import openapi_yaml


def test_openapi_yaml_is_up_to_date():
    committed = (Path(__file__).resolve().parents[1] / "openapi.yaml").read_text(encoding="utf-8")
    assert committed == openapi_yaml(), "openapi.yaml is stale: run `make openapi`"


def test_fhir_routes_document_fhir_json_errors_and_no_fastapi_validation_error():
    import yaml

    spec = yaml.safe_load(openapi_yaml())
    assert "HTTPValidationError" not in str(spec)
    for path, item in spec["paths"].items():
        if not path.startswith("/fhir") or path == "/fhir/.well-known/smart-configuration":
            continue
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"400", "404", "406", "500"} <= set(responses), (method, path)
            for code, response in responses.items():
                assert set(response.get("content", {})) <= {"application/fhir+json", "application/fhir+ndjson"}, (
                    method, path, code)
            if "405" in responses:
                assert "Allow" in responses["405"]["headers"]


async def test_audit_and_subscription_routes_answer_what_openapi_documents(client):
    for path in ("/Subscription/$topics", "/AuditEvent"):
        r = await client.get(path)
        assert r.headers["content-type"].startswith("application/fhir+json"), path
