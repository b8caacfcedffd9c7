"""Sensors: cheap first check on the worker, then a deferral to the triggerer.

(An OCP export is requested and waited for by one deferrable sensor,
:class:`~ocp_ingest.airflow.export_operators.OcpExportSensor`.)
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseSensorOperator

from ocp_ingest.airflow.triggers import LandingArrivalsTrigger


class LandingArrivalsSensor(BaseSensorOperator):
    """Waits, deferred, until something lands for the realtime DAG (an idle wait ends after max_wait_s).

    Under load arrivals are always there, so the first check returns at once and no deferral happens.
    """

    template_fields = ("landing_url",)

    def __init__(
        self,
        *,
        landing_url: str | None = None,
        poll_interval_s: float = 1.0,
        max_wait_s: float = 600.0,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.landing_url = landing_url
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s

    def _landing_url(self) -> str:
        if self.landing_url:
            return self.landing_url
        from ocp_ingest.config import Settings

        return Settings.from_env().landing_url

    def poke(self, context: Any) -> bool:
        from ocp_ingest.realtime import count_arrivals

        return count_arrivals(self._landing_url()) > 0

    def execute(self, context: Any) -> dict[str, Any]:
        if self.poke(context):
            return {"status": "arrivals"}
        if not self.deferrable:  # classic poke/reschedule mode
            super().execute(context)
            return {"status": "arrivals"}
        self.defer(
            # Only an explicit landing_url is pinned; otherwise the triggerer resolves its own configuration.
            trigger=LandingArrivalsTrigger(self.landing_url, self.poll_interval_s, self.max_wait_s),
            method_name="execute_complete",
        )
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") == "error":
            raise RuntimeError(f"landing check failed: {event.get('message')}")
        return event
