"""Stage 2, reconciliation: find every call without a stored recording and bring it back from OCP exports.

    detect_pending >> plan_exports >> export_chain[per plan](
        request_and_wait (deferred) >> download_and_store
    ) >> close_and_escalate

* **detect_pending**: the ledger's pending index (ended, not stored, not terminal, past the grace period);
  or, when triggered with ``window_start``/``window_end``, the calls started in that window (a backfill).
* **plan_exports**: per OCP group one hour-aligned window of 1 h .. 2 days, oldest first; one plan per
  group per run (exports of a group run strictly one at a time; ``max_active_runs=1``). The rest is
  carried to the next run. Mapped instances per run = plans (a handful), never calls.
* **export_chain** (mapped per plan, each instance labelled with its group, window and call count):
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
  the run's summary (recovered, still pending, escalated, by group, per call). It gets the chains'
  results by return: each download's result carries its wait's result (status, export id, message).

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

from airflow.sdk import XComArg, dag, get_current_context, task, task_group

from ocp_ingest.airflow.notifiers import EscalationNotifier
from ocp_ingest.airflow.params import reconciliation_params, reconciliation_schedule
from ocp_ingest.airflow.sensors import PLAN_LABEL_TEMPLATE, OcpExportSensor
from ocp_ingest.airflow.tasks import reconcile as reconciliation_tasks
from ocp_ingest.config import Settings

settings = Settings.from_env()  # environment only (the form's LOB list reads the routing file, nothing else)
WAIT_TASK_ID = "export_chain.request_and_wait"
# Logs, records (audit area) and forwards an alert when a run escalated calls; add Slack/SNS notifiers
# with forward_to=[...] (README, "Alerts").
escalation_alert = EscalationNotifier()


@dag(
    dag_id="ocp_reconciliation",
    description="Stage 2: find calls without a stored recording and recover them from OCP exports",
    schedule=reconciliation_schedule(settings.reconciliation_schedule),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # with one plan per group per run, a group's exports are strictly serial
    default_args={"owner": "ocp-ingest", "retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["ocp", "reconciliation", "stage-2"],
    params=reconciliation_params(settings),
    doc_md=__doc__,
)
def ocp_reconciliation() -> None:
    @task(multiple_outputs=False)  # one XCom, not one per key
    def detect_pending() -> dict:
        return reconciliation_tasks.detect_pending(get_current_context())

    @task
    def plan_exports(detected: dict) -> list[dict]:
        return reconciliation_tasks.plan(detected)

    @task(
        map_index_template=PLAN_LABEL_TEMPLATE,
        execution_timeout=timedelta(seconds=settings.download_timeout_s),
        multiple_outputs=False,
    )
    def download_and_store(wait_result: dict) -> dict:
        return reconciliation_tasks.download(get_current_context(), wait_result)

    @task_group
    def export_chain(plan: dict) -> XComArg:
        """One plan: its export requested and waited for (deferred), then its calls downloaded and stored.

        Returns the download's result, which carries the wait's result too.
        """
        waited = OcpExportSensor(task_id="request_and_wait", plan=plan)
        if settings.download_mode == "kubernetes":
            from ocp_ingest.airflow.download_pod import build_download_pod

            pod = build_download_pod(task_id="download_and_store", wait_task_id=WAIT_TASK_ID)
            waited >> pod
            return pod.output
        return download_and_store(waited.output)

    # all_done: a failed chain is still closed (no attempt counted, retention still enforced); then the
    # task fails the run
    @task(
        multiple_outputs=False,
        trigger_rule="all_done",
        on_success_callback=escalation_alert,
        on_failure_callback=escalation_alert,
    )
    def close_and_escalate(detected: dict, plans: list[dict], downloads: list[dict]) -> dict:
        context = get_current_context()
        return reconciliation_tasks.close(
            detected, plans, downloads, context["run_id"], context["ti"], wait_task_id=WAIT_TASK_ID
        )

    detected = detect_pending()
    plans = plan_exports(detected)
    close_and_escalate(detected, plans, export_chain.expand(plan=plans))


ocp_reconciliation()
