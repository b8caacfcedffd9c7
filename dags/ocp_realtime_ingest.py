"""Stage 1, realtime: landed recordings -> validate -> store per LOB -> COMPLETED (REALTIME).

    wait_for_arrivals (deferred in the triggerer while idle) >> [roll_cdr_events, plan_batch]
    plan_batch >> store_shard[per shard] >> summarize << roll_cdr_events

The receiver has already recorded every CDR event and FILE_RECEIVED in the ledger; this DAG does the
heavier half (audio validation and storage).

* **roll_cdr_events**: the accepted CDR events move from landing into the hourly manifest. Storing does not
  read the manifest, so it runs beside ``plan_batch``, off the path from arrival to stored.
* **plan_batch**: what has landed is split into shards by a hash of the dialog id (about
  ``OCP_INGEST_REALTIME_SHARD_SIZE`` recordings each, at most ``OCP_INGEST_REALTIME_MAX_SHARDS``).
* **store_shard** (mapped per shard, labelled "shard i/n"): validate and store that shard's recordings;
  any worker takes any shard, so more workers store more. Never one mapped task per call.
* **summarize**: the shards' figures added up into the run's summary.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, get_current_context, task

from ocp_ingest.airflow.sensors import LandingArrivalsSensor

# The tasks' code is imported inside each task: every task process parses this file first.


@dag(
    dag_id="ocp_realtime_ingest",
    description="Stage 1: validate and store recordings pushed by OCP, in shards any worker takes",
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

    @task
    def roll_cdr_events() -> int:
        from ocp_ingest.airflow.tasks import realtime as realtime_tasks

        return realtime_tasks.roll_cdr_events()

    @task
    def plan_batch() -> list[dict]:
        from ocp_ingest.airflow.tasks import realtime as realtime_tasks

        return realtime_tasks.plan_batch()

    @task(
        map_index_template="{{ shard_label | default('shard') }}",
        execution_timeout=timedelta(minutes=30),
        multiple_outputs=False,
    )
    def store_shard(shard: dict) -> dict:
        from ocp_ingest.airflow.tasks import realtime as realtime_tasks

        return realtime_tasks.store_shard(get_current_context(), shard)

    @task(multiple_outputs=False, trigger_rule="none_failed")  # also when nothing but CDR events landed
    def summarize(cdr_events_rolled: int, shards: list[dict]) -> dict:
        from ocp_ingest.airflow.tasks import realtime as realtime_tasks

        return realtime_tasks.summarize(cdr_events_rolled, shards)

    rolled = roll_cdr_events()
    shards = plan_batch()
    wait_for_arrivals >> [rolled, shards]
    summarize(rolled, store_shard.expand(shard=shards))


ocp_realtime_ingest()
