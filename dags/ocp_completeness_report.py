"""Daily audit: the ledger snapshot, compaction of the audit trail, and the completeness report.

    snapshot_ledger >> compact_audit_events >> completeness_report

* **snapshot_ledger**: every call's current state as Parquet (``ledger_snapshot/dt=...``) for Athena.
* **compact_audit_events**: the day's small audit event files merged into one per LOB (new files plus a
  record of what they replaced; event rows never change).
* **completeness_report**: calls ended, stored in realtime / by reconciliation, terminal by reason,
  unresolved, p50/p95/p99 time to storage, in total and by LOB, as JSON and HTML under
  ``reports/dt=...``. Unresolved calls older than ``OCP_INGEST_REPORT_SLA_HOURS`` fail the task and alert.

Param ``date`` (YYYY-MM-DD) reports another day; by default the day before the run.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

from ocp_ingest.airflow.tasks import report as report_tasks


def _day() -> date:
    context = get_current_context()
    return report_tasks.report_day(context["params"], context.get("logical_date"))


@dag(
    dag_id="ocp_completeness_report",
    schedule="0 2 * * *",  # 02:00 UTC: yesterday's realtime batches and reconciliation runs have flushed
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ocp-ingest", "retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["ocp", "audit", "report"],
    params={"date": Param(None, type=["null", "string"], description="day to report (YYYY-MM-DD)")},
    doc_md=__doc__,
)
def ocp_completeness_report() -> None:
    @task
    def snapshot_ledger() -> dict:
        return report_tasks.snapshot(_day())

    @task
    def compact_audit_events() -> dict:
        return report_tasks.compact(_day())

    @task(on_failure_callback=report_tasks.alert_on_sla_breach)
    def completeness_report() -> dict:
        return report_tasks.report(_day())

    snapshot_ledger() >> compact_audit_events() >> completeness_report()


ocp_completeness_report()
