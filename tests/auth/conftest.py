"""Fixtures of the auth tests."""
from __future__ import annotations

import httpx
import pytest


@pytest.fixture
async def root(app):
    """An anonymous HTTP client at the server root (token endpoint, discovery); no token, no system context."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
        yield http


@pytest.fixture
def registry(exchange):
    from exchange.auth.service import auth_service

    return auth_service(exchange).registry
