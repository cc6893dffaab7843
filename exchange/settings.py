"""The exchange's configuration: one object, read from EXCHANGE_* environment variables.

Nothing else in the code base reads the environment; everything that can be configured is a field here.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXCHANGE_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{Path.cwd() / 'exchange.db'}",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///file.db or postgresql+asyncpg://user@host/db",
    )
    host: str = "127.0.0.1"
    port: int = 8080
    public_base_url: str | None = Field(
        default=None,
        description="The externally visible base URL (https://exchange.example.org). Defaults to http://host:port.",
    )
    max_body_bytes: int = Field(default=1024 * 1024, description="Requests with a larger body get 413.")
    default_page_size: int = 20
    max_page_size: int = 200
    migrate_on_start: bool = True
    database_pool_size: int = 10
    state_dir: Path = Field(
        default=Path.cwd() / "var",
        description="Where the exchange keeps local secrets (its signing key, demo client keys).",
    )

    @property
    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def fhir_base_url(self) -> str:
        return f"{self.base_url}/fhir"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
