"""Task callables of the ``ocp_reconciliation`` DAG: params and XComs in, a domain call, small JSON out.

The rules live in :mod:`ocp_ingest.reconcile`; here is only what Airflow adds: params, the OCP
connection, the task context, the metrics and the alert callback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from ocp_ingest.airflow.audit_actor import task_actor
from ocp_ingest.config import Settings
from ocp_ingest.ledger import open_ledger
from ocp_ingest.ledger.model import utcnow
from ocp_ingest.reconcile.close import carried_calls, close_run, match_outcomes
from ocp_ingest.reconcile.detect import Detection, PendingQuery, detect
from ocp_ingest.reconcile.plan import ExportPlan, plan_exports
from ocp_ingest.reconcile.sweep import due_sweeps
from ocp_ingest.reconcile.windows import parse_when
from ocp_ingest.storage import ObjectExists, StorageLayout, write_create_only

log = logging.getLogger(__name__)

ESCALATED_METRIC = "ocp_ingest.reconcile.escalated"
ANOMALY_METRIC = "ocp_ingest.reconcile.anomaly"


def _names(value: Any) -> tuple[str, ...]:
    """A params list (or a comma-separated string from the UI) as a tuple of names."""
    if not value:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(v).strip() for v in value if str(v).strip())


def query_from_params(params: Mapping[str, Any], settings: Settings) -> PendingQuery:
    """The run's pending query: the scheduled default, or the window/groups/LOBs a user triggered with."""
    grace = params.get("grace_s")
    return PendingQuery(
        grace=timedelta(seconds=settings.pending_grace_s if grace in (None, "") else float(grace)),
        limit=settings.reconciliation_max_pending,
        open_after=timedelta(seconds=settings.open_call_timeout_s),
        ocp_groups=_names(params.get("ocp_groups")),
        lobs=_names(params.get("lobs")),
        window_start=parse_when(params.get("window_start")),
        window_end=parse_when(params.get("window_end")),
    )


def detect_pending(params: Mapping[str, Any]) -> dict[str, Any]:
    """Pending calls (compact rows, oldest first) plus the window and groups a backfill asked for."""
    settings = Settings.from_env()
    query = query_from_params(params, settings)
    with open_ledger(settings, actor=task_actor()) as ledger:
        detection = detect(ledger, query, dry_run=bool(params.get("dry_run")))
    result = detection.to_dict()
    log.info(
        "pending calls: %d%s",
        len(detection.calls),
        f" in window {result['window']}" if query.is_window else "",
    )
    return result


def plan(detected: Mapping[str, Any], max_plans_per_group: int = 1) -> list[dict[str, Any]]:
    """Export plans (one per group by default), oldest first, then the sweeps, as dicts for mapping."""
    settings = Settings.from_env()
    detection = Detection.from_dict(detected)
    result = plan_exports(
        detection.calls,
        max_plans_per_group=max_plans_per_group,
        max_calls=settings.reconciliation_max_calls_per_plan,
        window=detection.window,
        ocp_groups=detection.ocp_groups,
    )
    plans = result.plans
    if detection.window is None and settings.sweep_groups:  # a backfill is a sweep of its own window
        with open_ledger(settings) as ledger:
            plans += due_sweeps(
                ledger,
                settings.sweep_groups,
                now=utcnow(),
                lookback=timedelta(hours=settings.sweep_lookback_hours),
                settle=timedelta(seconds=settings.open_call_timeout_s),
                busy={p.ocp_group for p in plans},
            )
    for p in plans:
        log.info("plan: %s", p.label)
    if result.carried:
        log.info("carried to the next run (oldest first there): %s", result.carried)
    return [p.to_dict() for p in plans]


def download(
    context: Any, wait_result: Mapping[str, Any], ocp_conn_id: str = "ocp_default"
) -> dict[str, Any]:
    """The in-process download (download_mode=inprocess): the same domain call the pod makes."""
    from ocp_ingest.airflow.hooks import OcpHook
    from ocp_ingest.reconcile.download import download_plan

    export_plan = ExportPlan.from_dict(wait_result["plan"])
    context["plan_label"] = export_plan.label  # the mapped instance's name (map_index_template)
    summary = download_plan(
        export_plan,
        wait_result.get("export_id"),
        wait_result.get("export_status") or "",
        Settings.from_env(),
        OcpHook(ocp_conn_id).get_client,
        message=wait_result.get("message") or "",
        run_id=context["run_id"],
    )
    return summary.to_dict()


def _as_list(values: Any) -> list[Any]:
    """Results of a mapped task pulled as one argument: a sequence, or a lone dict for one instance."""
    if values is None:
        return []
    if isinstance(values, Mapping):
        return [values]
    return list(values)


def close(
    detected: Mapping[str, Any] | None,
    plans: Sequence[Mapping[str, Any]] | None,
    downloads: Sequence[Any] | None,
    run_id: str,
    ti: Any = None,
    wait_task_id: str | None = None,
) -> dict[str, Any]:
    """Count attempts, escalate, mark no-recording calls; the summary is the return value and in the log.

    It runs whatever happened upstream (trigger rule ``all_done``): a plan whose request or download task
    failed after its retries has no download result; the wait results (``wait_task_id``, pulled only
    then) tell which step failed. Its calls count no attempt (the failure is ours) but are still escalated
    at OCP's retention deadline, and the other plans are settled as usual. The task then fails (no retry:
    the settling is done) so the run shows failed; the summary is pushed first, for the alert callback
    and the UI.
    """
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.sdk.observability.stats import Stats

    if detected is None or plans is None:
        raise AirflowFailException(
            "detect_pending or plan_exports failed: nothing was planned, nothing to close"
        )
    settings = Settings.from_env()
    detection = Detection.from_dict(detected)
    export_plans = [ExportPlan.from_dict(p) for p in _as_list(plans)]
    results = _as_list(downloads)
    waits: list[Any] = []
    if ti is not None and wait_task_id and len(results) < len(export_plans):
        waits = _as_list(ti.xcom_pull(task_ids=wait_task_id))
    with open_ledger(settings, actor=task_actor()) as ledger:
        summary = close_run(
            ledger,
            settings,
            match_outcomes(export_plans, results, waits),
            run_id=run_id,
            dry_run=detection.dry_run,
            carried=carried_calls(detection.calls, export_plans),
        )
    result = summary.to_dict()
    if summary.escalated:
        Stats.incr(ESCALATED_METRIC, count=len(summary.escalated))
    Stats.incr("ocp_ingest.reconcile.recovered", count=result["recovered"])
    log.info("reconciliation summary: %s", json.dumps({k: v for k, v in result.items() if k != "calls"}))
    for line in result["calls"]:
        log.info("call %(dialog_id)s [%(ocp_group)s]: %(outcome)s %(detail)s", line)
    problems = []
    if summary.failed_chains:
        problems.append(
            f"{len(summary.failed_chains)} export chain(s) failed after their retries: "
            f"{'; '.join(summary.failed_chains)}. Their calls count no attempt; any at OCP's retention "
            "deadline was escalated (summary above)."
        )
    if summary.anomalies:
        # A listing full of recordings that names none of the planned calls is not a success.
        Stats.incr(ANOMALY_METRIC, count=len(summary.anomalies))
        problems.append(
            f"{len(summary.anomalies)} export(s) listed recordings but none of their planned calls "
            f"(anomaly: check how OCP lists recordings): {'; '.join(summary.anomalies)}"
        )
    if problems:
        if ti is not None:
            ti.xcom_push(key="return_value", value=result)
        message = " ".join(problems)
        log.error("reconciliation run %s: %s", run_id, message)
        raise AirflowFailException(message)
    return result


def _record_name(run_id: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_-]", "-", run_id).strip("-_") or "run"
    return f"{clean[:47]}-{hashlib.sha256(run_id.encode()).hexdigest()[:16]}"


def alert_on_escalation(context: Any) -> None:
    """on_success/on_failure_callback of close_and_escalate: an alert naming every escalated call and
    every anomaly (an export listing recordings but none of its planned calls).

    It logs one ERROR line per run and keeps the alert as a JSON record in the audit area
    (``reconciliation/alerts/``), where a notifier (Slack, PagerDuty, e-mail) or an auditor picks it up.
    Replace or extend it with an Airflow notifier in the DAG if your deployment has one.
    """
    ti = context["ti"]
    summary = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index) or {}
    escalations = summary.get("escalations") or []
    anomalies = summary.get("anomalies") or []
    if not escalations and not anomalies:
        return
    run_id = context.get("run_id") or summary.get("run_id") or "run"
    if escalations:
        log.error(
            "ALERT reconciliation run %s escalated %d call(s): %s",
            run_id,
            summary.get("escalated", len(escalations)),
            ", ".join(f"{e['dialog_id']} ({e['state']})" for e in escalations),
        )
    for anomaly in anomalies:
        log.error("ALERT reconciliation run %s anomaly: %s", run_id, anomaly)
    layout = StorageLayout.from_settings(Settings.from_env())
    dest = layout.reconciliation_record_path("alerts", _record_name(run_id))
    body = {
        "run_id": run_id,
        "escalated": summary.get("escalated"),
        "escalations": escalations,
        "anomalies": anomalies,
    }
    with contextlib.suppress(ObjectExists):
        write_create_only(dest, [json.dumps(body, sort_keys=True, indent=1).encode()])
