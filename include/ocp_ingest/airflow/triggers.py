"""Triggers (run in the triggerer): asynchronous waits that hold no worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class LandingArrivalsTrigger(BaseTrigger):
    """Fires when recordings or CDR events wait in the landing area, or after ``max_wait_s`` (idle).

    The listing itself is synchronous fsspec, so it runs in a thread: the triggerer's event loop is never
    blocked. ``run()`` has no side effects, so running it twice (HA triggerers) is harmless.
    """

    def __init__(self, landing_url: str, poll_interval_s: float = 1.0, max_wait_s: float = 600.0) -> None:
        super().__init__()
        if poll_interval_s <= 0 or max_wait_s <= 0:
            raise ValueError("poll_interval_s and max_wait_s must be positive")
        self.landing_url = landing_url
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "landing_url": self.landing_url,
                "poll_interval_s": self.poll_interval_s,
                "max_wait_s": self.max_wait_s,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from ocp_ingest.realtime import count_arrivals

        deadline = time.monotonic() + self.max_wait_s
        while True:
            try:
                waiting = await asyncio.to_thread(count_arrivals, self.landing_url)
            except Exception as exc:  # travels in the event; raised by the task in execute_complete
                yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
                return
            if waiting:
                yield TriggerEvent({"status": "arrivals", "waiting": waiting})
                return
            if time.monotonic() >= deadline:
                yield TriggerEvent({"status": "idle", "waiting": 0})
                return
            await asyncio.sleep(self.poll_interval_s)
