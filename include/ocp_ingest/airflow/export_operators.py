"""One OCP export from Airflow: request (or adopt) a plan's export, then wait for it deferred.

OCP runs one export at a time per group; a 409 means "another export is being prepared", never failure.
If that export is this plan's own (same group, window and data types: a retried task or a cleared run)
it is adopted; otherwise the task defers until it leaves the active state, then creates its own.

Requesting and waiting are one deferrable sensor (:class:`OcpExportSensor`): the request is a single HTTP
call made on the worker, then the task defers to :class:`~ocp_ingest.airflow.triggers.ExportReadyTrigger`,
whose async client polls the export's status in the triggerer, and holds no worker slot while OCP prepares
the export (or while another export holds the group). One task launch instead of two (request, then wait)
on every export's critical path: measured, that was 2-3 s per export on 2 cores.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseSensorOperator

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


class OcpExportSensor(BaseSensorOperator):
    """Creates (or adopts) the export of one :class:`~ocp_ingest.reconcile.ExportPlan` and waits for it,
    deferred: a deferrable-only sensor (``execute`` defers; there is no poke loop holding a worker).

    ``plan`` is a plan dict (mapped). Steps, all restartable:

    1. create the export, or adopt this plan's own after a 409 (a retry or a cleared run); on a 409 for
       another export, defer until that one leaves the active state, then try again (at most
       ``max_conflict_waits`` waits: then BLOCKED, the calls stay pending for the next run, no attempt
       is counted);
    2. remember the export on every planned call (``ExportRequested``), while OCP prepares it;
    3. a cheap synchronous status check (an adopted export is often done already), else defer to the
       triggerer: no worker slot is held while the export is prepared;
    4. an export that expired before it was downloaded is re-created (``max_recreates`` times).

    Returns ``{"plan", "export_id", "export_status", "message", "recreates"}`` with export_status
    COMPLETED, FAILED, EXPIRED (re-created ``max_recreates`` times already), TIMEOUT, BLOCKED or DRY_RUN
    (params.dry_run: nothing is asked of OCP). Only ``error`` events fail the task (and so get retried).
    The trigger echoes this task's state in its event (``context``): ``dag.test()`` on 3.3.2 drops the
    kwargs given to ``defer()``.
    """

    template_fields = ("plan",)

    def __init__(
        self,
        *,
        plan: Any,
        ocp_conn_id: str = "ocp_default",
        max_conflict_waits: int = 3,
        max_recreates: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("map_index_template", PLAN_LABEL_TEMPLATE)
        super().__init__(**kwargs)
        self.plan = plan
        self.ocp_conn_id = ocp_conn_id
        self.max_conflict_waits = max_conflict_waits
        self.max_recreates = max_recreates

    def _max_recreates(self) -> int:
        if self.max_recreates is not None:
            return self.max_recreates
        return Settings.from_env().export_max_recreates

    def _result(
        self, status: str, export_id: str | None, message: str = "", recreates: int = 0, **extra: Any
    ) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "export_id": export_id,
            "export_status": status,
            "message": message,
            "recreates": recreates,
            **extra,
        }

    def execute(self, context: Any) -> dict[str, Any]:
        label_instance(context, self.plan)
        if is_dry_run(context):
            return self._result("DRY_RUN", None)
        return self._request(conflict_waits=0, recreates=0)

    def _request(self, conflict_waits: int, recreates: int) -> dict[str, Any]:
        from ocp_ingest.airflow.hooks import OcpHook
        from ocp_ingest.reconcile import ExportPlan, create_or_adopt

        plan = ExportPlan.from_dict(self.plan)
        state = {"conflict_waits": conflict_waits, "recreates": recreates}
        with OcpHook(self.ocp_conn_id).get_client() as client:
            export_id, blocker = create_or_adopt(client, plan)
            if export_id is not None:
                self.log.info("export %s requested for %s", export_id, plan.label)
                self._mark_requested(export_id)
                export = client.get_export(export_id)
        if export_id is None:
            assert blocker is not None
            if conflict_waits >= self.max_conflict_waits:
                self.log.warning(
                    "group %s still busy with export %s; left for the next run", plan.ocp_group, blocker
                )
                return self._result("BLOCKED", None, recreates=recreates, blocked_by=blocker)
            self.log.info(
                "group %s busy with export %s (409): waiting for it, deferred", plan.ocp_group, blocker
            )
            blocked = {**state, "conflict_waits": conflict_waits + 1, "blocked_by": blocker}
            self.defer(
                trigger=export_trigger(blocker, self.ocp_conn_id, blocked), method_name="execute_complete"
            )
        if not export.status.is_active:  # adopted an export that is done already
            return self._settle(export_id, export.status.value, export.error or "", state)
        self.defer(trigger=export_trigger(export_id, self.ocp_conn_id, state), method_name="execute_complete")
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover

    def _mark_requested(self, export_id: str) -> None:
        """Every planned call remembers the export that carries it (done while OCP prepares it)."""
        from ocp_ingest.airflow.tasks.reconcile import mark_export_requested

        mark_export_requested(self.plan["dialog_ids"], export_id)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        label_instance(context, self.plan)
        status = event.get("status")
        state = dict(event.get("context") or {})
        if status == "error":
            raise RuntimeError(f"waiting for export {event.get('export_id')} failed: {event.get('message')}")
        conflict_waits, recreates = int(state.get("conflict_waits", 0)), int(state.get("recreates", 0))
        if state.get("blocked_by"):  # the group's other export is done (or we stopped waiting): create ours
            return self._request(conflict_waits, recreates)
        if status == "timeout":
            return self._result("TIMEOUT", event.get("export_id"), event.get("message", ""), recreates)
        return self._settle(event["export_id"], str(status), event.get("message", ""), state)

    def _settle(self, export_id: str, status: str, message: str, state: dict[str, Any]) -> dict[str, Any]:
        conflict_waits, recreates = int(state.get("conflict_waits", 0)), int(state.get("recreates", 0))
        if status == "EXPIRED" and recreates < self._max_recreates():
            self.log.warning("export %s expired before it was downloaded: re-creating it", export_id)
            self._audit_expired(export_id)
            return self._request(conflict_waits, recreates + 1)
        return self._result(status, export_id, message, recreates)

    def _audit_expired(self, export_id: str) -> None:
        from ocp_ingest.airflow.audit_actor import task_actor
        from ocp_ingest.ledger import open_ledger
        from ocp_ingest.reconcile import ExportPlan, audit_export_milestone

        plan = ExportPlan.from_dict(self.plan)
        with open_ledger(actor=task_actor()) as ledger:
            audit_export_milestone(
                ledger, "EXPORT_EXPIRED", plan.dialog_ids, export_id, "expired while waiting"
            )
