"""Through Airflow's real REST API (FastAPI app, SQLite metadata DB): a bad trigger form value is refused
before any run exists, and a Backfill makes one run per data interval, each reconciling its interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture(scope="module")
def client():
    """The api-server app over DAGs serialized the way the dag-processor stores them."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    from airflow.api_fastapi.app import create_app
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from fastapi.testclient import TestClient

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)
    yield TestClient(create_app("all"))
    mp.undo()


def _runs(client, dag_id: str) -> list[dict]:
    got = client.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
    assert got.status_code == 200, got.text
    return got.json()["dag_runs"]


def test_the_api_serves_the_forms_and_refuses_a_word_for_a_date(client) -> None:
    details = client.get("/api/v2/dags/ocp_reconciliation/details").json()
    assert details["description"].startswith("Stage 2")
    params = details["params"]
    assert params["window_start"]["schema"]["format"] == "date-time"
    assert params["lobs"]["schema"]["type"] == ["array", "null"] and params["lobs"]["schema"]["examples"]

    before = len(_runs(client, "ocp_reconciliation"))
    refused = client.post(
        "/api/v2/dags/ocp_reconciliation/dagRuns",
        json={"logical_date": None, "conf": {"window_start": "yesterday", "window_end": "today"}},
    )
    assert refused.status_code == 400, refused.text
    assert "window_start" in refused.json()["detail"]
    assert len(_runs(client, "ocp_reconciliation")) == before  # no run was created

    refused = client.post(
        "/api/v2/dags/ocp_completeness_report/dagRuns", json={"logical_date": None, "conf": {"date": "today"}}
    )
    assert refused.status_code == 400, refused.text

    # A picker's value is accepted (the run is only queued: no scheduler here).
    accepted = client.post(
        "/api/v2/dags/ocp_reconciliation/dagRuns",
        json={
            "logical_date": None,
            "conf": {
                "window_start": "2026-11-20T09:00:00.000Z",
                "window_end": "2026-11-20T10:00:00.000Z",
                "lobs": ["cards"],
            },
        },
    )
    assert accepted.status_code == 200, accepted.text
    client.delete(f"/api/v2/dags/ocp_reconciliation/dagRuns/{accepted.json()['dag_run_id']}")


def test_a_backfill_makes_one_run_per_interval_and_each_reconciles_its_interval(client, ingest_home) -> None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    from ocp_ingest.airflow.tasks.reconcile import query_for_run
    from ocp_ingest.config import Settings
    from ocp_ingest.reconcile.plan import plan_exports

    start = datetime(2026, 11, 20, 9, tzinfo=UTC)
    made = client.post(
        "/api/v2/backfills",
        json={
            "dag_id": "ocp_reconciliation",
            "from_date": start.isoformat(),
            "to_date": (start + timedelta(minutes=59)).isoformat(),
            "max_active_runs": 1,
        },
    )
    assert made.status_code == 200, made.text
    backfill_id = made.json()["id"]
    settings = Settings.from_env()
    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.backfill_id == backfill_id).order_by(DagRun.logical_date)
        intervals = []
        for run in runs:
            assert run.run_type == "backfill"
            context = {
                "dag_run": run,
                "run_id": run.run_id,
                "params": run.conf or {},
                "data_interval_start": run.data_interval_start,
                "data_interval_end": run.data_interval_end,
            }
            query = query_for_run(context, settings)
            assert query.window == (run.data_interval_start, run.data_interval_end)
            intervals.append(query.window)
    assert intervals == [
        (start, start + timedelta(minutes=30)),
        (start + timedelta(minutes=30), start + timedelta(minutes=60)),
    ]
    # Each interval's export is a valid OCP window: widened to the whole hour.
    plans = plan_exports((), window=intervals[1], ocp_groups=("ocp-banking",)).plans
    assert [(p.start, p.end) for p in plans] == [(start, start + timedelta(hours=1))]
