"""`exchange clients ...` and the demo clients, run as an operator runs them; and the README's session against a
real `exchange serve`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from exchange.main import cli as app
from tests.auth.keys import ec_key
from tests.serving import free_port, wait_until_answering

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


def _org(db_url: str) -> str:
    result = runner.invoke(app, ["orgs", "add", "--name", "Safe Haven", "--type", "shelter", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_add_list_disable_enable_rotate(db_url, tmp_path):
    org = _org(db_url)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(ec_key().jwks))
    code, out = _invoke("clients", "add", "--organization", org, "--role", "partner", "--jwks", str(jwks),
                        "--scope", "system/Task.cruds system/*.rs", "--database-url", db_url)
    assert code == 0, out
    client = json.loads(out)
    assert client["organization"] == f"Organization/{org}"
    assert client["scope"] == "system/Task.cruds system/*.rs"
    assert client["role"] == "partner" and client["active"] is True
    code, out = _invoke("clients", "list", "--json", "--database-url", db_url)
    assert [c["client_id"] for c in json.loads(out)] == [client["client_id"]]
    code, out = _invoke("clients", "disable", client["client_id"], "--database-url", db_url)
    assert code == 0 and json.loads(out)["active"] is False
    code, out = _invoke("clients", "enable", client["client_id"], "--database-url", db_url)
    assert json.loads(out)["active"] is True
    new = ec_key()
    jwks.write_text(json.dumps(new.jwks))
    code, out = _invoke("clients", "rotate-keys", client["client_id"], "--jwks", str(jwks), "--database-url", db_url)
    assert code == 0 and json.loads(out)["kids"] == [new.kid]
    code, out = _invoke("clients", "rotate-keys", client["client_id"], "--jwks-url",
                        "https://93.184.215.14/jwks.json", "--database-url", db_url)  # a literal: the CLI uses real DNS
    assert json.loads(out)["jwks_url"] == "https://93.184.215.14/jwks.json"
    code, out = _invoke("clients", "set-scope", client["client_id"], "--scope", "system/Task.rs",
                        "--database-url", db_url)
    assert json.loads(out)["scope"] == "system/Task.rs"


@pytest.mark.parametrize("change,message", [
    ({"role": "system"}, "role must be one of"),
    ({"scope": "patient/*.read"}, "not a SMART system scope"),
    ({"organization": "no-such-org"}, "not in the directory"),
    ({"private": True}, "private material"),
    ({"jwks": None}, "either as a JWK Set"),
    ({"client_id": "x" * 65}, "1 to 64"),
    ({"client_id": "has space"}, "1 to 64"),
])
def test_add_refuses_bad_registrations(db_url, tmp_path, change, message):
    org = _org(db_url)
    key = ec_key()
    jwk = key.public_jwk
    if change.get("private"):
        import jwt as pyjwt

        jwk = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(key.private))
        jwk["kid"] = key.kid
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    args = {"organization": change.get("organization", org), "role": change.get("role", "partner"),
            "scope": change.get("scope", "system/*.rs")}
    argv = ["clients", "add", "--organization", args["organization"], "--role", args["role"], "--scope",
            args["scope"], "--database-url", db_url]
    if change.get("jwks", True) is not None:
        argv += ["--jwks", str(jwks)]
    if change.get("client_id"):
        argv += ["--client-id", change["client_id"]]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert message in result.output
    assert json.loads(runner.invoke(app, ["clients", "list", "--json", "--database-url", db_url]).output) == []


def test_disable_of_an_unknown_client_fails(db_url):
    code, out = _invoke("clients", "disable", "nobody", "--database-url", db_url)
    assert code == 2 and "no client" in out


def test_demo_clients_are_registered_once_with_keys_in_the_state_dir(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EXCHANGE_STATE_DIR", str(tmp_path / "var"))
    from exchange.settings import get_settings

    get_settings.cache_clear()
    try:
        first = runner.invoke(app, ["clients", "demo", "--database-url", db_url])
        assert first.exit_code == 0, first.output
        keys = sorted(p.name for p in (tmp_path / "var" / "demo-clients").iterdir())
        assert "demo-hotline-1.jwk.json" in keys and "demo-auditor.jwk.json" in keys and "demo-admin.jwk.json" in keys
        before = (tmp_path / "var" / "demo-clients" / "demo-shelter-1.jwk.json").read_text()
        second = runner.invoke(app, ["clients", "demo", "--database-url", db_url])
        assert second.exit_code == 0
        assert (tmp_path / "var" / "demo-clients" / "demo-shelter-1.jwk.json").read_text() == before
        clients = json.loads(runner.invoke(app, ["clients", "list", "--json", "--database-url", db_url]).output)
        roles = sorted(c["role"] for c in clients)
        assert roles == ["admin", "auditor"] + ["partner"] * 6
        assert "scripts/get_token.py" in first.output
        assert oct((tmp_path / "var" / "demo-clients" / "demo-admin.jwk.json").stat().st_mode & 0o777) == "0o600"
    finally:
        get_settings.cache_clear()


def test_make_run_and_the_readme_session_get_a_working_token(tmp_path):
    """`exchange serve --demo` (what `make run` runs), then scripts/get_token.py as the README shows."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exchange.main", "serve", "--port", str(port), "--database-url",
                             f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}", "--demo"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{base}/fhir/metadata", proc, lambda: proc.stdout.read().decode())
        key = tmp_path / "var" / "demo-clients" / "demo-hotline-1.jwk.json"
        script = [sys.executable, str(ROOT / "scripts" / "get_token.py"), "--base-url", base,
                  "--client-id", "demo-hotline-1", "--key", str(key)]
        token = subprocess.run(script, capture_output=True, text=True, check=True).stdout.strip()
        r = httpx.get(f"{base}/fhir/Organization", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert r.status_code == 200
        assert r.json()["total"] >= 6
        read = subprocess.run(script + ["--get", "Organization?name=Safe"], capture_output=True, text=True)
        assert read.returncode == 0, read.stderr
        assert json.loads(read.stdout)["resourceType"] == "Bundle"
        assert httpx.get(f"{base}/fhir/Organization", timeout=5).status_code == 401
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0].decode()
    assert "scripts/get_token.py" in output
    assert token not in output  # neither the token nor the assertion reaches the server's log
