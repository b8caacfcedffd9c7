"""Requesting OCP exports from Airflow: create (or adopt) one plan's export, waiting out 409s deferred.

OCP runs one export at a time per group; a 409 means "another export is being prepared", never failure.
If that export is this plan's own (same group, window and data types: a retried task or a cleared run)
it is adopted; otherwise the task defers until it leaves the active state, then creates its own.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from ocp_ingest.airflow.triggers import ExportReadyTrigger
from ocp_ingest.config import Settings

#: Shows each mapped instance's plan in the UI, e.g. "grp-a 2026-11-24T09Z..2026-11-24T12Z (37 calls)".
PLAN_LABEL_TEMPLATE = "{{ plan_label | default('plan') }}"


def export_trigger(
    export_id: str, ocp_conn_id: str, context: dict[str, Any], settings: Settings | None = None
) -> ExportReadyTrigger:
    """The wait for one export, with the configured poll interval, backoff and bounds."""
    s = settings or Settings.from_env()
    return ExportReadyTrigger(
        export_id,
        ocp_conn_id=ocp_conn_id,
        poll_interval_s=s.export_poll_interval_s,
        backoff=s.export_poll_backoff,
        max_interval_s=max(s.export_poll_interval_s, s.export_poll_max_interval_s),
        max_polls=s.export_max_polls,
        max_wait_s=s.export_max_wait_s,
        context=context,
    )


def is_dry_run(context: Any) -> bool:
    params = context.get("params") or {}
    return bool(params.get("dry_run", False))


def label_instance(context: Any, plan: dict[str, Any]) -> None:
    """Name this mapped instance after its plan (rendered through ``map_index_template``)."""
    context["plan_label"] = plan.get("label", "")


class OcpRequestExportOperator(BaseOperator):
    """Creates the export of one :class:`~ocp_ingest.reconciliation.ExportPlan` (a dict, mapped).

    Returns ``{"plan", "export_id", "status"}`` with status REQUESTED, DRY_RUN (params.dry_run: nothing is
    asked of OCP) or BLOCKED (the group stayed busy through ``max_conflict_waits`` waits: the calls stay
    pending for the next run, no attempt is counted).
    """

    template_fields = ("plan",)

    def __init__(
        self,
        *,
        plan: Any,
        ocp_conn_id: str = "ocp_default",
        max_conflict_waits: int = 3,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("map_index_template", PLAN_LABEL_TEMPLATE)
        super().__init__(**kwargs)
        self.plan = plan
        self.ocp_conn_id = ocp_conn_id
        self.max_conflict_waits = max_conflict_waits

    def _result(self, status: str, export_id: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"plan": self.plan, "export_id": export_id, "status": status, **extra}

    def execute(self, context: Any) -> dict[str, Any]:
        label_instance(context, self.plan)
        if is_dry_run(context):
            return self._result("DRY_RUN")
        return self._request(conflict_waits=0)

    def _request(self, conflict_waits: int) -> dict[str, Any]:
        from ocp_ingest.ocp.hook import OcpHook
        from ocp_ingest.reconciliation import ExportPlan, create_or_adopt

        plan = ExportPlan.from_dict(self.plan)
        with OcpHook(self.ocp_conn_id).get_client() as client:
            export_id, blocker = create_or_adopt(client, plan)
        if export_id is not None:
            self.log.info("export %s requested for %s", export_id, plan.label)
            return self._result("REQUESTED", export_id)
        assert blocker is not None
        if conflict_waits >= self.max_conflict_waits:
            self.log.warning(
                "group %s still busy with export %s; left for the next run", plan.ocp_group, blocker
            )
            return self._result("BLOCKED", None, blocked_by=blocker)
        self.log.info("group %s busy with export %s (409): waiting for it, deferred", plan.ocp_group, blocker)
        self.defer(
            trigger=export_trigger(blocker, self.ocp_conn_id, {"conflict_waits": conflict_waits + 1}),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        label_instance(context, self.plan)
        if event.get("status") == "error":
            raise RuntimeError(f"waiting for the group's active export failed: {event.get('message')}")
        return self._request(conflict_waits=int((event.get("context") or {}).get("conflict_waits", 1)))
