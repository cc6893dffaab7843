"""Build the web inbox's gettext catalogues: extract the messages of the templates (Babel), write the English and
Arabic .po files (Arabic from exchange/web/locale/ar.py) and compile the .mo files the server loads.

    .venv/bin/python scripts/catalogues.py          (make catalogues)
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "exchange" / "web" / "locale"


def _arabic() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("ar", LOCALE / "ar.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.AR


def main() -> int:
    pot = LOCALE / "messages.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "-q", "extract", "-F",
                    str(LOCALE.parent / "babel.cfg"), "--no-location", "--sort-output", "--omit-header",
                    "-o", str(pot), "."], cwd=ROOT, check=True)
    with pot.open("rb") as f:
        template = read_po(f)
    arabic = _arabic()
    missing = [m.id for m in template if m.id and m.id not in arabic]
    unused = sorted(set(arabic) - {m.id for m in template if m.id})
    for locale, translate in (("en", lambda s: s), ("ar", arabic.get)):
        catalog = Catalog(locale=locale, project="gbv-exchange", fuzzy=False)
        for message in template:
            if message.id:
                catalog.add(message.id, translate(message.id) or "")
        folder = LOCALE / locale / "LC_MESSAGES"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "messages.po").open("wb") as f:
            write_po(f, catalog, omit_header=False, no_location=True, sort_output=True)
        with (folder / "messages.mo").open("wb") as f:
            write_mo(f, catalog)
    if unused:
        print("in ar.py but in no template:", *unused, sep="\n  ", file=sys.stderr)
    if missing:
        print("untranslated in ar.py:", *missing, sep="\n  ", file=sys.stderr)
    return 1 if missing or unused else 0


if __name__ == "__main__":
    raise SystemExit(main())
