"""The command line, run as a user runs it: db upgrade, orgs add, demo, and serve over real HTTP."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from exchange.main import cli as app
from tests.serving import free_port, wait_until_answering

runner = CliRunner()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


def test_db_upgrade_says_what_it_applied_and_then_that_nothing_was_left(db_url):
    first = runner.invoke(app, ["db", "upgrade", "--database-url", db_url])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("applied ") and "0001_core" in first.output
    again = runner.invoke(app, ["db", "upgrade", "--database-url", db_url])
    assert again.exit_code == 0, again.output
    assert again.output == "the database was already up to date: nothing to apply\n"


def test_orgs_add_prints_the_new_id_and_reuses_it_for_the_same_identifier(db_url):
    args = ["orgs", "add", "--name", "Safe House", "--type", "shelter", "--identifier", "urn:moi|S-1",
            "--database-url", db_url]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, args)
    assert again.output.strip() == first.output.strip()
    assert len(first.output.strip()) == 36


def test_orgs_add_refuses_an_unknown_type(db_url):
    result = runner.invoke(app, ["orgs", "add", "--name", "X", "--type", "spaceship", "--database-url", db_url])
    assert result.exit_code != 0


def test_demo_loads_each_kind_of_organisation_once(db_url):
    first = runner.invoke(app, ["demo", "--json", "--database-url", db_url])
    assert first.exit_code == 0, first.output
    loaded = json.loads(first.output[first.output.index("{"):])
    for key in ("hotline-1", "shelter-1", "clinic-1", "legal-1", "counselling-1", "livelihood-1"):
        assert key in loaded
    second = json.loads(runner.invoke(app, ["demo", "--json", "--database-url", db_url]).output[first.output.index("{"):])
    assert second == loaded


def test_serve_answers_metadata_over_real_http(tmp_path: Path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exchange.main", "serve", "--port", str(port), "--database-url",
                             f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}", "--demo"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        r = wait_until_answering(f"http://127.0.0.1:{port}/fhir/metadata", proc, lambda: proc.stdout.read().decode())
        assert r.status_code == 200
        assert r.json()["fhirVersion"] == "4.0.1"
        r = httpx.get(f"http://127.0.0.1:{port}/fhir/Organization?name=secret-name-xyz", timeout=5)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0].decode()
    # the access log names the route and the status, never a query string's values
    assert "/fhir/metadata" in output
    assert "secret-name-xyz" not in output
