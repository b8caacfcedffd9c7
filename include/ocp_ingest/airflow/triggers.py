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
    ``landing_url=None`` means "the landing area of the triggerer's configuration", resolved when the
    trigger runs: a wait that outlives a configuration change (or a restart) watches the right place.
    """

    def __init__(
        self, landing_url: str | None = None, poll_interval_s: float = 1.0, max_wait_s: float = 600.0
    ) -> None:
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
        from ocp_ingest.config import Settings
        from ocp_ingest.realtime import count_arrivals

        landing_url = self.landing_url or Settings.from_env().landing_url
        deadline = time.monotonic() + self.max_wait_s
        while True:
            try:
                waiting = await asyncio.to_thread(count_arrivals, landing_url)
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


class ExportReadyTrigger(BaseTrigger):
    """Polls one OCP export with the async client until it leaves PENDING/PROCESSING.

    Fires once with ``status`` COMPLETED, FAILED or EXPIRED (what OCP says), ``timeout`` (still being
    prepared after ``max_polls`` polls or ``max_wait_s``) or ``error`` (anything else the client raised).
    The interval grows by ``backoff`` up to ``max_interval_s``. Throttling and 5xx that outlast the
    client's own retries are OCP's state: the trigger waits here for as long as OCP's ``Retry-After`` says
    (or the current interval when it said nothing) and polls again; those waits count neither as polls
    nor against ``max_wait_s``, only against ``max_throttled_s`` (an export's results live a day).
    ``context`` is echoed in the event: on Airflow 3.3.2 ``dag.test()`` drops the ``kwargs`` given to
    ``defer()``, so the task carries its state here instead. ``run()`` only reads, so running it twice
    (HA triggerers, restarts) is harmless.
    """

    def __init__(
        self,
        export_id: str,
        ocp_conn_id: str = "ocp_default",
        poll_interval_s: float = 30.0,
        backoff: float = 1.5,
        max_interval_s: float = 300.0,
        max_polls: int = 500,
        max_wait_s: float = 6 * 3600.0,
        context: dict[str, Any] | None = None,
        max_throttled_s: float = 24 * 3600.0,
    ) -> None:
        super().__init__()
        if not export_id:
            raise ValueError("export_id is required")
        if (
            min(poll_interval_s, max_interval_s, max_wait_s, max_throttled_s) <= 0
            or max_polls < 1
            or backoff < 1
        ):
            raise ValueError(
                "poll interval, max interval, max wait, max throttled, max polls must be > 0; backoff >= 1"
            )
        self.export_id = export_id
        self.ocp_conn_id = ocp_conn_id
        self.poll_interval_s = poll_interval_s
        self.backoff = backoff
        self.max_interval_s = max_interval_s
        self.max_polls = max_polls
        self.max_wait_s = max_wait_s
        self.context = dict(context or {})
        self.max_throttled_s = max_throttled_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "export_id": self.export_id,
                "ocp_conn_id": self.ocp_conn_id,
                "poll_interval_s": self.poll_interval_s,
                "backoff": self.backoff,
                "max_interval_s": self.max_interval_s,
                "max_polls": self.max_polls,
                "max_wait_s": self.max_wait_s,
                "context": self.context,
                "max_throttled_s": self.max_throttled_s,
            },
        )

    def _event(self, status: str, polls: int, message: str = "") -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "export_id": self.export_id,
                "polls": polls,
                "message": message,
                "context": self.context,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from ocp_ingest.airflow.hooks import OcpHook
        from ocp_ingest.ocp import TransientError

        started = time.monotonic()
        interval = self.poll_interval_s
        polls = 0
        throttled = 0.0  # seconds spent waiting out OCP's throttling/5xx: not the export's preparation
        try:
            client = await OcpHook(self.ocp_conn_id).get_async_client()
        except Exception as exc:  # travels in the event; the task raises it in execute_complete
            yield self._event("error", polls, f"{type(exc).__name__}: {exc}")
            return
        async with client:
            while True:
                try:
                    export = await client.get_export(self.export_id)
                except TransientError as exc:
                    wait = exc.retry_after_s if exc.retry_after_s is not None else interval
                    if throttled + wait > self.max_throttled_s:
                        message = f"OCP unavailable for {throttled:.0f} s: {type(exc).__name__}: {exc}"
                        yield self._event("error", polls, message)
                        return
                    self.log.info("export %s: OCP says wait %.0f s (%s)", self.export_id, wait, exc)
                    await asyncio.sleep(wait)
                    throttled += wait
                    continue
                except Exception as exc:
                    yield self._event("error", polls + 1, f"{type(exc).__name__}: {exc}")
                    return
                polls += 1
                if not export.status.is_active:
                    yield self._event(export.status.value, polls, export.error or "")
                    return
                elapsed = time.monotonic() - started - throttled
                if polls >= self.max_polls or elapsed + interval > self.max_wait_s:
                    yield self._event(
                        "timeout", polls, f"still {export.status.value} after {polls} polls / {elapsed:.0f} s"
                    )
                    return
                await asyncio.sleep(interval)
                interval = min(self.max_interval_s, interval * self.backoff)


class ThrottleWaitTrigger(BaseTrigger):
    """Waits out OCP's throttling for a task, in the triggerer: fires ``throttle_waited`` after ``wait_s``.

    A task that was told to come back later (429, or 5xx with ``Retry-After``) defers here rather than
    sleep in a worker slot. ``context`` is echoed in the event, as with :class:`ExportReadyTrigger`.
    """

    def __init__(self, wait_s: float, context: dict[str, Any] | None = None) -> None:
        super().__init__()
        if wait_s < 0:
            raise ValueError("wait_s must not be negative")
        self.wait_s = wait_s
        self.context = dict(context or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"wait_s": self.wait_s, "context": self.context},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.wait_s)
        yield TriggerEvent({"status": "throttle_waited", "waited_s": self.wait_s, "context": self.context})
