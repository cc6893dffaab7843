"""The README's quickstart and the docs' recipes, run exactly as written against a real `exchange serve --demo`.

A recipe is a ```sh block (a plain ``` block is a synopsis with placeholders: its `exchange` commands and options
must exist); the ```text block right after it is its expected output. Every expected line must match
an output line, in order (output lines in between are allowed): `…` stands for anything, runs of spaces and of the
table rule `━` for runs of any length. The blocks of one page run in one bash session (variables carry over) in a
folder that looks like a checkout after `make run` (`.venv` and `scripts` linked, `var/` and `exchange.db` the
server's), with `PATH` free of the virtual environment, so the page's own `source .venv/bin/activate` must work.
The only change made to a recipe is the ports: `8080` becomes the test server's, `9000` (the local notification
receiver's) a free one.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving import free_port, wait_until_answering

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`make run` in a fresh checkout-like folder: `exchange serve --demo` on a free port."""
    home = tmp_path_factory.mktemp("checkout")
    for name in (".venv", "scripts"):
        (home / name).symlink_to(ROOT / name)
    port = free_port()
    env = {**os.environ, "EXCHANGE_PORT": str(port), "EXCHANGE_NOTIFY_ALLOW_LOOPBACK": "true",
           "EXCHANGE_NOTIFY_POLL_INTERVAL": "0.2"}
    env.pop("EXCHANGE_DATABASE_URL", None)
    env.pop("EXCHANGE_KEY_ENCRYPTION_KEY", None)  # like `make run`: the development KEK in var/, which the
    # reader's shell (no EXCHANGE_* variables) finds too
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "exchange.main", "serve", "--demo"], cwd=home, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    wait_until_answering(f"http://127.0.0.1:{port}/fhir/metadata", proc, (home / "server.log").read_text)
    yield home, port
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def recipes(markdown: str) -> list[tuple[str, str | None]]:
    """(commands, expected output or None) for each ```sh block, in page order."""
    blocks = [(m.group(1), m.group(2), m.start(), m.end()) for m in BLOCK.finditer(markdown)]
    out = []
    for i, (lang, body, _, end) in enumerate(blocks):
        if lang != "sh":
            continue
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        adjacent = following is not None and following[0] == "text" and not markdown[end:following[2]].strip()
        out.append((body, following[1] if adjacent else None))
    return out


def section(markdown: str, heading: str) -> str:
    """From a heading (any level) to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(heading)}\n", markdown, re.M)
    assert match, heading
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(markdown, match.end())
    return markdown[match.start():end.start() if end else None]


def _pattern(line: str) -> re.Pattern:
    parts = []
    for token in re.split(r"(…|\s+|━+)", line.strip()):
        if token == "…":
            parts.append(".*?")
        elif token and token.isspace():
            parts.append(r"\s+")
        elif token and set(token) == {"━"}:
            parts.append("━+")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts))


def unmatched(expected: str, actual: str) -> str | None:
    """The first expected line not found (in order) in the actual output, or None when all are."""
    lines = [a.strip() for a in actual.splitlines()]
    at = 0
    for want in (w for w in expected.splitlines() if w.strip()):
        pattern = _pattern(want)
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        if at == len(lines):
            return want
        at += 1
    return None


def run_session(served, blocks: list[tuple[str, str | None]], ports: dict[str, str]) -> list[str]:
    """Run the blocks in one bash session; return each block's output (stdout and stderr)."""
    home, port = served
    marker = "<<<recipe-output>>>"
    script = "".join(f"echo '{marker}'\n{_ported(body, ports)}\n" for body, _ in blocks)
    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p not in (venv_bin,
                                                                                       str(Path(sys.executable).parent)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_") and k != "VIRTUAL_ENV"}
    env.update(PATH=path, EXCHANGE_PORT=str(port))
    done = subprocess.run(["bash", "-c", script], cwd=home, env=env, capture_output=True, text=True, timeout=120)
    outputs = (done.stdout + done.stderr).split(marker + "\n")[1:]
    assert len(outputs) == len(blocks), done.stdout + done.stderr
    return outputs


def _ported(text: str, ports: dict[str, str]) -> str:
    for written, used in ports.items():
        text = text.replace(written, used)
    return text


def check_page(served, blocks: list[tuple[str, str | None]]) -> None:
    ports = {"8080": str(served[1]), "9000": str(free_port())}
    outputs = run_session(served, blocks, ports)
    for (body, expected), actual in zip(blocks, outputs):
        assert "Traceback" not in actual, f"{body}\n{actual}"
        if expected is not None:
            missing = unmatched(_ported(expected, ports), actual)
            assert missing is None, f"$ {body.strip()}\nexpected line not found: {missing}\n--- got ---\n{actual}"


def test_the_matcher_checks_lines_in_order_and_treats_ellipsis_as_anything():
    assert unmatched("a Task/… b\nc", "x\na Task/12 b\nc") is None
    assert unmatched("c\na Task/… b", "a Task/12 b\nc") == "a Task/… b"
    assert unmatched("Id ┃ Name\n━━╇━━", "Id   ┃ Name\n━━━━━╇━━━━━") is None
    assert unmatched("ok: 3 records", "ok: 4 records") == "ok: 3 records"


SETUP = ("make run", "make test", "EXCHANGE_NOTIFY_ALLOW_LOOPBACK=true make run")  # the fixture stands for them
PAGES = sorted((ROOT / "docs").glob("*.md"))


def runnable(blocks: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """The blocks without the set-up lines (`make run` is the served fixture, `make test` this suite)."""
    out = []
    for body, expected in blocks:
        kept = "\n".join(line for line in body.splitlines() if not line.strip().startswith(SETUP))
        if kept.strip():
            out.append((kept + "\n", expected))
    return out


def test_the_readme_quickstart_makes_the_round_trip_when_pasted(served):
    readme = (ROOT / "README.md").read_text()
    quickstart = recipes(section(readme, "Quickstart"))
    assert len([b for b in quickstart if b[1] is not None]) >= 5  # five commands, each with its expected output
    assert quickstart[0][0].strip().startswith("source .venv/bin/activate")
    assert [b for b in recipes(readme) if b not in quickstart] == [(recipes(readme)[0][0], None)]  # make run|test
    check_page(served, runnable(recipes(readme)))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_recipe_of_the_docs_runs_and_says_what_the_page_says(served, page):
    blocks = runnable(recipes(page.read_text()))
    if not blocks:
        pytest.skip(f"{page.name} has no recipes")
    check_page(served, blocks)


def test_the_notification_recipe_needs_the_development_switch():
    partners = (ROOT / "docs" / "partners.md").read_text()
    blocks = recipes(section(partners, "Trying notifications on your machine"))
    assert blocks[0][0].strip().startswith("EXCHANGE_NOTIFY_ALLOW_LOOPBACK=true make run")
    assert "exchange dev receiver" in blocks[1][0] and "exchange demo subscribe" in blocks[1][0]


def synopsis() -> str:
    """One line per `exchange` command, made from the app (the Command line section of docs/operators.md)."""
    import typer

    from exchange.main import cli as app

    def leaves(command, path):  # noqa: ANN001, ANN202
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                yield from leaves(child, (*path, name))
        else:
            yield path, command

    lines = []
    for path, command in leaves(typer.main.get_command(app), ()):
        words = ["exchange", *path]
        for param in command.params:
            if param.param_type_name == "argument":
                words.append(param.name.upper() if param.required else f"[{param.name.upper()}]")
                continue
            if "--help" in param.opts:
                continue
            name = max(param.opts, key=len)
            shown = name if getattr(param, "is_flag", False) else f"{name} {param.name.upper()}"
            words.append(shown if param.required else f"[{shown}]")
        lines.append(" ".join(words))
    return "\n".join(lines)


def test_the_command_line_synopsis_is_generated_from_the_app():
    operators = (ROOT / "docs" / "operators.md").read_text()
    written = BLOCK.search(section(operators, "Command line")).group(2).strip()
    assert written == synopsis(), f"paste this into the Command line block of docs/operators.md:\n{synopsis()}"


def test_every_command_a_synopsis_names_exists_with_its_options():
    """Plain ``` blocks (synopses, placeholders) name real commands and options only."""
    import typer

    from exchange.main import cli as app

    root = typer.main.get_command(app)
    for page in [ROOT / "README.md", *PAGES]:
        for lang, body in BLOCK.findall(page.read_text()):
            for line in body.splitlines() if lang == "" else ():
                words = line.split("#")[0].split()
                if not words or words[0] not in ("exchange", ".venv/bin/exchange"):
                    continue
                command, rest = root, words[1:]
                while rest and getattr(command, "commands", None) and rest[0] in command.commands:
                    command, rest = command.commands[rest[0]], rest[1:]
                assert not getattr(command, "commands", None), f"{page.name}: {line}"
                options = {o for p in command.params for o in p.opts}
                for word in rest:
                    for option in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", word):
                        assert option in options, f"{page.name}: {line}: {option}"
