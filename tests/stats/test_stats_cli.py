"""`exchange stats`: the same report on the command line (a table, or --json), bad input as one error line, and the
request recorded in the exchange log as the exchange's own."""
from __future__ import annotations

import orjson
from typer.testing import CliRunner

from exchange.main import cli as app
from tests.test_cli_errors import one_error_line

runner = CliRunner()


def test_stats_prints_a_table_and_json_and_is_recorded_in_the_log(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    table = runner.invoke(app, ["stats", "--by", "priority", "--start", "2026-01", "--end", "2026-03",
                                "--database-url", url])
    assert table.exit_code == 0, table.output
    assert "Referrals sent 2026-01-01 to 2026-03-31, by priority" in table.output and "total" in table.output
    found = runner.invoke(app, ["stats", "--json", "--start", "2026-01", "--end", "2026-03", "--database-url", url])
    assert found.exit_code == 0, found.output
    report = orjson.loads(found.output)
    assert [r["category"] for r in report["rows"]] == ["2026-01", "2026-02", "2026-03"]
    assert report["total"]["referrals"] == 0
    log = runner.invoke(app, ["audit", "export", "--database-url", url])
    events = [orjson.loads(line) for line in log.output.splitlines() if line.startswith("{")]
    stats = [e for e in events if e["subtype"][0]["code"] == "operation"]
    assert len(stats) == 2 and all(e["agent"][0]["role"][0]["coding"][0]["code"] == "system" for e in stats)


def test_bad_stats_input_is_one_error_line_naming_the_option(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    line = one_error_line(runner.invoke(app, ["stats", "--by", "her-name", "--database-url", url]))
    assert "--by" in line and "her-name" not in line
    line = one_error_line(runner.invoke(app, ["stats", "--start", "2026-05", "--end", "2026-01",
                                              "--database-url", url]))
    assert "--start" in line
