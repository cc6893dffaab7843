"""The layering of pyproject.toml's import-linter contracts holds: no module imports from a layer above its own
(but the known violations listed there, each to be burned down), no circle among the modules of a package."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_imports_keep_to_the_layers_written_in_pyproject_toml(capsys):
    from importlinter.cli import lint_imports

    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report
    assert "0 broken" in report
