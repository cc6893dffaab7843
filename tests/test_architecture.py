"""The layering of pyproject.toml's import-linter contracts holds: no module imports from a layer above its own
(but the known violations listed there, each to be burned down), no circle among the modules of a package."""
from __future__ import annotations

import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_imports_keep_to_the_layers_written_in_pyproject_toml(capsys):
    from importlinter.cli import lint_imports

    # lint-imports configures logging with dictConfig, which disables every logger that exists: turn them back on,
    # or the log tests that run after this one in the same process see nothing
    enabled = [lg for lg in logging.Logger.manager.loggerDict.values()
               if isinstance(lg, logging.Logger) and not lg.disabled]
    try:
        code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    finally:
        for lg in enabled:
            lg.disabled = False
    report = capsys.readouterr().out
    assert code == 0, report
    assert "0 broken" in report
