"""Demo staff accounts for `make run`: a hotline caseworker, a shelter caseworker and an auditor of the coordinating
body, so the web inbox can be tried at once. Their passwords and TOTP secrets are generated once and kept in
`state_dir/demo-staff.json` (git-ignored, mode 0600) and reused; never use them outside a demonstration."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from exchange.kernel.exchange import Exchange
from exchange.web import accounts

# username -> (demo client whose organisation the person works for, staff role)
DEMO_STAFF = {"demo.hotline": ("demo-hotline-1", "caseworker"), "demo.shelter": ("demo-shelter-1", "caseworker"),
              "demo.auditor": ("demo-auditor", "auditor")}


def _file(exchange: Exchange) -> Path:
    return Path(exchange.settings.state_dir) / "demo-staff.json"


def _save(path: Path, kept: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(kept, indent=2))


async def register_demo_staff(exchange: Exchange, clients: list[dict]) -> dict[str, dict]:
    """Make sure each demo account exists (with the kept credentials); returns {username: credentials}."""
    path = _file(exchange)
    kept = json.loads(path.read_text()) if path.exists() else {}
    orgs = {c["client_id"]: c["organization"].removeprefix("Organization/") for c in clients}
    for username, (client_id, role) in DEMO_STAFF.items():
        if await accounts.find(exchange, username) is not None:
            continue  # made on an earlier run (if its credentials file was lost, it is not shown: leave it)
        password = secrets.token_urlsafe(12)
        staff, secret = await accounts.add_staff(exchange, username, orgs[client_id], role, password)
        kept[username] = {"password": password, "totp_secret": secret, "organization": staff.organization_id,
                          "role": role}
    _save(path, kept)
    return {u: kept[u] for u in DEMO_STAFF if u in kept}


def staff_instructions(exchange: Exchange, staff: dict[str, dict]) -> str:
    lines = [f"Web inbox: {exchange.settings.base_url}/web/  (demo accounts, kept in {_file(exchange)}):"]
    for username, found in staff.items():
        lines.append(f"  {username:<14} {found['role']:<10} password {found['password']}  TOTP secret "
                     f"{found['totp_secret']}")
    lines.append("  the current code: .venv/bin/python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\"")
    return "\n".join(lines)
