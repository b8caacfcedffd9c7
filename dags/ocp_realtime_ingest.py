"""Stage 1, realtime: landed recordings -> validate -> store per LOB -> COMPLETED (REALTIME).

    wait_for_arrivals (deferred in the triggerer while idle) >> store_arrivals (one batch per run)

The receiver has already recorded every CDR event and FILE_RECEIVED in the ledger; this DAG does the
heavier half (audio validation and storage) in batches, never one mapped task per call.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from ocp_ingest.airflow.sensors import LandingArrivalsSensor
from ocp_ingest.airflow.tasks import realtime as realtime_tasks


@dag(
    dag_id="ocp_realtime_ingest",
    description="Stage 1: validate and store recordings pushed by OCP, in batches, as they land",
    schedule="@continuous",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # required by @continuous; batches never overlap
    max_consecutive_failed_dag_runs=5,  # a broken continuous DAG must stop, not spin
    default_args={"owner": "ocp-ingest", "retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["ocp", "realtime", "stage-1"],
    doc_md=__doc__,
)
def ocp_realtime_ingest() -> None:
    wait_for_arrivals = LandingArrivalsSensor(
        task_id="wait_for_arrivals", poll_interval_s=1.0, max_wait_s=600.0, timeout=3600
    )

    @task(execution_timeout=timedelta(minutes=30), multiple_outputs=False)
    def store_arrivals() -> dict:
        return realtime_tasks.store_arrivals()

    wait_for_arrivals >> store_arrivals()


ocp_realtime_ingest()
