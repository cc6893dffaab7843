"""openapi.yaml, generated from the app so the document and the routes cannot drift apart."""
from __future__ import annotations

import yaml

from exchange.app import create_app
from exchange.settings import Settings


def openapi_yaml() -> str:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    return yaml.safe_dump(app.openapi(), sort_keys=True, allow_unicode=True)


def write_openapi(path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(openapi_yaml())
