"""The published profiles, terminology and examples are valid FHIR R4, checked by a validator the exchange does not
use for enforcement (tests/r4_validator: Medplum's validator on R4 4.0.1 definitions, run with Node.js), and every
code system the exchange puts in served data is published."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import orjson

from exchange.auth.access import ROLES
from exchange.organizations import ORG_KINDS
from exchange.referral import codes

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE = ROOT / "conformance"
VALIDATOR = ROOT / "tests" / "r4_validator" / "validate.cjs"
FILES = sorted(CONFORMANCE.glob("*.json")) + sorted((CONFORMANCE / "examples").glob("*.json"))


def validate(*paths: Path) -> list[dict]:
    run = subprocess.run(["node", str(VALIDATOR), *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["files"] == len(paths)
    return report["issues"]


def test_every_conformance_file_and_example_is_valid_r4():
    assert len(FILES) > 30
    assert validate(*FILES) == []


def test_the_validator_finds_what_r4_forbids(tmp_path):
    """The same validator on broken copies: ppc-1, a widened reference target, unpublished canonicals, bad codes."""
    def copy(name: str, change) -> Path:  # noqa: ANN001
        body = orjson.loads((CONFORMANCE / name).read_bytes())
        change(body)
        path = tmp_path / Path(name).name
        path.write_bytes(orjson.dumps(body))
        return path

    def consent_without_policy(bundle: dict) -> None:
        next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Consent")["resource"].pop("policyRule")
        org = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Organization")["resource"]
        org["type"][0]["coding"][0]["code"] = "no-such-kind"

    def widen_actor(sd: dict) -> None:
        actor = next(e for e in sd["differential"]["element"] if e["path"] == "Consent.provision.actor.reference")
        actor["type"][0]["targetProfile"].append("http://hl7.org/fhir/StructureDefinition/HealthcareService")

    broken = [copy("examples/Bundle-example-referral-shelter.json", consent_without_policy),
              copy("StructureDefinition-gbv-referral-consent.json", widen_actor)]
    dropped = {"ValueSet-gbv-referral-codes.json"}  # CodeSystem gbv-referral-codes now points at nothing
    paths = [p for p in FILES if p.name not in {b.name for b in broken} | dropped] + broken
    found = {(i["file"], i["rule"]) for i in validate(*paths)}
    assert found == {("Bundle-example-referral-shelter.json", "r4-validate"),
                     ("Bundle-example-referral-shelter.json", "code-in-system"),
                     ("StructureDefinition-gbv-referral-consent.json", "profile-widens-target"),
                     ("CodeSystem-gbv-referral-codes.json", "canonical-resolves")}


def _published(kind: str) -> dict[str, dict]:
    return {r["url"]: r for r in (orjson.loads(p.read_bytes()) for p in CONFORMANCE.glob(f"{kind}-*.json"))}


def test_every_code_system_of_the_exchange_in_its_code_is_published():
    pattern = re.compile(r"(?:https://gbv-exchange\.org/fhir|\{BASE\}|\{codes\.BASE\})/CodeSystem/([a-z-]+)")
    used = {m for path in (ROOT / "exchange").rglob("*.py") for m in pattern.findall(path.read_text())}
    assert {"organization-kind", "exchange-role", "exchange-event", "retention", "gbv-service-type"} <= used
    published = _published("CodeSystem")
    assert {f"{codes.BASE}/CodeSystem/{name}" for name in used} <= set(published)
    for system in published.values():
        assert system["valueSet"] in _published("ValueSet"), system["id"]


def test_served_codes_are_codes_of_the_published_systems():
    def codes_of(cs_id: str) -> set[str]:
        return set(codes.hierarchy(cs_id))

    assert set(ORG_KINDS) == codes_of("organization-kind")
    assert set(ROLES) | {"system", "anonymous"} == codes_of("exchange-role")
