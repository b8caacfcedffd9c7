"""Sensors: cheap first check on the worker, then a deferral to the triggerer."""

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


class OcpExportSensor(BaseSensorOperator):
    """Waits, deferred in the triggerer, until a requested export is ready; re-creates an expired one.

    ``request`` is the request step's result (mapped). A cheap synchronous check comes first (a retried or
    re-run task often finds the export done); otherwise the wait holds no worker slot. Returns the request
    plus ``export_status``: COMPLETED, FAILED, EXPIRED (re-created ``max_recreates`` times already), TIMEOUT,
    or the request's own DRY_RUN/BLOCKED. Only ``error`` events fail the task (and so get retried).
    """

    template_fields = ("request",)

    def __init__(
        self,
        *,
        request: Any,
        ocp_conn_id: str = "ocp_default",
        max_recreates: int | None = None,
        **kwargs: Any,
    ) -> None:
        from ocp_ingest.airflow.export_operators import PLAN_LABEL_TEMPLATE

        kwargs.setdefault("map_index_template", PLAN_LABEL_TEMPLATE)
        super().__init__(**kwargs)
        self.request = request
        self.ocp_conn_id = ocp_conn_id
        self.max_recreates = max_recreates

    def _max_recreates(self) -> int:
        from ocp_ingest.config import Settings

        return Settings.from_env().export_max_recreates if self.max_recreates is None else self.max_recreates

    def _result(self, status: str, export_id: str | None, message: str = "", recreates: int = 0) -> dict:
        return {
            **self.request,
            "export_id": export_id,
            "export_status": status,
            "message": message,
            "recreates": recreates,
        }

    def poke(self, context: Any) -> bool:
        from ocp_ingest.ocp.hook import OcpHook

        with OcpHook(self.ocp_conn_id).get_client() as client:
            return not client.get_export(self.request["export_id"]).status.is_active

    def execute(self, context: Any) -> dict[str, Any]:
        from ocp_ingest.airflow.export_operators import export_trigger, label_instance
        from ocp_ingest.ocp.hook import OcpHook

        label_instance(context, self.request["plan"])
        if self.request.get("status") != "REQUESTED":
            return self._result(self.request.get("status", "ERROR"), self.request.get("export_id"))
        export_id = self.request["export_id"]
        with OcpHook(self.ocp_conn_id).get_client() as client:
            export = client.get_export(export_id)
        if not export.status.is_active:
            return self._settle(export_id, export.status.value, export.error or "", recreates=0)
        trigger = export_trigger(export_id, self.ocp_conn_id, {"recreates": 0})
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from ocp_ingest.airflow.export_operators import label_instance

        label_instance(context, self.request["plan"])
        status = event.get("status")
        state = event.get("context") or {}
        recreates = int(state.get("recreates", 0))
        if status == "error":
            raise RuntimeError(f"waiting for export {event.get('export_id')} failed: {event.get('message')}")
        if state.get("blocked_by"):  # we waited for another export to free the group: create ours now
            return self._recreate(recreates)
        if status == "timeout":
            return self._result("TIMEOUT", event.get("export_id"), event.get("message", ""), recreates)
        return self._settle(event["export_id"], status, event.get("message", ""), recreates)

    def _settle(self, export_id: str, status: str, message: str, recreates: int) -> dict[str, Any]:
        if status == "EXPIRED" and recreates < self._max_recreates():
            self.log.warning("export %s expired before it was downloaded: re-creating it", export_id)
            self._audit_expired(export_id)
            return self._recreate(recreates + 1)
        return self._result(status, export_id, message, recreates)

    def _audit_expired(self, export_id: str) -> None:
        from ocp_ingest.airflow.audit_actor import task_actor
        from ocp_ingest.ledger import open_ledger
        from ocp_ingest.reconciliation import ExportPlan, audit_export_milestone

        plan = ExportPlan.from_dict(self.request["plan"])
        with open_ledger(actor=task_actor()) as ledger:
            audit_export_milestone(
                ledger, "EXPORT_EXPIRED", plan.dialog_ids, export_id, "expired while waiting"
            )

    def _recreate(self, recreates: int) -> dict[str, Any]:
        from ocp_ingest.airflow.export_operators import export_trigger
        from ocp_ingest.ocp.hook import OcpHook
        from ocp_ingest.reconciliation import ExportPlan, create_or_adopt

        plan = ExportPlan.from_dict(self.request["plan"])
        with OcpHook(self.ocp_conn_id).get_client() as client:
            export_id, blocker = create_or_adopt(client, plan)
        if export_id is None:
            assert blocker is not None
            state = {"recreates": recreates, "blocked_by": blocker}
            trigger = export_trigger(blocker, self.ocp_conn_id, state)
            self.defer(trigger=trigger, method_name="execute_complete")
        self.defer(
            trigger=export_trigger(export_id, self.ocp_conn_id, {"recreates": recreates}),
            method_name="execute_complete",
        )
