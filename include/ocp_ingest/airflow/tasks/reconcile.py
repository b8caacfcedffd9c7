"""Task callables of the ``ocp_reconciliation`` DAG: params and XComs in, a domain call, small JSON out.

The rules live in :mod:`ocp_ingest.reconcile`; here is only what Airflow adds: params, the OCP
connection, the task context and the metrics (the alerts: :mod:`ocp_ingest.airflow.notifiers`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ocp_ingest.airflow.audit_actor import task_actor
from ocp_ingest.config import Settings
from ocp_ingest.ledger import open_ledger
from ocp_ingest.ledger.model import utcnow
from ocp_ingest.reconcile.detect import Detection, PendingQuery, detect
from ocp_ingest.reconcile.plan import ExportPlan, chain_links, plan_exports
from ocp_ingest.reconcile.sweep import due_sweeps
from ocp_ingest.reconcile.windows import parse_when
from ocp_ingest.storage import StorageLayout

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


#: ``DagRun.run_type`` of a run made by Airflow's own Backfill (``DagRunType.BACKFILL_JOB``).
BACKFILL_RUN_TYPE = "backfill"


def query_from_params(
    params: Mapping[str, Any],
    settings: Settings,
    data_interval: tuple[datetime | None, datetime | None] | None = None,
) -> PendingQuery:
    """The run's pending query: the scheduled default, or the window/groups/LOBs a user triggered with.

    ``data_interval`` (a backfill run's) stands in for the window when the params give none.
    """
    grace = params.get("grace_s")
    window_start = parse_when(params.get("window_start"))
    window_end = parse_when(params.get("window_end"))
    if window_start is None and window_end is None and data_interval is not None:
        window_start, window_end = data_interval
    return PendingQuery(
        grace=timedelta(seconds=settings.pending_grace_s if grace in (None, "") else float(grace)),
        limit=settings.reconciliation_max_pending or None,
        open_after=timedelta(seconds=settings.open_call_timeout_s),
        ocp_groups=_names(params.get("ocp_groups")),
        lobs=_names(params.get("lobs")),
        window_start=window_start,
        window_end=window_end,
    )


def backfill_interval(context: Mapping[str, Any]) -> tuple[datetime | None, datetime | None] | None:
    """A backfill run's data interval (Airflow's Backfill: one run per interval), else None.

    Scheduled and manual runs keep the pending list: their data interval is the schedule's last slot, not
    a request to look only there.
    """
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    if str(getattr(run_type, "value", run_type)) != BACKFILL_RUN_TYPE:
        return None
    start = context.get("data_interval_start") or getattr(dag_run, "data_interval_start", None)
    end = context.get("data_interval_end") or getattr(dag_run, "data_interval_end", None)
    start, end = parse_when(start), parse_when(end)
    if start is None or end is None or end <= start:
        # a trigger timetable's point in time: nothing to bound a window with
        log.warning("backfill run without a data interval (%s .. %s): the pending list instead", start, end)
        return None
    return start, end


def query_for_run(context: Mapping[str, Any], settings: Settings) -> PendingQuery:
    """The query of the running DAG run: its params, and a backfill run's data interval as its window."""
    return query_from_params(context.get("params") or {}, settings, backfill_interval(context))


def detect_pending(context: Mapping[str, Any]) -> dict[str, Any]:
    """Pending calls (compact rows, oldest first) plus the window and groups a backfill asked for.

    ``context`` is the task context (its params, run type and data interval).
    """
    settings = Settings.from_env()
    params = context.get("params") or {}
    query = query_for_run(context, settings)
    with open_ledger(settings, actor=task_actor()) as ledger:
        detection = detect(ledger, query, dry_run=bool(params.get("dry_run")))
    # a dry run writes nothing, not even its manifest
    result = detection.to_reference(None if detection.dry_run else StorageLayout.from_settings(settings))
    log.info(
        "pending calls: %d%s",
        len(detection.calls),
        f" in window {result['window']}" if query.is_window else "",
    )
    return result


def plan(detected: Mapping[str, Any], links: int | None = None) -> list[list[dict[str, Any]]]:
    """Export plans as the chain's rounds (round ``n``: the ``n``-th plan of each group, oldest first),
    then the sweeps, as dicts for mapping. ``links``: exports chained per group (the setting's by default).
    """
    settings = Settings.from_env()
    links = links or settings.reconciliation_exports_per_group
    detection = Detection.from_dict(detected)
    result = plan_exports(
        detection.calls,
        max_plans_per_group=links,
        max_calls=settings.reconciliation_max_calls_per_plan or None,
        window=detection.window,
        ocp_groups=detection.ocp_groups,
        open_call_life=timedelta(seconds=settings.open_call_timeout_s),
    )
    plans = result.plans
    if detection.window is None and settings.sweep_groups:  # a backfill is a sweep of its own window
        with open_ledger(settings) as ledger:
            sweeps = due_sweeps(
                ledger,
                settings.sweep_groups,
                now=utcnow(),
                lookback=timedelta(hours=settings.sweep_lookback_hours),
                settle=timedelta(seconds=settings.open_call_timeout_s),
                busy={p.ocp_group for p in plans},
            )
        per_group: Counter[str] = Counter()
        for sweep in sweeps:  # the oldest hours first; the rest are swept by later runs
            per_group[sweep.ocp_group] += 1
            if per_group[sweep.ocp_group] <= links:
                plans.append(sweep)
    rounds = chain_links(plans, links)
    for n, plans_of_round in enumerate(rounds, start=1):
        for p in plans_of_round:
            log.info("plan (link %d of its group's chain): %s", n, p.label)
    if result.carried:
        log.info("carried to the next run (oldest first there): %s", result.carried)
    # long call lists in manifests (no cap from XCom or pod arguments); a dry run writes nothing
    layout = None if detection.dry_run else StorageLayout.from_settings(settings)
    return [[p.to_reference(layout) for p in plans_of_round] for plans_of_round in rounds]


def plans_of_link(rounds: Sequence[Sequence[Mapping[str, Any]]], link: int) -> list[dict[str, Any]]:
    """The plans requested at link ``link`` (1-based) of every group's chain: at most one per group."""
    return [dict(p) for p in rounds[link - 1]] if link <= len(rounds) else []


def skip_links_without_plans(
    ti: Any, rounds: Sequence[Sequence[Mapping[str, Any]]], links: int, task_id_of: Callable[[int], str]
) -> None:
    """Skip, from the planner, every link with nothing to ask (task ids ``task_id_of(n)``).

    Without this, the first empty link would start a task only to skip itself, and the run's end would
    wait for that launch. Skipping ends the planner's task by raising, so ``rounds`` is pushed as its
    return value first. A skipped link cleared alone runs and skips itself (``plans_of_link``'s check).
    """
    from airflow.sdk.bases.xcom import BaseXCom
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    empty = [task_id_of(n) for n in range(1, links + 1) if not plans_of_link(rounds, n)]
    if not empty:
        return
    log.info("links with nothing to ask, skipped: %s", ", ".join(empty))
    ti.xcom_push(BaseXCom.XCOM_RETURN_KEY, rounds)
    raise DownstreamTasksSkipped(tasks=empty)


def all_plans(rounds: Sequence[Sequence[Mapping[str, Any]]] | None) -> list[Mapping[str, Any]] | None:
    """Every plan of the run, whichever link of its chain."""
    return None if rounds is None else [p for plans_of_round in rounds for p in plans_of_round]


def download(
    context: Any, wait_result: Mapping[str, Any], ocp_conn_id: str = "ocp_default"
) -> dict[str, Any]:
    """The in-process download (download_mode=inprocess): the same domain call the pod makes."""
    from ocp_ingest.airflow.hooks import OcpHook
    from ocp_ingest.reconcile.download import download_plan

    export_plan = ExportPlan.from_dict(wait_result["plan"])
    context["plan_label"] = export_plan.label  # the mapped instance's name (map_index_template)
    settings = Settings.from_env()
    summary = download_plan(
        export_plan,
        wait_result.get("export_id"),
        wait_result.get("export_status") or "",
        settings,
        OcpHook(ocp_conn_id).get_client,
        message=wait_result.get("message") or "",
        run_id=context["run_id"],
    )
    return summary.to_reference(StorageLayout.from_settings(settings))  # per-call rows in a manifest


def _as_list(values: Any) -> list[Any]:
    """Results of a mapped task pulled as one argument: a sequence, or a lone dict for one instance."""
    if values is None:
        return []
    if isinstance(values, Mapping):
        return [values]
    return list(values)


def close(
    detected: Mapping[str, Any] | None,
    rounds: Sequence[Sequence[Mapping[str, Any]]] | None,
    downloads: Sequence[Any] | None,
    run_id: str,
    ti: Any = None,
    wait_task_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """Count attempts, escalate, mark no-recording calls; the summary is the return value and in the log.

    ``rounds`` is :func:`plan`'s result; ``downloads`` holds each round's download results. It runs
    whatever happened upstream (trigger rule ``all_done``): a plan whose request or download task failed
    after its retries has no download result; the wait results (``wait_task_ids``, pulled only then)
    tell which step failed. Its calls count no attempt (the failure is ours) but are still escalated
    at OCP's retention deadline, and the other plans are settled as usual. The task then fails (no retry:
    the settling is done) so the run shows failed; the summary is pushed first, for the alert notifier
    and the UI.
    """
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.sdk.observability.stats import Stats

    # here, not at the top: the close (and the download it reads) is not what the other tasks need
    from ocp_ingest.reconcile.close import carried_calls, close_run, match_outcomes

    plans = all_plans(rounds)
    if detected is None or plans is None:
        raise AirflowFailException(
            "detect_pending or plan_exports failed: nothing was planned, nothing to close"
        )
    settings = Settings.from_env()
    detection = Detection.from_dict(detected)
    export_plans = [ExportPlan.from_dict(p) for p in plans]
    results = [r for per_round in _as_list(downloads) for r in _as_list(per_round)]
    waits: list[Any] = []
    if ti is not None and len(results) < len(export_plans):
        for task_id in wait_task_ids:
            waits += _as_list(ti.xcom_pull(task_ids=task_id))
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
    if summary.throttled:  # OCP's state, not a failure of ours: the run succeeds, the next one asks again
        log.warning("OCP throttled the downloads: %d call(s) not tried (no attempt)", summary.throttled)
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
