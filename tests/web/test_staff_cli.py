"""`exchange staff add | list | disable | enable`, as an administrator runs them on the server."""
from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from exchange.main import cli as app

runner = CliRunner()


def test_staff_accounts_are_added_with_totp_enrolment_listed_and_disabled(tmp_path):
    db = f"sqlite+aiosqlite:///{tmp_path / 'staff.db'}"
    org = runner.invoke(app, ["orgs", "add", "--name", "Safe House", "--type", "shelter", "--database-url", db])
    assert org.exit_code == 0, org.output
    org_id = org.output.strip()
    added = runner.invoke(app, ["staff", "add", "--username", "amina", "--organization", org_id, "--role",
                                "caseworker", "--password-stdin", "--database-url", db],
                          input="a long enough password\n")
    assert added.exit_code == 0, added.output
    secret = re.search(r"TOTP secret: ([A-Z2-7]{32})", added.output).group(1)
    assert f"otpauth://totp/GBV%20referral%20exchange:amina?secret={secret}" in added.output
    short = runner.invoke(app, ["staff", "add", "--username", "bad", "--organization", org_id, "--password-stdin",
                                "--database-url", db], input="short\n")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    stranger = runner.invoke(app, ["staff", "add", "--username", "zed", "--organization", "no-such-org",
                                   "--password-stdin", "--database-url", db], input="a long enough password\n")
    assert stranger.exit_code == 2 and "no Organization" in stranger.output
    disabled = runner.invoke(app, ["staff", "disable", "amina", "--database-url", db])
    assert disabled.exit_code == 0, disabled.output
    listed = runner.invoke(app, ["staff", "list", "--database-url", db])
    assert json.loads(listed.output) == [{"id": json.loads(listed.output)[0]["id"], "username": "amina",
                                          "organization": org_id, "role": "caseworker", "locale": None,
                                          "active": False}]
    assert secret not in listed.output and "argon2" not in listed.output
