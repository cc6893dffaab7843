"""A real exchange for the kit and the fuzzer: `exchange serve --demo` in a thread, on a free port."""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import uvicorn

from exchange.main import create_app
from exchange.demo.clients import register_demo_clients
from exchange.settings import Settings
from exchange.store.migrate import upgrade
from exchange.main import build
from tests.serving import free_port


class LiveServer:
    """`exchange serve --demo` in a thread: the real app, the real dispatcher, a real socket."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = f"http://127.0.0.1:{settings.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.server.should_exit = True
        self.thread.join(timeout=30)


def demo_settings(database_url: str, tmp_path: Path) -> Settings:
    settings = Settings(database_url=database_url, state_dir=tmp_path / "state", host="127.0.0.1",
                        port=free_port(), notify_allow_loopback=True, notify_poll_interval=0.2)

    async def seed() -> None:
        exchange = build(settings)
        await upgrade(exchange.db)
        await register_demo_clients(exchange)
        await exchange.db.dispose()

    asyncio.run(seed())
    return settings
