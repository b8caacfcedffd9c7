"""Daily audit: the ledger snapshot, compaction of the audit trail, and the completeness report.

    snapshot_ledger >> compact_audit_events >> completeness_report

* **snapshot_ledger**: every call's current state as Parquet (``ledger_snapshot/dt=...``) for Athena.
* **compact_audit_events**: the day's small audit event files merged into one per LOB (new files plus a
  record of what they replaced; event rows never change).
* **completeness_report**: calls ended, stored in realtime / by reconciliation, terminal by reason,
  unresolved, p50/p95/p99 time to storage, in total and by LOB, as JSON and HTML under
  ``reports/dt=...``. Its XCom holds both URLs and the totals; the task's extra link "Completeness
  report" opens the HTML. Unresolved calls older than ``OCP_INGEST_REPORT_SLA_HOURS`` fail the task and
  alert (``SlaBreachNotifier``).

Param ``date`` (YYYY-MM-DD, a date picker) reports another day; by default the day before the run's
logical date (a 02:00 run reports yesterday; a backfilled run its own yesterday).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from airflow.sdk import dag, get_current_context, task

from ocp_ingest.airflow.notifiers import SlaBreachNotifier
from ocp_ingest.airflow.operators import CompletenessReportOperator
from ocp_ingest.airflow.params import report_params

# The tasks' code is imported inside each task: every task process parses this file first.


def _day() -> date:
    from ocp_ingest.airflow.tasks import report as report_tasks

    context = get_current_context()
    return report_tasks.report_day(context["params"], context.get("logical_date"))


@dag(
    dag_id="ocp_completeness_report",
    description="Daily audit: ledger snapshot, audit compaction and the completeness report (SLA alert)",
    schedule="0 2 * * *",  # 02:00 UTC: yesterday's realtime batches and reconciliation runs have flushed
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ocp-ingest", "retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["ocp", "audit", "report"],
    params=report_params(),
    doc_md=__doc__,
)
def ocp_completeness_report() -> None:
    @task(multiple_outputs=False)  # one XCom, not one per key
    def snapshot_ledger() -> dict:
        from ocp_ingest.airflow.tasks import report as report_tasks

        return report_tasks.snapshot(_day())

    @task(multiple_outputs=False)
    def compact_audit_events() -> dict:
        from ocp_ingest.airflow.tasks import report as report_tasks

        return report_tasks.compact(_day())

    # One XCom (JSON and HTML URLs, totals) and an extra link to the HTML; SLA breach: alert, then fail.
    report = CompletenessReportOperator(
        task_id="completeness_report",
        on_failure_callback=SlaBreachNotifier(),  # add Slack/SNS with forward_to=[...] (README, "Alerts")
    )

    snapshot_ledger() >> compact_audit_events() >> report


ocp_completeness_report()
