"""openapi.yaml at the repository root is generated from the app; this fails when it is out of date."""
from pathlib import Path

from exchange.openapi_doc import openapi_yaml


def test_openapi_yaml_is_up_to_date():
    committed = (Path(__file__).resolve().parents[1] / "openapi.yaml").read_text(encoding="utf-8")
    assert committed == openapi_yaml(), "openapi.yaml is stale: run `make openapi`"
