"""Write exchange/fhir/r4_elements.json: every element name FHIR R4 (4.0.1) defines, per type, from R4's own definitions.

Source: FHIR.js's `profiles/types.json` (npm package `fhir` 4.12.0), compiled from the R4 specification's
profiles-resources.json and profiles-types.json; the test validator's package.json installs it:

    npm ci --prefix tests/r4_validator
    .venv/bin/python scripts/r4_elements.py [tests/r4_validator/node_modules/fhir/profiles/types.json]

The table maps each type (or backbone element path, e.g. `Consent.provision`) to {JSON key: type}; a choice element
appears once per allowed type (`valueString`, ...), a primitive's `_name` sibling as type `Element`.
tests/fhir/test_r4.py checks the shipped file is what this script makes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT / "tests" / "r4_validator" / "node_modules" / "fhir" / "profiles" / "types.json"
TARGET = ROOT / "exchange" / "fhir" / "r4_elements.json"
ABSTRACT = {"Resource", "DomainResource"}


def build(source: dict) -> dict:
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
    return {
        "fhirVersion": "4.0.1",
        "source": "FHIR.js 4.12.0 profiles/types.json (R4 profiles-resources.json + profiles-types.json)",
        "resources": sorted(n for n, d in source.items() if d.get("_kind") == "resource" and n not in ABSTRACT),
        "primitives": sorted(n for n, d in source.items() if d.get("_kind") == "primitive-type"),
        "types": dict(sorted(types.items())),
    }


def render(source_path: Path = DEFAULT_SOURCE) -> str:
    return json.dumps(build(json.loads(source_path.read_text())), separators=(",", ":"), sort_keys=False) + "\n"


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    TARGET.write_text(render(path))
    print(f"wrote {TARGET.relative_to(ROOT)} from {path}")
