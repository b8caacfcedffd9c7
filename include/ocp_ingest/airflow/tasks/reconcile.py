"""Task callables of the ``ocp_reconciliation`` DAG: params and XComs in, small JSON out.

The logic lives in :mod:`ocp_ingest.reconcile` and :mod:`ocp_ingest.reconcile.download`; here is only
what Airflow adds: params, the OCP connection, the metric and the alert callback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from ocp_ingest.airflow.audit_actor import task_actor
from ocp_ingest.config import Settings
from ocp_ingest.ledger import Outcome, open_ledger
from ocp_ingest.ledger.model import utcnow
from ocp_ingest.ledger.transitions import ExportRequested
from ocp_ingest.reconcile import (
    ExportOutcome,
    ExportPlan,
    PendingCall,
    PendingQuery,
    close_run,
    detect_pending,
    floor_hour,
    parse_when,
    plan_exports,
    plan_sweeps,
)
from ocp_ingest.storage import ObjectExists, StorageLayout, write_create_only

log = logging.getLogger(__name__)

ESCALATED_METRIC = "ocp_ingest.reconcile.escalated"
#: Ledger transitions written per transaction (a short write lock: other writers interleave between batches)
LEDGER_BATCH = 500


def _names(value: Any) -> tuple[str, ...]:
    """A params list (or a comma-separated string from the UI) as a tuple of names."""
    if not value:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(v).strip() for v in value if str(v).strip())


def query_from_params(params: Mapping[str, Any], settings: Settings) -> PendingQuery:
    """The run's pending query: the scheduled default, or the window/groups/LOBs a user triggered with."""
    start, end = parse_when(params.get("window_start")), parse_when(params.get("window_end"))
    if (start is None) != (end is None):
        raise ValueError("give both window_start and window_end (ISO 8601), or neither")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"window_end {end} must be after window_start {start}")
    grace = params.get("grace_s")
    return PendingQuery(
        grace=timedelta(seconds=settings.pending_grace_s if grace in (None, "") else float(grace)),
        limit=settings.reconciliation_max_pending,
        open_after=timedelta(seconds=settings.open_call_timeout_s),
        ocp_groups=_names(params.get("ocp_groups")),
        lobs=_names(params.get("lobs")),
        window_start=start,
        window_end=end,
    )


def detect(params: Mapping[str, Any]) -> dict[str, Any]:
    """Pending calls (compact rows, oldest first) plus the window and groups a backfill asked for."""
    settings = Settings.from_env()
    query = query_from_params(params, settings)
    with open_ledger(settings, actor=task_actor()) as ledger:
        calls = detect_pending(ledger, query)
        groups = set(query.ocp_groups)
        if query.is_window and not groups:
            # A backfill covers every group the ledger knows in the window (or in the chosen LOBs).
            assert query.window_start is not None and query.window_end is not None
            lobs: list[str | None] = list(query.lobs) or [None]
            for lob in lobs:
                groups |= {
                    r.ocp_group
                    for r in ledger.calls_started_between(query.window_start, query.window_end, lob=lob)
                    if r.ocp_group
                }
    result = {
        "calls": [c.to_row() for c in calls],
        "window": [query.window_start.isoformat(), query.window_end.isoformat()] if query.is_window else None,
        "ocp_groups": sorted(groups) if query.is_window else [],
        "dry_run": bool(params.get("dry_run")),
    }
    log.info("pending calls: %d%s", len(calls), f" in window {result['window']}" if query.is_window else "")
    return result


def plan(detected: Mapping[str, Any], max_plans_per_group: int = 1) -> list[dict[str, Any]]:
    """Export plans (one per group by default), oldest first, as dicts for dynamic task mapping."""
    settings = Settings.from_env()
    window = None
    if detected.get("window"):
        start, end = (parse_when(v) for v in detected["window"])
        assert start is not None and end is not None
        window = (start, end)
    result = plan_exports(
        [PendingCall.from_row(r) for r in detected["calls"]],
        max_plans_per_group=max_plans_per_group,
        max_calls=settings.reconciliation_max_calls_per_plan,
        window=window,
        ocp_groups=detected.get("ocp_groups") or (),
    )
    plans = result.plans
    if window is None and settings.sweep_groups:
        plans += sweeps(settings, busy={p.ocp_group for p in plans})
    for p in plans:
        log.info("plan: %s", p.label)
    if result.carried:
        log.info("carried to the next run (oldest first there): %s", result.carried)
    return [p.to_dict() for p in plans]


def sweeps(settings: Settings, busy: set[str]) -> list[ExportPlan]:
    """Sweep plans for the configured groups without a plan this run (their never-diffed settled hours)."""
    now = utcnow()
    lookback = timedelta(hours=settings.sweep_lookback_hours)
    first = floor_hour(now - lookback)
    with open_ledger(settings) as ledger:
        swept = {g: ledger.swept_hours(g, first, now) for g in settings.sweep_groups if g not in busy}
    return plan_sweeps(
        settings.sweep_groups,
        swept,
        now=now,
        lookback=lookback,
        settle=timedelta(seconds=settings.open_call_timeout_s),
        busy=busy,
    )


def mark_export_requested(dialog_ids: Sequence[str], export_id: str) -> int:
    """``ExportRequested`` on each planned call: the export that carries it (the stored record keeps it).

    Runs once the export exists, while OCP prepares it; re-applying the same export is UNCHANGED (no write,
    no audit event), so a retried task changes nothing twice. Returns how many records changed.
    """
    settings = Settings.from_env()
    with open_ledger(settings, actor=task_actor()) as ledger:
        todo = [ExportRequested(d, export_id) for d in dict.fromkeys(dialog_ids)]
        changed = 0
        for i in range(0, len(todo), LEDGER_BATCH):  # one transaction per batch
            results = ledger.apply_many(todo[i : i + LEDGER_BATCH])
            changed += sum(r.outcome is Outcome.APPLIED for r in results)
    log.info("export %s remembered on %d of %d planned calls", export_id, changed, len(dialog_ids))
    return changed


def download(wait_result: Mapping[str, Any], run_id: str, ocp_conn_id: str = "ocp_default") -> dict[str, Any]:
    """The in-process download (download_mode=inprocess): the same entrypoint the pod runs."""
    from ocp_ingest.reconcile.download import run_download, skipped_download

    if wait_result.get("export_status") != "COMPLETED":
        return skipped_download(wait_result["plan"], wait_result.get("export_id"))

    return run_download(wait_result["plan"], wait_result["export_id"], run_id=run_id, ocp_conn_id=ocp_conn_id)


def _as_list(values: Any) -> list[Any]:
    """Results of a mapped task pulled as one argument: a sequence, or a lone dict for one instance."""
    if values is None:
        return []
    if isinstance(values, Mapping):
        return [values]
    return list(values)


def _outcomes(
    plans: Sequence[Mapping[str, Any]], waits: Sequence[Any], downloads: Sequence[Any]
) -> list[ExportOutcome]:
    """One outcome per plan. Results are matched to plans by the plan's label, not by position: a
    chain that failed has no result, and the others must not shift onto its plan."""
    waits_by_plan = {w["plan"]["label"]: w for w in waits if isinstance(w, Mapping) and w.get("plan")}
    downloads_by_plan = {
        d["plan_label"]: d for d in downloads if isinstance(d, Mapping) and "plan_label" in d
    }
    outcomes = []
    for plan_dict in plans:
        plan = ExportPlan.from_dict(plan_dict)
        wait = waits_by_plan.get(plan.label)
        got = downloads_by_plan.get(plan.label) or {}
        if wait is None:
            status, message = "ERROR", "request_and_wait failed after its retries (see its log)"
        else:
            status, message = wait.get("export_status") or "ERROR", wait.get("message") or ""
        if status == "COMPLETED" and not got:
            status, message = "DOWNLOAD_FAILED", "download_and_store failed after its retries (see its log)"
        elif status == "COMPLETED" and got.get("status") == "expired":
            status = "EXPIRED"
        outcomes.append(
            ExportOutcome(
                plan=plan,
                export_status=status,
                export_id=got.get("export_id") or (wait or {}).get("export_id"),
                message=message,
                call_outcomes=got.get("outcomes") or {},
                call_details=got.get("details") or {},
                discovered=tuple(got.get("discovered") or ()),
                no_recording=got.get("no_recording") or {},
                manifest_diffed=status == "COMPLETED" and got.get("status") == "done",
            )
        )
    return outcomes


def close(
    detected: Mapping[str, Any] | None,
    plans: Sequence[Mapping[str, Any]] | None,
    waits: Sequence[Any] | None,
    downloads: Sequence[Any] | None,
    run_id: str,
    ti: Any = None,
) -> dict[str, Any]:
    """Count attempts, escalate, mark no-recording calls; the summary is the return value and in the log.

    It runs whatever happened upstream (trigger rule ``all_done``): a plan whose request or download task
    failed after its retries has no result; its calls count no attempt (the failure is ours) but are still
    escalated at OCP's retention deadline, and the other plans are settled as usual. The task then fails
    (no retry: the settling is done) so the run shows failed; the summary is pushed first, for the alert
    callback and the UI.
    """
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.sdk.observability.stats import Stats

    if detected is None or plans is None:
        raise AirflowFailException(
            "detect_pending or plan_exports failed: nothing was planned, nothing to close"
        )
    settings = Settings.from_env()
    plans = _as_list(plans)
    planned = Counter(p["ocp_group"] for p in plans for _ in p["dialog_ids"])
    pending = Counter(row[1] for row in detected.get("calls", []))
    carried = {g: n - planned.get(g, 0) for g, n in pending.items() if n > planned.get(g, 0)}
    with open_ledger(settings, actor=task_actor()) as ledger:
        summary = close_run(
            ledger,
            settings,
            _outcomes(_as_list(plans), _as_list(waits), _as_list(downloads)),
            run_id=run_id,
            dry_run=bool(detected.get("dry_run")),
            carried=carried,
        )
    result = summary.to_dict()
    if summary.escalated:
        Stats.incr(ESCALATED_METRIC, count=len(summary.escalated))
    Stats.incr("ocp_ingest.reconcile.recovered", count=result["recovered"])
    log.info("reconciliation summary: %s", json.dumps({k: v for k, v in result.items() if k != "calls"}))
    for line in result["calls"]:
        log.info("call %(dialog_id)s [%(ocp_group)s]: %(outcome)s %(detail)s", line)
    if summary.failed_chains:
        if ti is not None:
            ti.xcom_push(key="return_value", value=result)
        message = (
            f"{len(summary.failed_chains)} export chain(s) failed after their retries: "
            f"{'; '.join(summary.failed_chains)}. Their calls count no attempt; any at OCP's retention "
            "deadline was escalated (summary above)."
        )
        log.error("reconciliation run %s: %s", run_id, message)
        raise AirflowFailException(message)
    return result


def _record_name(run_id: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_-]", "-", run_id).strip("-_") or "run"
    return f"{clean[:47]}-{hashlib.sha256(run_id.encode()).hexdigest()[:16]}"


def alert_on_escalation(context: Any) -> None:
    """on_success_callback of close_and_escalate: an alert naming every escalated call.

    It logs one ERROR line per run and keeps the alert as a JSON record in the audit area
    (``reconciliation/alerts/``), where a notifier (Slack, PagerDuty, e-mail) or an auditor picks it up.
    Replace or extend it with an Airflow notifier in the DAG if your deployment has one.
    """
    ti = context["ti"]
    summary = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index) or {}
    escalations = summary.get("escalations") or []
    if not escalations:
        return
    run_id = context.get("run_id") or summary.get("run_id") or "run"
    log.error(
        "ALERT reconciliation run %s escalated %d call(s): %s",
        run_id,
        summary.get("escalated", len(escalations)),
        ", ".join(f"{e['dialog_id']} ({e['state']})" for e in escalations),
    )
    layout = StorageLayout.from_settings(Settings.from_env())
    dest = layout.reconciliation_record_path("alerts", _record_name(run_id))
    body = {"run_id": run_id, "escalated": summary.get("escalated"), "escalations": escalations}
    with contextlib.suppress(ObjectExists):
        write_create_only(dest, [json.dumps(body, sort_keys=True, indent=1).encode()])
