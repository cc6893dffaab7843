"""Demo clients for `make run`: one partner per demo organisation, plus an auditor and an admin of a
coordinating body, each with a generated ES384 key kept in `state_dir/demo-clients/` (git-ignored).

Idempotent: an existing key file is reused; a client whose key file was lost gets a fresh key.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from joserfc.jwk import ECKey

from exchange.auth.service import auth_service
from exchange.demo.directory import DEMO_ID_SYSTEM, load_demo
from exchange.organizations import add_organization, organization_resource
from exchange.kernel.exchange import Exchange

COORDINATION = ("ngo", "coordination-1", "GBV Sub-Cluster Coordination", "تنسيق العنف القائم على النوع")
PARTNER_SCOPES = "system/*.cruds"
AUDITOR_SCOPES = "system/AuditEvent.rs system/Organization.rs system/HealthcareService.rs system/Location.rs"
ADMIN_SCOPES = ("system/Organization.cruds system/HealthcareService.cruds system/Location.cruds "
                "system/Practitioner.cruds system/PractitionerRole.cruds")


def key_dir(exchange: Exchange) -> Path:
    return Path(exchange.settings.state_dir) / "demo-clients"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _load_or_create_key(path: Path, kid: str) -> tuple[ECKey, bool]:
    if path.exists():
        return ECKey.import_key(json.loads(path.read_text())), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ECKey.generate_key("P-384", parameters={"kid": kid, "alg": "ES384", "use": "sig"}, private=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(key.as_dict(private=True)))
    return key, True


async def register_demo_clients(exchange: Exchange) -> list[dict]:
    """Load the demo directory, then make sure each demo client exists with the key on disk. Returns them."""
    orgs = await load_demo(exchange)
    kind, key, name, alias = COORDINATION
    orgs[key] = await add_organization(exchange, organization_resource(name, kind, f"{DEMO_ID_SYSTEM}|{key}", alias),
                                       resource_id=key)
    wanted = [(f"demo-{k}", org_id, "partner", PARTNER_SCOPES) for k, org_id in orgs.items() if k != key]
    wanted += [("demo-auditor", orgs[key], "auditor", AUDITOR_SCOPES), ("demo-admin", orgs[key], "admin", ADMIN_SCOPES)]
    registry = auth_service(exchange).registry
    out = []
    for client_id, org_id, role, scopes in wanted:
        path = key_dir(exchange) / f"{client_id}.jwk.json"
        jwk, created = _load_or_create_key(path, f"{client_id}-{os.urandom(4).hex()}")
        public = {"keys": [jwk.as_dict(private=False)]}
        existing = await registry.get(client_id)
        if existing is None:
            await registry.add(org_id, role, scopes, jwks=public, client_id=client_id, label=f"demo {role}")
        elif created or existing.jwks != public:
            await registry.set_keys(client_id, jwks=public)
        out.append({"client_id": client_id, "organization": f"Organization/{org_id}", "role": role,
                    "scope": scopes, "key": _shown(path)})
    return out


def instructions(exchange: Exchange, clients: list[dict]) -> str:
    """What `make run` says once the demo is ready: what was loaded, who can connect, what writes need, what next."""
    base = exchange.settings.base_url
    port = "" if exchange.settings.port == 8080 else f"EXCHANGE_PORT={exchange.settings.port} "
    orgs = ", ".join(c["organization"] for c in clients if c["role"] == "partner")
    lines = [f"Demo loaded: the directory ({orgs}, each with its HealthcareService) and the referral story (the "
             "hotline referred a survivor to the shelter, the clinic and legal aid).",
             f"Demo clients, keys in {_shown(key_dir(exchange))}/:"]
    lines += [f"  {c['client_id']:<20} {c['role']:<8} {c['organization']:<28} {c['scope']}" for c in clients]
    lines += ["Scopes: reads and searches need r and s (system/*.rs); creating and changing referrals needs c and u "
              f"({PARTNER_SCOPES}); ask for what you need when getting a token.",
              "Next, in a second terminal (the quickstart in README.md):",
              "  source .venv/bin/activate     # puts `exchange` on your PATH (or type .venv/bin/exchange)",
              f"  {port}exchange demo referral --post",
              f"  .venv/bin/python scripts/get_token.py --base-url {base} --client-id demo-hotline-1 "
              f"--key {clients[0]['key']} --get Organization"]
    return "\n".join(lines)
