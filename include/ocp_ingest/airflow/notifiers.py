"""The alerts as Airflow Notifiers: an escalation of a reconciliation run, a breach of the completeness SLA.

Each notifier fires only when there is something to say (the run escalated calls; the report task failed on
its SLA), then logs one ERROR line, keeps the alert as a JSON record in the audit area (where an auditor or a
log/file shipper picks it up), and passes the alert to the notifiers given in ``forward_to`` (Slack, SNS,
e-mail, ...) with its text in the context as ``ocp_alert``, so a templated message can say
``"{{ ocp_alert }}"``::

    from airflow.providers.slack.notifications.slack import SlackNotifier

    EscalationNotifier(forward_to=[SlackNotifier(slack_conn_id="slack_api_default", text="{{ ocp_alert }}")])

Forwarded notifiers are called in turn; one that fails is logged and does not stop the others (the
record is already kept).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk import BaseNotifier

from ocp_ingest.config import Settings

log = logging.getLogger(__name__)

#: The context key a forwarded notifier's templates read the alert's text from.
ALERT_CONTEXT_KEY = "ocp_alert"


def record_name(run_id: str) -> str:
    """A file name for ``run_id``'s alert record: readable, bounded, unique per run."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "-", run_id).strip("-_") or "run"
    return f"{clean[:47]}-{hashlib.sha256(run_id.encode()).hexdigest()[:16]}"


class _OcpAlertNotifier(BaseNotifier):
    """An alert from the context (or none), logged, recorded, then forwarded."""

    def __init__(
        self, *, forward_to: Sequence[Callable[[Any], Any]] = (), settings: Settings | None = None
    ) -> None:
        super().__init__()
        self.forward_to = tuple(forward_to)
        self._settings = settings

    @property
    def settings(self) -> Settings:
        return self._settings or Settings.from_env()

    def alert(self, context: Any) -> dict[str, Any] | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def record(self, alert: dict[str, Any]) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def notify(self, context: Any) -> None:
        alert = self.alert(context)
        if alert is None:
            return
        log.error("ALERT %s", alert["message"])
        alert["record"] = self.record(alert)
        context[ALERT_CONTEXT_KEY] = alert["message"]
        context["ocp_alert_details"] = alert
        for notifier in self.forward_to:
            try:
                notifier(context)
            except Exception:  # one channel down must not hide the alert from the others
                log.exception("alert notifier %s failed", type(notifier).__name__)


class EscalationNotifier(_OcpAlertNotifier):
    """``close_and_escalate``'s success and failure callback: an alert naming every escalated call and every
    anomaly (an export listing recordings but none of its planned calls).

    The summary is the task's return value (pushed before the task fails, when it does). The record is
    ``reconciliation/alerts/<run>.json`` in the audit area, once per run.
    """

    def alert(self, context: Any) -> dict[str, Any] | None:
        ti = context["ti"]
        summary = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index) or {}
        escalations = summary.get("escalations") or []
        anomalies = summary.get("anomalies") or []
        if not escalations and not anomalies:
            return None
        run_id = context.get("run_id") or summary.get("run_id") or "run"
        said = []
        if escalations:
            calls = ", ".join(f"{e['dialog_id']} ({e['state']})" for e in escalations)
            said.append(f"escalated {summary.get('escalated', len(escalations))} call(s): {calls}")
        said += [f"anomaly: {a}" for a in anomalies]
        return {
            "run_id": run_id,
            "escalated": summary.get("escalated"),
            "escalations": escalations,
            "anomalies": anomalies,
            "message": f"reconciliation run {run_id} " + "; ".join(said),
        }

    def record(self, alert: dict[str, Any]) -> str:
        from ocp_ingest.storage import ObjectExists, StorageLayout, write_create_only

        layout = StorageLayout.from_settings(self.settings)
        dest = layout.reconciliation_record_path("alerts", record_name(alert["run_id"]))
        body = {k: alert[k] for k in ("run_id", "escalated", "escalations", "anomalies")}
        with contextlib.suppress(ObjectExists):
            write_create_only(dest, [json.dumps(body, sort_keys=True, indent=1).encode()])
        return str(dest)


class SlaBreachNotifier(_OcpAlertNotifier):
    """``completeness_report``'s failure callback: an alert when the task failed on the completeness SLA.

    Any other failure (a storage error, a bug) is left to Airflow's usual failure handling. The record is
    ``reports/alerts/sla-<time>.json`` in the audit area.
    """

    def alert(self, context: Any) -> dict[str, Any] | None:
        from ocp_ingest.report.completeness import CompletenessSlaBreached

        exception = context.get("exception")
        if not isinstance(exception, CompletenessSlaBreached):
            return None
        return {"run_id": str(context.get("run_id") or "run"), "message": str(exception)}

    def record(self, alert: dict[str, Any]) -> str:
        from ocp_ingest.report.publish import record_sla_alert

        return record_sla_alert(self.settings.audit_url, alert["run_id"], alert["message"])
