"""Stage 2, reconciliation: find every call without a stored recording and bring it back from OCP exports.

    detect_pending >> plan_exports >> export_link_1[per plan](request_and_wait >> download_and_store)
                                      ...            (link n asks once every link n-1 has waited)
                                      export_link_N[per plan](request_and_wait >> download_and_store)
                   >> close_and_escalate

* **detect_pending**: the ledger's pending index (ended, not stored, not terminal, past the grace period);
  or, when triggered with ``window_start``/``window_end``, the calls started in that window (a backfill).
* **plan_exports**: per OCP group, hour-aligned windows of 1 h .. 2 days, oldest first, chained: at most
  ``OCP_INGEST_RECONCILIATION_EXPORTS_PER_GROUP`` (N) exports per group per run. Link ``n`` holds the
  ``n``-th plan of each group; its requests start only once every link ``n - 1`` wait has ended, so a
  group's exports are strictly one at a time (OCP's rule) while the previous link's downloads go on. The
  links with nothing to ask are skipped by plan_exports, with their export tasks: none starts. What N
  links cannot hold is carried to the next run. Mapped instances per run = plans, never calls.
* **export_link_n** (mapped per plan, each instance labelled with its group, window and call count):
  ``request_and_wait`` requests the export (a 409 means wait, or adopt our own export), remembers it on
  the planned calls, and waits for it in the triggerer (no worker slot held; an expired export is
  re-created); then ``download_and_store`` keeps the export's metadata with its calls and downloads +
  stores the planned calls' audio (in-process, or a KubernetesPodOperator when
  ``OCP_INGEST_DOWNLOAD_MODE=kubernetes``). The export's dialog_end CDRs are diffed against the ledger:
  calls whose events were lost get ledger rows and are recovered in the same run.
* **close_and_escalate** (runs even when a chain failed: its calls count no attempt but still meet the
  retention deadline, and the task fails the run after settling):
  an attempt is counted for every call still missing; at the maximum attempts
  or before OCP's 60-day retention the call is escalated (ERROR log line, metric, alert callback);
  non-SIP calls absent from a completed export are closed as NO_RECORDING_EXPECTED. Its return value is
  the run's summary (recovered, still pending, escalated, by group, per call). It gets the links' results
  by return: each download's result carries its wait's result (status, export id, message).

Params: a date window (backfill), OCP groups or LOBs, a grace override, and ``dry_run`` (plan and report
only: nothing is asked of OCP and nothing is written).

Backfill: either one run with ``window_start``/``window_end``, or Airflow's own Backfill (the trigger
dialog's "Backfill", ``POST /api/v2/backfills`` or ``airflow backfill create``), which makes one run per
schedule interval; each such run reconciles the calls started in its data interval (its export widened to
whole hours), exactly as if the interval had been given as the window. Scheduled and manual runs without a
window work on the pending list.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import BaseOperator, XComArg, dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowSkipException

from ocp_ingest.airflow.notifiers import EscalationNotifier
from ocp_ingest.airflow.params import reconciliation_params, reconciliation_schedule
from ocp_ingest.airflow.sensors import PLAN_LABEL_TEMPLATE, OcpExportSensor
from ocp_ingest.config import Settings

# The tasks' code is imported inside each task: every task process parses this file first.
settings = Settings.from_env()  # environment only (the form's LOB list reads the routing file, nothing else)
LINKS = settings.reconciliation_exports_per_group  # exports chained per OCP group in one run


def plans_task_id(link: int) -> str:
    return f"plans_of_link_{link}"


def wait_task_id(link: int) -> str:
    return f"export_link_{link}.request_and_wait"


# Logs, records (audit area) and forwards an alert when a run escalated calls; add Slack/SNS notifiers
# with forward_to=[...] (README, "Alerts").
escalation_alert = EscalationNotifier()


@dag(
    dag_id="ocp_reconciliation",
    description="Stage 2: find calls without a stored recording and recover them from OCP exports",
    schedule=reconciliation_schedule(settings.reconciliation_schedule),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # a group's chain runs inside one run: its exports are strictly serial
    default_args={"owner": "ocp-ingest", "retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["ocp", "reconciliation", "stage-2"],
    params=reconciliation_params(settings),
    doc_md=__doc__,
)
def ocp_reconciliation() -> None:
    @task(multiple_outputs=False)  # one XCom, not one per key
    def detect_pending() -> dict:
        from ocp_ingest.airflow.tasks import reconcile as reconciliation_tasks

        return reconciliation_tasks.detect_pending(get_current_context())

    @task
    def plan_exports(detected: dict) -> list[list[dict]]:
        from ocp_ingest.airflow.tasks import reconcile as reconciliation_tasks

        rounds = reconciliation_tasks.plan(detected, LINKS)
        # the links with nothing to ask are skipped here, with their export tasks: no task starts for them
        ti = get_current_context()["ti"]
        reconciliation_tasks.skip_links_without_plans(ti, rounds, LINKS, plans_task_id)
        return rounds

    # Runs as soon as the plans are made (its skip serves a skipped link cleared alone); the link's
    # requests are what waits for the previous link.
    @task
    def plans_of_link(rounds: list[list[dict]], link: int) -> list[dict]:
        from ocp_ingest.airflow.tasks import reconcile as reconciliation_tasks

        plans = reconciliation_tasks.plans_of_link(rounds, link)
        if not plans:
            raise AirflowSkipException(f"no export planned for link {link}")
        return plans

    @task(
        map_index_template=PLAN_LABEL_TEMPLATE,
        execution_timeout=timedelta(seconds=settings.download_timeout_s),
        multiple_outputs=False,
    )
    def download_and_store(wait_result: dict) -> dict:
        from ocp_ingest.airflow.tasks import reconcile as reconciliation_tasks

        return reconciliation_tasks.download(get_current_context(), wait_result)

    def export_link(link: int, plans: XComArg, after: BaseOperator | None) -> tuple[BaseOperator, XComArg]:
        """Link ``link`` of every group's chain: per plan, its export requested (once every wait of
        ``after``, the previous link, has ended, whatever its end) and waited for (deferred), then its
        calls downloaded and stored. Returns the waits and the downloads' results, each carrying its
        wait's result."""
        waits: list[BaseOperator] = []

        @task_group(group_id=f"export_link_{link}")
        def chain_link(plan: dict) -> XComArg:
            waited = OcpExportSensor(
                task_id="request_and_wait",
                plan=plan,
                trigger_rule="all_success" if after is None else "all_done_min_one_success",
            )
            if after is not None:
                after >> waited
            waits.append(waited)
            if settings.download_mode == "kubernetes":
                from ocp_ingest.airflow.download_pod import build_download_pod

                pod = build_download_pod(task_id="download_and_store", wait_task_id=wait_task_id(link))
                waited >> pod
                return pod.output
            return download_and_store(waited.output)

        downloads = chain_link.expand(plan=plans)
        return waits[0], downloads

    # all_done: a failed chain is still closed (no attempt counted, retention still enforced); then the
    # task fails the run
    @task(
        multiple_outputs=False,
        trigger_rule="all_done",
        on_success_callback=escalation_alert,
        on_failure_callback=escalation_alert,
    )
    def close_and_escalate(detected: dict, rounds: list[list[dict]], downloads: list[list[dict]]) -> dict:
        from ocp_ingest.airflow.tasks import reconcile as reconciliation_tasks

        context = get_current_context()
        return reconciliation_tasks.close(
            detected,
            rounds,
            downloads,
            context["run_id"],
            context["ti"],
            wait_task_ids=[wait_task_id(n) for n in range(1, LINKS + 1)],
        )

    detected = detect_pending()
    rounds = plan_exports(detected)
    downloads: list[XComArg] = []
    previous_waits: BaseOperator | None = None
    for link in range(1, LINKS + 1):
        plans = plans_of_link.override(task_id=plans_task_id(link))(rounds, link)
        previous_waits, results = export_link(link, plans, after=previous_waits)
        downloads.append(results)
    close_and_escalate(detected, rounds, downloads)


ocp_reconciliation()
