"""Waiting in a test for something another task does (a deadline only guards against a hang)."""
from __future__ import annotations

import asyncio
from typing import Callable


async def until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Wait for `condition()` to hold, checking every 10 ms; fail naming `what` after `seconds`."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")
