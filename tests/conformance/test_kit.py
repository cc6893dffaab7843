"""The partner conformance kit over real HTTP: a real server (uvicorn on a free port, the demo directory and clients,
SQLite and PostgreSQL) passes every check; a server with one rule broken fails the check that names that rule."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import conformance.cli as kit_cli
from tests.conformance.live import LiveServer, demo_settings, free_port



def run_kit(server: LiveServer, tmp_path: Path, *extra: str) -> tuple[int, dict]:
    keys = Path(server.settings.state_dir) / "demo-clients"
    report = tmp_path / "report.json"
    code = kit_cli.main(["--base-url", server.base_url, "--client-id", "demo-hotline-1",
                         "--key", str(keys / "demo-hotline-1.jwk.json"), "--peer-client-id", "demo-shelter-1",
                         "--peer-key", str(keys / "demo-shelter-1.jwk.json"), "--json", str(report),
                         "--junit", str(tmp_path / "report.xml"), *extra])
    return code, json.loads(report.read_text())


def test_the_kit_passes_against_a_real_server(database_url, tmp_path):
    settings = demo_settings(database_url, tmp_path)
    with LiveServer(settings) as server:
        code, report = run_kit(server, tmp_path, "--listen-port", str(free_port()))
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert len(statuses) >= 35
    assert set(statuses.values()) == {"pass"}, [(c["id"], c["detail"]) for c in report["checks"]
                                                if c["status"] != "pass"]
    assert code == 0
    for check in report["checks"]:
        assert check["rule"] and check["source"], check["id"]
    junit = (tmp_path / "report.xml").read_text()
    assert junit.count("<testcase ") == len(statuses)
    assert junit.count("<failure ") == sum(1 for s in statuses.values() if s == "fail")


BREAKS = {
    "consent-off": ("exchange.referral.consent.require_consent", "consent", "consent-required"),
    "isolation-off": ("exchange.need_to_know.visibility.access_filter", "isolation", "need-to-know"),
}


@pytest.mark.parametrize("broken", sorted(BREAKS))
def test_the_kit_fails_naming_the_rule_against_a_server_with_it_broken(broken, tmp_path, monkeypatch):
    target, group, rule = BREAKS[broken]
    module, _, name = target.rpartition(".")
    settings = demo_settings(f"sqlite+aiosqlite:///{tmp_path / 'exchange.db'}", tmp_path)
    if broken == "consent-off":
        async def no_consent_check(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
            return None
        monkeypatch.setattr(target, no_consent_check)
    else:
        from exchange.store.visibility import UNRESTRICTED
        monkeypatch.setattr(target, lambda ctx: UNRESTRICTED)
    with LiveServer(settings) as server:
        code, report = run_kit(server, tmp_path, "--only", group)
    assert code == 1
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert failed and all(c["group"] == group for c in failed)
    assert any(rule in c["detail"] for c in failed), failed


def test_exchange_conformance_is_the_kit_and_exits_2_when_it_cannot_start(tmp_path):
    from typer.testing import CliRunner

    from exchange.main import cli as app

    result = CliRunner().invoke(app, ["conformance", "--base-url", f"http://127.0.0.1:{free_port()}",
                                      "--client-id", "x", "--key", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "cannot reach" in result.output
