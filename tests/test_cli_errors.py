"""Every `exchange` command answers bad input with one `error:` line that says what to do, never a traceback.

The commands are walked from the app itself, so a command added later is fed bad input too.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import typer
from joserfc.jwk import ECKey
from typer.testing import CliRunner

from exchange.main import cli as app

runner = CliRunner()


def _leaves(command, path=()):  # noqa: ANN001, ANN202
    children = getattr(command, "commands", None)
    if children:
        for name, child in children.items():
            yield from _leaves(child, (*path, name))
    elif path:
        yield path, command


COMMANDS = [(path, command) for path, command in _leaves(typer.main.get_command(app))
            if not command.context_settings.get("ignore_unknown_options")]  # hands its arguments to its own parser


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_error_line(result) -> str:  # noqa: ANN001
    output = result.output.strip()
    assert "Traceback" not in output and "╭" not in output, output
    assert result.exit_code != 0, output
    lines = [line for line in output.splitlines() if line.strip() and not line.rstrip().endswith(":")]  # prompts
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def _required_args(command, tmp_path: Path) -> list[str]:  # noqa: ANN001
    """Plausible values for a command's required parameters, so the bad input under test is the one reached."""
    args: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        kind = getattr(getattr(param, "type", None), "name", "")
        value = "1" if kind == "integer" else str(tmp_path / "file")
        args += [value] if param.param_type_name == "argument" else [param.opts[0], value]
    return args


def test_the_command_tree_is_walked():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"serve", "db upgrade", "orgs add", "clients add", "audit export", "worker", "demo referral",
            "dev receiver"} <= names


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p))
def test_an_unknown_option_is_one_error_line(path):
    line = one_error_line(runner.invoke(app, [*path, "--no-such-option"]))
    assert "--no-such-option" in line and "--help" in line


@pytest.mark.parametrize("path,command", [(p, c) for p, c in COMMANDS
                                          if any("--database-url" in x.opts for x in c.params)],
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_a_bad_database_url_is_one_error_line(path, command, tmp_path):
    (tmp_path / "file").write_text("{}")
    answers = "correct-horse-battery-1\n" * 2  # a command that prompts (a password) gets its answers
    line = one_error_line(runner.invoke(app, [*path, *_required_args(command, tmp_path),
                                              "--database-url", "not-a-url"], input=answers))
    assert "--database-url" in line or "--" in line


@pytest.mark.parametrize("url,says", [
    ("not-a-url", "not a database URL"),
    ("postgresql://someone:secret@127.0.0.1/db", "not postgresql://"),
    (f"postgresql+asyncpg://someone:secret@127.0.0.1:{_closed_port()}/db", "cannot connect to the database"),
    ("sqlite+aiosqlite:////no/such/folder/x.db", "unable to open database file"),
], ids=["not-a-url", "not-asyncpg", "closed-port", "no-such-folder"])  # the same ids in every process (pytest-xdist)
def test_each_kind_of_bad_database_url_says_what_is_wrong_without_the_password(url, says):
    line = one_error_line(runner.invoke(app, ["db", "upgrade", "--database-url", url]))
    assert says in line and "secret" not in line


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def demo_env(tmp_path, monkeypatch):
    """No exchange on the port the demo commands call, and an empty state folder; settings re-read."""
    from exchange.settings import get_settings

    monkeypatch.setenv("EXCHANGE_PORT", str(_closed_port()))
    monkeypatch.setenv("EXCHANGE_STATE_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield tmp_path / "var"
    get_settings.cache_clear()


def test_bad_values_of_particular_commands(db_url, tmp_path, demo_env):
    cases = {
        ("orgs", "add", "--name", "X", "--type", "spaceship", "--database-url", db_url): "not a kind of organisation",
        ("audit", "export", "-o", str(tmp_path / "missing" / "log.ndjson"), "--database-url", db_url):
            "does not exist",
        ("audit", "export", "--since", "yesterday", "--database-url", db_url): "--since",
        ("audit", "verify-export", str(tmp_path / "none.ndjson"), "--checkpoint", "a", "--checkpoint", "b"):
            "does not exist",
        ("clients", "add", "--organization", "o", "--scope", "system/*.rs", "--jwks", str(tmp_path / "no.json"),
         "--database-url", db_url): "cannot read the JWK Set",
        ("clients", "disable", "no-such-client", "--database-url", db_url): "no-such-client",
        ("demo", "referral", "--post"): "no key for demo-hotline-1",
        ("demo", "inbox", "shelter-1"): "no key for demo-shelter-1",
    }
    for args, says in cases.items():
        line = one_error_line(runner.invoke(app, list(args)))
        assert says in line, (args, line)


def test_demo_commands_say_when_no_exchange_answers(demo_env):
    keys = demo_env / "demo-clients"
    keys.mkdir(parents=True)
    (keys / "demo-hotline-1.jwk.json").write_text(json.dumps(ECKey.generate_key("P-384", parameters={"kid": "k1"}, private=True).as_dict(
        private=True)))
    line = one_error_line(runner.invoke(app, ["demo", "referral", "--post"]))
    assert "no exchange answers" in line and "make run" in line


def test_the_receiver_says_when_its_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        line = one_error_line(runner.invoke(app, ["dev", "receiver", "--port", str(taken.getsockname()[1])]))
    assert "--port" in line


def _get_token(*args: str) -> str:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "scripts" / "get_token.py"), *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and not done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: "), done.stderr
    return done.stderr


def test_get_token_says_what_is_wrong_in_one_line(tmp_path):
    key = tmp_path / "client.jwk.json"
    key.write_text(json.dumps(ECKey.generate_key("P-384", parameters={"kid": "k1"}, private=True).as_dict(
        private=True)))
    stopped = f"http://127.0.0.1:{_closed_port()}"
    assert "no key file at" in _get_token("--client-id", "c", "--key", str(tmp_path / "missing.json"))
    assert "no exchange answers at" in _get_token("--base-url", stopped, "--client-id", "c", "--key", str(key))
    said = _get_token("--base-url", f"{stopped}/fhir", "--client-id", "c", "--key", str(key))
    assert f"without /fhir: use {stopped}" in said
    key.write_text("{}")
    assert "does not hold a private EC or RSA JWK" in _get_token("--client-id", "c", "--key", str(key))
