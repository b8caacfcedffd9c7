"""Sensors: cheap first check on the worker, then a deferral to the triggerer.

:class:`LandingArrivalsSensor` waits for the realtime DAG's arrivals; :class:`OcpExportSensor` requests
one plan's OCP export and waits for it.
"""

from __future__ import annotations

from typing import Any, NoReturn

from airflow.sdk import BaseSensorOperator

from ocp_ingest.airflow.triggers import ExportReadyTrigger, LandingArrivalsTrigger, ThrottleWaitTrigger
from ocp_ingest.config import Settings

#: Shows each mapped instance's plan in the UI, e.g. "grp-a 2026-11-24T09Z..2026-11-24T12Z (37 calls)".
PLAN_LABEL_TEMPLATE = "{{ plan_label | default('plan') }}"


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


def export_trigger(
    export_id: str, ocp_conn_id: str, context: dict[str, Any], settings: Settings
) -> ExportReadyTrigger:
    """The wait for one export, with the configured poll interval, backoff and bounds."""
    return ExportReadyTrigger(
        export_id,
        ocp_conn_id=ocp_conn_id,
        poll_interval_s=settings.export_poll_interval_s,
        backoff=settings.export_poll_backoff,
        max_interval_s=max(settings.export_poll_interval_s, settings.export_poll_max_interval_s),
        max_polls=settings.export_max_polls,
        max_wait_s=settings.export_max_wait_s,
        context=context,
        max_throttled_s=settings.export_max_throttled_s,
    )


class OcpExportSensor(BaseSensorOperator):
    """Creates (or adopts) the export of one :class:`~ocp_ingest.reconcile.plan.ExportPlan` and waits for
    it, deferred: a deferrable-only sensor (``execute`` defers; there is no poke loop holding a worker).

    ``plan`` is a plan dict (mapped). The lifecycle is :mod:`ocp_ingest.reconcile.exports`; this adds the
    waiting. Steps, all restartable:

    1. create the export, or adopt this plan's own after a 409 (a retry or a cleared run); on a 409 for
       another export, defer until that one leaves the active state, then try again (at most
       ``max_conflict_waits`` waits: then BLOCKED, the calls stay pending for the next run, no attempt
       is counted);
    2. remember the export on every planned call (``ExportRequested``), while OCP prepares it;
    3. a cheap synchronous status check (an adopted export is often done already), else defer to the
       triggerer: no worker slot is held while the export is prepared;
    4. an export that expired before it was downloaded is re-created (``max_recreates`` times).

    Throttling (429, or 5xx with a ``Retry-After`` longer than the client's budget: ``RateLimited``) while
    requesting is OCP's state, not the calls': the task defers for OCP's wait (``ThrottleWaitTrigger``)
    and requests again; no attempt is counted. Past ``OCP_INGEST_EXPORT_MAX_THROTTLED_S`` in total it
    fails (no retry) with a message that says so; the close then counts no attempt on its calls either.

    The request is a single HTTP call on the worker; one task launch instead of two (request, then wait)
    sits on every export's critical path. Returns ``{"plan", "export_id", "export_status", "message",
    "recreates"}`` with export_status COMPLETED, FAILED, EXPIRED (re-created ``max_recreates`` times
    already), TIMEOUT, BLOCKED or DRY_RUN (params.dry_run: nothing is asked of OCP). Only ``error``
    events fail the task (and so get retried). The trigger echoes this task's state in its event
    (``context``): ``dag.test()`` on 3.3.2 drops the kwargs given to ``defer()``.
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

    def _result(
        self, status: str, export_id: str | None, message: str = "", recreates: int = 0, **extra: Any
    ) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "export_id": export_id,
            "export_status": str(status),
            "message": message,
            "recreates": recreates,
            **extra,
        }

    def execute(self, context: Any) -> dict[str, Any]:
        from ocp_ingest.reconcile.exports import ExportOutcomeStatus

        context["plan_label"] = self.plan.get("label", "")
        if (context.get("params") or {}).get("dry_run", False):
            return self._result(ExportOutcomeStatus.DRY_RUN, None)
        return self._request(conflict_waits=0, recreates=0)

    def _request(
        self, conflict_waits: int, recreates: int, expired: str | None = None, throttled_s: float = 0.0
    ) -> dict[str, Any]:
        """Create or adopt the plan's export (replacing ``expired``, if given), then defer on it."""
        from ocp_ingest.airflow.audit_actor import task_actor
        from ocp_ingest.airflow.hooks import OcpHook
        from ocp_ingest.ledger import open_ledger
        from ocp_ingest.ocp.errors import RateLimited
        from ocp_ingest.reconcile.exports import (
            ExportOutcomeStatus,
            create_or_adopt,
            remember_export,
            replace_expired,
        )
        from ocp_ingest.reconcile.plan import ExportPlan
        from ocp_ingest.storage import StorageLayout

        settings = Settings.from_env()
        plan = ExportPlan.from_dict(self.plan)
        state = {"conflict_waits": conflict_waits, "recreates": recreates, "throttled_s": throttled_s}
        try:
            with (
                OcpHook(self.ocp_conn_id).get_client() as client,
                open_ledger(settings, actor=task_actor()) as ledger,
            ):
                if expired is None:
                    export_id, blocker = create_or_adopt(client, plan)
                else:
                    export_id, blocker = replace_expired(
                        client,
                        ledger,
                        StorageLayout.from_settings(settings),
                        plan,
                        expired,
                        "expired while waiting",
                    )
                if export_id is not None:
                    self.log.info("export %s requested for %s", export_id, plan.label)
                    remember_export(ledger, plan.dialog_ids, export_id)
                    export = client.get_export(export_id)
        except RateLimited as exc:
            # Every step above is restartable: a created export is adopted by the next try (409, ours).
            self._wait_out_throttling(exc, plan.label, {**state, "expired": expired}, settings)
        if export_id is None:
            assert blocker is not None
            if conflict_waits >= self.max_conflict_waits:
                self.log.warning(
                    "group %s still busy with export %s; left for the next run", plan.ocp_group, blocker
                )
                return self._result(
                    ExportOutcomeStatus.BLOCKED, None, recreates=recreates, blocked_by=blocker
                )
            self.log.info(
                "group %s busy with export %s (409): waiting for it, deferred", plan.ocp_group, blocker
            )
            blocked = {**state, "conflict_waits": conflict_waits + 1, "blocked_by": blocker}
            self.defer(
                trigger=export_trigger(blocker, self.ocp_conn_id, blocked, settings),
                method_name="execute_complete",
            )
        if not export.status.is_active:  # adopted an export that is done already
            return self._settle(export_id, export.status.value, export.error or "", state)
        self.defer(
            trigger=export_trigger(export_id, self.ocp_conn_id, state, settings),
            method_name="execute_complete",
        )
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover

    def _wait_out_throttling(
        self, exc: Exception, label: str, state: dict[str, Any], settings: Settings
    ) -> NoReturn:
        """Defer for OCP's ``Retry-After`` (or one poll interval), or fail once throttled past the bound."""
        from airflow.sdk.exceptions import AirflowFailException

        throttled_s = float(state.get("throttled_s", 0.0))
        retry_after = getattr(exc, "retry_after_s", None)
        wait = float(retry_after) if retry_after is not None else settings.export_poll_interval_s
        if throttled_s + wait > settings.export_max_throttled_s:
            raise AirflowFailException(
                f"OCP kept throttling the export request for {label} (HTTP "
                f"{getattr(exc, 'status_code', None) or 429}, {throttled_s:.0f} s waited, next wait "
                f"{wait:.0f} s > OCP_INGEST_EXPORT_MAX_THROTTLED_S={settings.export_max_throttled_s:.0f}): "
                "this is OCP's rate limit, not a problem with the calls; they count no attempt and the "
                f"next run asks again. Last answer: {exc}"
            )
        self.log.warning(
            "OCP throttles the export request for %s (%s): waiting %.0f s, deferred", label, exc, wait
        )
        self.defer(
            trigger=ThrottleWaitTrigger(wait, {**state, "throttled_s": throttled_s + wait}),
            method_name="execute_complete",
        )
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from ocp_ingest.reconcile.exports import ExportOutcomeStatus

        context["plan_label"] = self.plan.get("label", "")
        status = event.get("status")
        state = dict(event.get("context") or {})
        if status == "error":
            raise RuntimeError(f"waiting for export {event.get('export_id')} failed: {event.get('message')}")
        conflict_waits, recreates = int(state.get("conflict_waits", 0)), int(state.get("recreates", 0))
        throttled_s = float(state.get("throttled_s", 0.0))
        if status == "throttle_waited":  # OCP's wait is over: request again, where we were
            return self._request(conflict_waits, recreates, state.get("expired") or None, throttled_s)
        if state.get("blocked_by"):  # the group's other export is done (or we stopped waiting): create ours
            return self._request(conflict_waits, recreates, throttled_s=throttled_s)
        if status == "timeout":
            return self._result(
                ExportOutcomeStatus.TIMEOUT, event.get("export_id"), event.get("message", ""), recreates
            )
        return self._settle(event["export_id"], str(status), event.get("message", ""), state)

    def _settle(self, export_id: str, status: str, message: str, state: dict[str, Any]) -> dict[str, Any]:
        from ocp_ingest.reconcile.exports import ExportOutcomeStatus

        conflict_waits, recreates = int(state.get("conflict_waits", 0)), int(state.get("recreates", 0))
        max_recreates = self.max_recreates
        if max_recreates is None:
            max_recreates = Settings.from_env().export_max_recreates
        if status == ExportOutcomeStatus.EXPIRED and recreates < max_recreates:
            throttled_s = float(state.get("throttled_s", 0.0))
            return self._request(conflict_waits, recreates + 1, expired=export_id, throttled_s=throttled_s)
        return self._result(status, export_id, message, recreates)
